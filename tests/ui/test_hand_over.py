"""Issue 9 item 4: work outlives the terminal. A console that hosts work and leaves
(quit -> keep running, or its terminal hangs up) hands the runtime over to a
background `agentdeck host`, which runs the queued inputs; nothing queued is lost,
failed or repeated.

Real consoles (under Pilot, and on a real pseudo-terminal), real `sh -c` programs,
real detached hosts: each test finds the host it caused and ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.profiles import CommandProfile, ProfileSet
from engine.results import CreateWorkerRequest
from engine.runtime import Runtime
from store.event_store import EventStore
from store.models import HostLease, Role, RunStatus, WorkerRef
from tests.store.support import AGENTDECK, child_env
from tests.ui.test_app import SIZE, Console, console, started
from tests.ui.test_console_signals import _cmdline, _drain, _gone, _wait_exit
from tui.screens.quit import QuitScreen

CONFIG = """\
default_profile = "sh"
[profiles.sh]
command = ["sh", "-c"]
input = "argument"
timeout = 0
grace = 0.5
"""
SLEEP = "sleep 4071"  # the run in progress at the hand-over (a unique command line to find)


# -- reading the database and the process table ----------------------------------------


async def _runs(db: Path) -> dict[str, tuple[RunStatus, str | None]]:
    async with await EventStore.open(db, read_only=True, watch=False) as store:
        return {r.run_id: (r.status, r.error) for r in await store.runs("local", "w-1", 100)}


async def _hosts(db: Path) -> dict[str, HostLease]:
    async with await EventStore.open(db, read_only=True, watch=False) as store:
        return dict(await store.hosts())


async def _answers(db: Path) -> list[str]:
    """What w-1 answered, in transcript order."""
    ref = WorkerRef(runtime_id="local", worker_id="w-1")
    async with await EventStore.open(db, read_only=True, watch=False) as store:
        page = await store.transcript(ref, 0, 100)
    return [e.content for e in page.items if e.role is Role.ASSISTANT]


def _now(read: Callable[[Path], object], db: Path) -> object:
    return asyncio.run(read(db))  # type: ignore[arg-type]


def _until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def _processes(fragment: str) -> list[int]:
    """Live processes whose command line contains `fragment`."""
    return [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and fragment in _cmdline(int(entry.name)) and not _gone(int(entry.name))
    ]


def _end_host(pid: int) -> None:
    """End a handed-over host the way a service manager would (SIGTERM, then SIGKILL)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if not _gone(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):  # started by this process (Pilot): reap it
        os.waitpid(pid, 0)


def _handed_over_to(db: Path, not_pid: int) -> int:
    """The pid of the process that hosts `local` now, once it is not `not_pid`."""
    found: list[int] = []

    def hosted() -> bool:
        lease = asyncio.run(_hosts(db)).get("local")
        if lease is not None and lease.pid != not_pid:
            found.append(lease.pid)
        return bool(found)

    _until(hosted)
    return found[0]


def _assert_queue_ran_after_hand_over(db: Path, running: str, queued: list[str]) -> None:
    """`running` failed "host closed"; every queued run completed, once."""
    _until(
        lambda: all(
            asyncio.run(_runs(db)).get(run, (None,))[0] is RunStatus.COMPLETED for run in queued
        )
    )
    runs = asyncio.run(_runs(db))
    assert runs[running] == (RunStatus.FAILED, "host closed")
    assert [runs[run] for run in queued] == [(RunStatus.COMPLETED, None)] * len(queued)
    assert max(runs) == queued[-1]  # no run was added: nothing was re-run
    # Each queued input ran once, in order, and the failed run was not repeated.
    assert asyncio.run(_answers(db)) == ["queued-one", "queued-two"]


# -- quit: keep running, or stop -----------------------------------------------------------


