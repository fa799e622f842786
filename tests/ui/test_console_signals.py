"""Issue 7 item 1: the console on a real terminal (a pty), stopped by SIGTERM or a hang-up.

SIGTERM stops the work like quit -> stop; a hang-up hands work in progress over
to a background `agentdeck host` (issue 9 item 4; tests/ui/test_hand_over.py)
and, with no work, closes the console like `q`.

The console process is the session leader of a fresh pseudo-terminal, as it
is under an SSH login or a tmux pane: closing the terminal's master side is a
real hang-up, and the kernel sends the real SIGHUP.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import select
import signal
import time
from pathlib import Path

import pytest

from engine.profiles import CommandProfile, ProfileSet
from engine.results import CreateWorkerRequest
from engine.runtime import Runtime
from store.errors import StoreError
from store.event_store import EventStore
from store.models import RunStatus
from tests.store.support import AGENTDECK, child_env

CONFIG = """\
default_profile = "sh"
[profiles.sh]
command = ["sh", "-c"]
input = "argument"
timeout = 0
grace = 0.5
"""


async def _prepare(db: Path, gate: Path) -> None:
    """A worker whose second input (`sleep 404`) is queued for the next host."""
    sh = CommandProfile(name="sh", command=["sh", "-c"], input="argument", grace=0.5)
    async with await EventStore.open(db, watch=False) as store:
        rt = await Runtime.host(store, "local", profiles=ProfileSet(profiles={"sh": sh}))
        worker = await rt.create_worker(CreateWorkerRequest(profile="sh"))
        await rt.send_input(worker.ref, f"while [ ! -e {gate} ]; do sleep 0.05; done")
        await rt.send_input(worker.ref, "sleep 404 & sleep 405")
        await rt.close()


async def _started_pid(db: Path, run_id: str, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with await EventStore.open(db, read_only=True, watch=False) as store:
            for event in await store.read_run("local", run_id, 0, 100):
                if event.kind == "exec.command.started":
                    return int(event.payload["pid"])
        await asyncio.sleep(0.2)
    raise AssertionError(f"{run_id} never started its program")


def _start_console(tmp_path: Path, *, work: bool = True) -> tuple[int, int, Path]:
    db = tmp_path / "console.db"
    config = tmp_path / "agentdeck.toml"
    config.write_text(CONFIG)
    if work:
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


def _resumed_program(master: int, db: Path) -> int:
    """The pid of the queued `sleep` program once the console has resumed it."""
    started = time.monotonic()
    while True:
        _drain(master, 0.2)
        with contextlib.suppress(AssertionError):
            program = asyncio.run(_started_pid(db, "w-1.r2", timeout=0.5))
            _drain(master, 0.5)
            return program
        assert time.monotonic() - started < 30, "the queued run never started"


def _drain(master: int, seconds: float) -> bytes:
    """Read what the console draws for `seconds` (so it never blocks on a full terminal)."""
    out = bytearray()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.05)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    return bytes(out)


def _wait_exit(pid: int, master: int | None, timeout: float = 30) -> tuple[int, bytes]:
    drawn = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            if master is not None:
                drawn += _drain(master, 0.2)
            return os.waitstatus_to_exitcode(status), bytes(drawn)
        if master is not None:
            drawn += _drain(master, 0.05)
        else:
            time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    raise AssertionError("the console did not exit")


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2] == "Z"
    return True


async def _outcome(db: Path) -> tuple[RunStatus, str | None, dict[str, object]]:
    async with await EventStore.open(db, read_only=True, watch=False) as store:
        run = await store.run("local", "w-1.r2")
        assert run is not None
        return run.status, run.error, dict(await store.hosts())


@pytest.mark.slow
def test_sigterm_closes_the_console_like_q_and_restores_the_terminal(tmp_path: Path) -> None:
    """Issue 7 item 1: SIGTERM: runs fail "host closed", groups ended, terminal back, 143."""
    pid, master, db = _start_console(tmp_path)
    try:
        program = _resumed_program(master, db)
        os.kill(pid, signal.SIGTERM)
        status, drawn = _wait_exit(pid, master)
    finally:
        with contextlib.suppress(OSError):
            os.close(master)
    assert status == 143
    assert b"\x1b[?1049l" in drawn, "the alternate screen was not left"
    assert b"Traceback" not in drawn
    assert _gone(program)
    assert asyncio.run(_outcome(db)) == (RunStatus.FAILED, "host closed", {})


@pytest.mark.slow
def test_a_hang_up_hands_the_work_over_and_leaves_nothing_of_the_run(tmp_path: Path) -> None:
    """Issue 9 item 4 (it was issue 7 item 1's clean stop): the terminal goes away (SSH
    dropped) while a run is in progress: the run's program and its background child end
    with the console, the run fails "host closed", and a background `agentdeck host`
    hosts the runtime (it is ended here; tests/ui/test_hand_over.py follows its queue)."""
    pid, master, db = _start_console(tmp_path)
    holders: dict[str, object] = {}
    try:
        try:
            program = _resumed_program(master, db)
        finally:
            os.close(master)  # hang up: the kernel sends SIGHUP to the console
        status, _ = _wait_exit(pid, None)
        assert status == 129
        assert _gone(program)
        deadline = time.monotonic() + 30
        while "local" not in holders and time.monotonic() < deadline:
            status_, error, holders = asyncio.run(_outcome(db))
            time.sleep(0.1)
        assert (status_, error) == (RunStatus.FAILED, "host closed")
        new_host = holders["local"].pid  # type: ignore[attr-defined]
        assert new_host != pid and not _gone(new_host)
    finally:
        for holder in holders.values():
            _end(holder.pid)  # type: ignore[attr-defined]
    # Its children too: nothing of the run is left anywhere, and no host either.
    assert _leftovers("sleep 40") == []
    assert _leftovers(str(db)) == []


@pytest.mark.slow
def test_a_hang_up_with_no_work_closes_the_console(tmp_path: Path) -> None:
    """Nothing running or queued: a hang-up ends the console as `q` does; nothing is started."""
    pid, master, db = _start_console(tmp_path, work=False)
    try:
        deadline = time.monotonic() + 30
        while not _hosting(db):
            _drain(master, 0.2)
            assert time.monotonic() < deadline, "the console never hosted local"
        _drain(master, 0.5)
    finally:
        os.close(master)
    status, _ = _wait_exit(pid, None)
    assert status == 129
    assert asyncio.run(_hosts(db)) == {}
    assert _leftovers(str(db)) == []
    assert not (tmp_path / "state" / "agentdeck" / "log" / "host-local.log").exists()


def _hosting(db: Path) -> bool:
    try:
        return "local" in asyncio.run(_hosts(db))
    except StoreError:  # not created yet, or being created
        return False


async def _hosts(db: Path) -> dict[str, object]:
    async with await EventStore.open(db, read_only=True, watch=False) as store:
        return dict(await store.hosts())


def _leftovers(fragment: str) -> list[int]:
    return [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit()
        and fragment in _cmdline(int(entry.name))
        and not _gone(int(entry.name))
    ]


def _end(pid: int) -> None:
    """End a host this test caused (SIGTERM; SIGKILL if it lingers)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()
