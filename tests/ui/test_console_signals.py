"""Issue 7 item 1: the console on a real terminal (a pty), stopped by SIGTERM or a hang-up.

SIGTERM stops the work like quit -> stop; a hang-up hands work in progress over
to a background `agentdeck host`, which runs the queued inputs (issue 9 item 4;
quit -> keep running is in tests/ui/test_hand_over.py), and, with no work,
closes the console like `q`.

The console process is the session leader of a fresh pseudo-terminal, as it
is under an SSH login or a tmux pane: closing the terminal's master side is a
real hang-up, and the kernel sends the real SIGHUP.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

import pytest

from store.errors import StoreError
from store.event_store import EventStore
from store.models import RunStatus
from tests.ui.console_process import (
    QUEUED,
    assert_queue_ran_after_hand_over,
    cmdline,
    drain,
    end_process,
    gone,
    handed_over_to,
    host_log,
    hosts,
    processes,
    start_console,
    wait_exit,
)

RUNNING = "sleep 404 & sleep 405"
"""The run in progress (w-1.r2) when the console stops: a program with a background child."""


async def _started_pid(db: Path, run_id: str, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with await EventStore.open(db, read_only=True, watch=False) as store:
            for event in await store.read_run("local", run_id, 0, 100):
                if event.kind == "exec.command.started":
                    return int(event.payload["pid"])
        await asyncio.sleep(0.2)
    raise AssertionError(f"{run_id} never started its program")


def _resumed_program(master: int, db: Path) -> int:
    """The pid of the queued `sleep` program once the console has resumed it."""
    started = time.monotonic()
    while True:
        drain(master, 0.2)
        with contextlib.suppress(AssertionError):
            program = asyncio.run(_started_pid(db, "w-1.r2", timeout=0.5))
            drain(master, 0.5)
            return program
        assert time.monotonic() - started < 30, "the queued run never started"


async def _outcome(db: Path) -> tuple[RunStatus, str | None, dict[str, object]]:
    async with await EventStore.open(db, read_only=True, watch=False) as store:
        run = await store.run("local", "w-1.r2")
        assert run is not None
        return run.status, run.error, dict(await store.hosts())


@pytest.mark.slow
def test_sigterm_closes_the_console_like_q_and_restores_the_terminal(tmp_path: Path) -> None:
    """Issue 7 item 1: SIGTERM: runs fail "host closed", groups ended, terminal back, 143."""
    pid, master, db = start_console(tmp_path, RUNNING)
    try:
        program = _resumed_program(master, db)
        os.kill(pid, signal.SIGTERM)
        status, drawn = wait_exit(pid, master)
    finally:
        with contextlib.suppress(OSError):
            os.close(master)
    assert status == 143
    assert b"\x1b[?1049l" in drawn, "the alternate screen was not left"
    assert b"Traceback" not in drawn
    assert gone(program)
    assert asyncio.run(_outcome(db)) == (RunStatus.FAILED, "host closed", {})


@pytest.mark.slow
def test_a_hang_up_hands_the_work_over_and_leaves_nothing_of_the_run(tmp_path: Path) -> None:
    """Issue 9 item 4 (it was issue 7 item 1's clean stop): the terminal goes away (SSH
    dropped) while a run is in progress: the run's program and its background child end
    with the console, the run fails "host closed", and a detached `agentdeck host` takes
    the runtime and runs the queued inputs, once and in order. Then nothing is left."""
    # w-1.r2 runs RUNNING, w-1.r3 and w-1.r4 are queued behind it.
    pid, master, db = start_console(tmp_path, RUNNING, *QUEUED)
    new_host: int | None = None
    try:
        try:
            program = _resumed_program(master, db)
        finally:
            os.close(master)  # hang up: the kernel sends SIGHUP to the console
        status, _ = wait_exit(pid, None)
        assert status == 129
        assert gone(program)
        new_host = handed_over_to(db, not_pid=pid)  # the hosts table names the new host
        assert not gone(new_host)
        assert "tui.cli" in cmdline(new_host) and "host" in cmdline(new_host).split()
        assert os.getsid(new_host) == new_host  # a session of its own: no terminal to lose
        assert_queue_ran_after_hand_over(db, "w-1.r2", ["w-1.r3", "w-1.r4"])
        assert processes("sleep 40") == []  # the run in progress ended with the console
        log = host_log(tmp_path).read_text()
        assert f"pid {new_host}" in log and "Traceback" not in log
    finally:
        if new_host is not None:
            end_process(new_host)
    assert gone(new_host)
    # Its children too: nothing of the run is left anywhere, and no host either.
    assert processes("sleep 40") == []
    assert processes(str(db)) == []


@pytest.mark.slow
def test_a_hang_up_with_no_work_closes_the_console(tmp_path: Path) -> None:
    """Nothing running or queued: a hang-up ends the console as `q` does; nothing is started."""
    pid, master, db = start_console(tmp_path)
    try:
        deadline = time.monotonic() + 30
        while not _hosting(db):
            drain(master, 0.2)
            assert time.monotonic() < deadline, "the console never hosted local"
        drain(master, 0.5)
    finally:
        os.close(master)
    status, _ = wait_exit(pid, None)
    assert status == 129
    assert asyncio.run(hosts(db)) == {}
    assert processes(str(db)) == []
    assert not host_log(tmp_path).exists()


def _hosting(db: Path) -> bool:
    try:
        return "local" in asyncio.run(hosts(db))
    except StoreError:  # not created yet, or being created
        return False