async def _console_with_work(c: Console) -> None:
    """w-1 runs `sleep 4071` (w-1.r1) with two inputs queued behind it (r2, r3)."""
    runtime = c.backend.runtime
    assert runtime is not None
    worker = await runtime.create_worker(CreateWorkerRequest(profile="sh"))
    await runtime.send_input(worker.ref, SLEEP)
    await runtime.send_input(worker.ref, "echo queued-one")
    await runtime.send_input(worker.ref, "echo queued-two")
    await c.until(lambda: runtime.work_in_progress() == (["w-1.r1"], 2))
    await c.until(lambda: bool(_processes(SLEEP)))


def _quit_body(c: Console) -> str:
    screen = c.app.screen
    assert isinstance(screen, QuitScreen)
    return f"{screen.question}\n{screen.body}"


async def test_quit_keep_running_hands_the_runtime_over_to_a_background_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    db = tmp_path / "a.db"
    (tmp_path / "agentdeck.toml").write_text(CONFIG)
    app = console(db)
    new_host: int | None = None
    try:
        async with app.run_test(size=SIZE) as pilot:
            c = await started(app, pilot)
            await _console_with_work(c)
            await pilot.press("q")
            await c.until(lambda: isinstance(app.screen, QuitScreen))
            text = _quit_body(c)
            assert "Quit while runtime local has work?" in text
            assert "1 run in progress (w-1.r1) and 2 queued inputs" in text
            await pilot.press("escape")  # back: nothing changes
            await c.until(lambda: not isinstance(app.screen, QuitScreen))
            assert app.is_running and c.backend.work_in_progress() == (["w-1.r1"], 2)
            await pilot.press("q")
            await c.until(lambda: isinstance(app.screen, QuitScreen))
            await pilot.press("k")
            await c.until(lambda: not app.is_running, 30)
        handed = app.handed_over
        assert handed is not None and handed.pid is not None, handed
        new_host = handed.pid
        assert handed.hosting, handed.line()
        assert handed.log == tmp_path / "state" / "agentdeck" / "log" / "host-local.log"
        hosts = await asyncio.to_thread(_now, _hosts, db)
        assert hosts["local"].pid == new_host  # type: ignore[index]
        line = handed.line()
        assert f"`agentdeck host` pid {new_host} hosts it and runs its 2 queued inputs" in line
        assert '1 run in progress failed "host closed"' in line and str(handed.log) in line
        await asyncio.to_thread(
            _assert_queue_ran_after_hand_over, db, "w-1.r1", ["w-1.r2", "w-1.r3"]
        )
        assert _processes(SLEEP) == []  # the run in progress ended with this console
        log = handed.log.read_text()
        assert f"hands runtime local on {db} over" in log
        assert f"host local: hosting runtime local on {db} (pid {new_host})" in log
    finally:
        if new_host is not None:
            _end_host(new_host)
    assert _gone(new_host)
    # It released the lease when it stopped.
    assert "local" not in await asyncio.to_thread(_now, _hosts, db)  # type: ignore[operator]
    assert _processes(str(db)) == []


