"""Helpers for the UI tests that run real console and host processes (no fixtures here).

A console on a real pseudo-terminal (`start_console`), the database work it resumes
(`prepare`), reading what it and the hosts it hands over to left in the database
(`hosts`, `runs`, `answers`), and finding and ending the processes they started
(`processes`, `gone`, `end_process`). Used by tests/ui/test_console_signals.py,
tests/ui/test_hand_over.py and tests/ui/test_remote.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import select
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from engine.profiles import CommandProfile, ProfileSet
from engine.results import CreateWorkerRequest
from engine.runtime import Runtime
from store.event_store import EventStore
from store.models import HostLease, Role, RunStatus, WorkerRef
from tests.store.support import AGENTDECK, child_env


def profiles_config(*, grace: float = 0.5, timeout: float | None = 0) -> str:
    """The text of an agentdeck.toml whose default profile `sh` runs each input with
    `sh -c` (timeout None: the profile's default timeout)."""
    limit = "" if timeout is None else f"timeout = {timeout:g}\n"
    return (
        'default_profile = "sh"\n'
        "[profiles.sh]\n"
        'command = ["sh", "-c"]\n'
        'input = "argument"\n'
        f"{limit}grace = {grace:g}\n"
    )


CONFIG = profiles_config()
"""The profiles of a console started here: `sh`, no time limit, half a second of grace."""

QUEUED = ("echo queued-one", "echo queued-two")
"""Two quick inputs queued behind a run in progress; `assert_queue_ran_after_hand_over`
expects their answers."""


# -- a console on a real terminal --------------------------------------------------------


async def prepare(db: Path, gate: Path, work: Sequence[str]) -> None:
    """w-1 on `db` with `work` queued (w-1.r2, w-1.r3, ...) for the next host of `local`.

    The first input (w-1.r1) waits for `gate`, a file that never appears, so closing
    this host fails it and leaves `work` queued, in order, for the console to resume.
    """
    sh = CommandProfile(name="sh", command=["sh", "-c"], input="argument", grace=0.5)
    async with await EventStore.open(db, watch=False) as store:
        rt = await Runtime.host(store, "local", profiles=ProfileSet(profiles={"sh": sh}))
        worker = await rt.create_worker(CreateWorkerRequest(profile="sh"))
        await rt.send_input(worker.ref, f"while [ ! -e {gate} ]; do sleep 0.05; done")
        for text in work:
            await rt.send_input(worker.ref, text)
        await rt.close()


def console_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a console started here: a 120x40 xterm, config and state
    (logs) under `tmp_path`."""
    return {
        **child_env(),
        "TERM": "xterm-256color",
        "COLUMNS": "120",
        "LINES": "40",
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }


def host_log(tmp_path: Path) -> Path:
    """Where a host that a console (with `console_env(tmp_path)`) hands `local` over to logs."""
    return tmp_path / "state" / "agentdeck" / "log" / "host-local.log"


def start_console(tmp_path: Path, *work: str) -> tuple[int, int, Path]:
    """`agentdeck` on tmp_path/console.db, leading the session of a fresh pty: its pid,
    the terminal's master side, and the database.

    With `work`, the database already has it queued (see `prepare`); without, it is new.
    """
    db = tmp_path / "console.db"
    (tmp_path / "agentdeck.toml").write_text(CONFIG)
    if work:
        asyncio.run(prepare(db, tmp_path / "never", work))
    env = console_env(tmp_path)
    pid, master = pty.fork()
    if pid == 0:  # the child: the console, leading the terminal's session
        os.execve(str(AGENTDECK), [str(AGENTDECK), "--db", str(db)], env)
    return pid, master, db


def drain(master: int, seconds: float) -> bytes:
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


def wait_exit(pid: int, master: int | None, timeout: float = 30) -> tuple[int, bytes]:
    """Reap the console: its exit code, and what it drew meanwhile (when `master` is open).

    A console still running after `timeout` is killed and the test fails.
    """
    drawn = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            if master is not None:
                drawn += drain(master, 0.2)
            return os.waitstatus_to_exitcode(status), bytes(drawn)
        if master is not None:
            drawn += drain(master, 0.05)
        else:
            time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    raise AssertionError("the console did not exit")


# -- the process table ------------------------------------------------------------------


def cmdline(pid: int) -> str:
    """The command line of `pid`, its arguments joined by spaces ("" once it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def gone(pid: int) -> bool:
    """`pid` no longer runs (it does not exist, or is a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2] == "Z"
    return True


def processes(fragment: str) -> list[int]:
    """Live processes whose command line contains `fragment`."""
    return [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit()
        and fragment in cmdline(int(entry.name))
        and not gone(int(entry.name))
    ]


def end_process(pid: int) -> None:
    """End a host a test caused (a detached `agentdeck host`, the leader of its own
    process group) the way a service manager would: SIGTERM, then SIGKILL if it lingers;
    reap it if this process started it (Pilot)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if not gone(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):  # not a child of this process
        os.waitpid(pid, 0)


# -- the database -------------------------------------------------------------------------


async def hosts(db: Path) -> dict[str, HostLease]:
    """The hosts table: each hosted runtime's lease."""
    async with await EventStore.open(db, read_only=True, watch=False) as store:
        return dict(await store.hosts())


async def runs(db: Path) -> dict[str, tuple[RunStatus, str | None]]:
    """Each run of w-1 in runtime local: its status and error."""
    async with await EventStore.open(db, read_only=True, watch=False) as store:
        return {r.run_id: (r.status, r.error) for r in await store.runs("local", "w-1", 100)}


async def answers(db: Path) -> list[str]:
    """What w-1 answered, in transcript order."""
    ref = WorkerRef(runtime_id="local", worker_id="w-1")
    async with await EventStore.open(db, read_only=True, watch=False) as store:
        page = await store.transcript(ref, 0, 100)
    return [e.content for e in page.items if e.role is Role.ASSISTANT]


def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait (blocking) until `condition()`; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def handed_over_to(db: Path, not_pid: int) -> int:
    """The pid of the process that hosts `local` now, once it is not `not_pid`."""
    found: list[int] = []

    def hosted() -> bool:
        lease = asyncio.run(hosts(db)).get("local")
        if lease is not None and lease.pid != not_pid:
            found.append(lease.pid)
        return bool(found)

    until(hosted)
    return found[0]


def assert_queue_ran_after_hand_over(db: Path, running: str, queued: list[str]) -> None:
    """`running` failed "host closed"; every queued run (the `QUEUED` inputs) completed,
    once, in order."""
    until(
        lambda: all(
            asyncio.run(runs(db)).get(run, (None,))[0] is RunStatus.COMPLETED for run in queued
        )
    )
    ran = asyncio.run(runs(db))
    assert ran[running] == (RunStatus.FAILED, "host closed"), ran
    assert [ran[run] for run in queued] == [(RunStatus.COMPLETED, None)] * len(queued), ran
    assert max(ran) == queued[-1], ran  # no run was added: nothing was re-run
    # Each queued input ran once, in order, and the failed run was not repeated.
    said = asyncio.run(answers(db))
    assert said == ["queued-one", "queued-two"], said