async def test_quit_stop_ends_the_work_as_before(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    (tmp_path / "agentdeck.toml").write_text(CONFIG)
    app = console(db)
    async with app.run_test(size=SIZE) as pilot:
        c = await started(app, pilot)
        await _console_with_work(c)
        await pilot.press("q")
        await c.until(lambda: isinstance(app.screen, QuitScreen))
        await pilot.press("s")
        await c.until(lambda: not app.is_running, 30)
    assert app.return_code == 0 and app.handed_over is None
    runs = await _runs(db)
    assert runs["w-1.r1"] == (RunStatus.FAILED, "host closed")
    assert runs["w-1.r2"][0] is RunStatus.CREATED and runs["w-1.r3"][0] is RunStatus.CREATED
    assert await _hosts(db) == {}
    assert _processes(SLEEP) == []


# -- a real terminal: the hang-up, and q -> k -----------------------------------------------


async def _prepare(db: Path, gate: Path) -> None:
    """w-1 with `sleep 4071` (r2) then two quick inputs (r3, r4) queued for the console.

    The first input waits for a gate that never opens, so closing this host fails it
    and leaves the rest queued, in order, for the console to resume.
    """
    sh = CommandProfile(name="sh", command=["sh", "-c"], input="argument", grace=0.5)
    async with await EventStore.open(db, watch=False) as store:
        rt = await Runtime.host(store, "local", profiles=ProfileSet(profiles={"sh": sh}))
        worker = await rt.create_worker(CreateWorkerRequest(profile="sh"))
        await rt.send_input(worker.ref, f"while [ ! -e {gate} ]; do sleep 0.05; done")
        for text in (SLEEP, "echo queued-one", "echo queued-two"):
            await rt.send_input(worker.ref, text)
        await rt.close()


def _start_console(tmp_path: Path) -> tuple[int, int, Path]:
    db = tmp_path / "console.db"
    (tmp_path / "agentdeck.toml").write_text(CONFIG)
    asyncio.run(_prepare(db, tmp_path / "never"))
    env = {
        **child_env(),
        "TERM": "xterm-256color",
        "COLUMNS": "120",
        "LINES": "40",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
    pid, master = pty.fork()
    if pid == 0:  # the child: the console, leading the terminal's session
        os.execve(str(AGENTDECK), [str(AGENTDECK), "--db", str(db)], env)
    return pid, master, db


def _until_sleeping(master: int) -> None:
    deadline = time.monotonic() + 30
    while not _processes(SLEEP):
        _drain(master, 0.2)
        assert time.monotonic() < deadline, "the console never resumed the sleep"
    _drain(master, 0.5)


@pytest.mark.slow
def test_a_hang_up_hands_running_work_over_to_a_background_host(tmp_path: Path) -> None:
    """SSH dropped with work in progress: a detached `agentdeck host` takes the runtime,
    the run in progress fails "host closed", the queued inputs run there."""
    pid, master, db = _start_console(tmp_path)
    new_host: int | None = None
    try:
        try:
            _until_sleeping(master)
        finally:
            os.close(master)  # hang up: the kernel sends SIGHUP to the console
        status, _ = _wait_exit(pid, None)
        assert status == 129
        new_host = _handed_over_to(db, not_pid=pid)
        assert "tui.cli" in _cmdline(new_host) and "host" in _cmdline(new_host).split()
        assert os.getsid(new_host) == new_host  # a session of its own: no terminal to lose
        _assert_queue_ran_after_hand_over(db, "w-1.r2", ["w-1.r3", "w-1.r4"])
        assert _processes(SLEEP) == []
        log = (tmp_path / "state" / "agentdeck" / "log" / "host-local.log").read_text()
        assert f"pid {new_host}" in log and "Traceback" not in log
    finally:
        if new_host is not None:
            _end_host(new_host)
    assert _gone(new_host)
    assert _processes(str(db)) == [] and _processes(SLEEP) == []


@pytest.mark.slow
def test_q_then_keep_running_on_a_real_terminal_says_where_the_work_went(
    tmp_path: Path,
) -> None:
    """The operator's view: the question, `k`, and one line once the terminal is back."""
    pid, master, db = _start_console(tmp_path)
    new_host: int | None = None
    try:
        _until_sleeping(master)
        os.write(master, b"q")
        drawn = b""
        deadline = time.monotonic() + 15
        while b"Keep running" not in drawn:
            drawn += _drain(master, 0.2)
            assert time.monotonic() < deadline, "no question on quit"
        os.write(master, b"k")
        status, drawn = _wait_exit(pid, master)
        assert status == 0
        new_host = _handed_over_to(db, not_pid=pid)
        text = drawn.decode(errors="replace")
        after = text[text.rindex("\x1b[?1049l") :]  # what is left on the terminal
        assert f"agentdeck: runtime local keeps running in the background: `agentdeck host` pid {new_host} hosts it" in after
        assert "host-local.log" in after and "Traceback" not in text
        _assert_queue_ran_after_hand_over(db, "w-1.r2", ["w-1.r3", "w-1.r4"])
    finally:
        with contextlib.suppress(OSError):
            os.close(master)
        if new_host is not None:
            _end_host(new_host)
    assert _gone(new_host)
    assert _processes(str(db)) == [] and _processes(SLEEP) == []
