"""Issue 9 item 4: work outlives the terminal. A console that hosts work and leaves
(quit -> keep running, or its terminal hangs up) hands the runtime over to a
background `agentdeck host`, which runs the queued inputs; nothing queued is lost,
failed or repeated.

Real consoles (under Pilot, and on a real pseudo-terminal), real `sh -c` programs,
real detached hosts: each test finds the host it caused and ends it. The hang-up
is tested with the other signals, in tests/ui/test_console_signals.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.results import CreateWorkerRequest
from store.models import RunStatus
from tests.ui.console_process import (
    CONFIG,
    QUEUED,
    assert_queue_ran_after_hand_over,
    drain,
    end_process,
    gone,
    handed_over_to,
    hosts,
    processes,
    runs,
    start_console,
    wait_exit,
)
from tests.ui.test_app import SIZE, Console, console, started
from tui.screens.quit import QuitScreen

SLEEP = "sleep 4071"  # the run in progress at the hand-over (a unique command line to find)


def _now(read: Callable[[Path], object], db: Path) -> object:
    return asyncio.run(read(db))  # type: ignore[arg-type]


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
    await c.until(lambda: bool(processes(SLEEP)))


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
        leases = await asyncio.to_thread(_now, hosts, db)
        assert leases["local"].pid == new_host  # type: ignore[index]
        line = handed.line()
        assert f"`agentdeck host` pid {new_host} hosts it and runs its 2 queued inputs" in line
        assert '1 run in progress failed "host closed"' in line and str(handed.log) in line
        await asyncio.to_thread(
            assert_queue_ran_after_hand_over, db, "w-1.r1", ["w-1.r2", "w-1.r3"]
        )
        assert processes(SLEEP) == []  # the run in progress ended with this console
        log = handed.log.read_text()
        assert f"hands runtime local on {db} over" in log
        assert f"host local: hosting runtime local on {db} (pid {new_host})" in log
    finally:
        if new_host is not None:
            end_process(new_host)
    assert gone(new_host)
    # It released the lease when it stopped.
    assert "local" not in await asyncio.to_thread(_now, hosts, db)  # type: ignore[operator]
    assert processes(str(db)) == []


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
    ran = await runs(db)
    assert ran["w-1.r1"] == (RunStatus.FAILED, "host closed")
    assert ran["w-1.r2"][0] is RunStatus.CREATED and ran["w-1.r3"][0] is RunStatus.CREATED
    assert await hosts(db) == {}
    assert processes(SLEEP) == []


# -- a real terminal: q -> k ----------------------------------------------------------------


def _until_sleeping(master: int) -> None:
    deadline = time.monotonic() + 30
    while not processes(SLEEP):
        drain(master, 0.2)
        assert time.monotonic() < deadline, "the console never resumed the sleep"
    drain(master, 0.5)


@pytest.mark.slow
def test_q_then_keep_running_on_a_real_terminal_says_where_the_work_went(
    tmp_path: Path,
) -> None:
    """The operator's view: the question, `k`, and one line once the terminal is back."""
    # w-1.r2 runs `sleep 4071`, w-1.r3 and w-1.r4 are queued behind it.
    pid, master, db = start_console(tmp_path, SLEEP, *QUEUED)
    new_host: int | None = None
    try:
        _until_sleeping(master)
        os.write(master, b"q")
        drawn = b""
        deadline = time.monotonic() + 15
        while b"Keep running" not in drawn:
            drawn += drain(master, 0.2)
            assert time.monotonic() < deadline, "no question on quit"
        os.write(master, b"k")
        status, drawn = wait_exit(pid, master)
        assert status == 0
        new_host = handed_over_to(db, not_pid=pid)
        text = drawn.decode(errors="replace")
        after = text[text.rindex("\x1b[?1049l") :]  # what is left on the terminal
        assert f"agentdeck: runtime local keeps running in the background: `agentdeck host` pid {new_host} hosts it" in after
        assert "host-local.log" in after and "Traceback" not in text
        assert_queue_ran_after_hand_over(db, "w-1.r2", ["w-1.r3", "w-1.r4"])
    finally:
        with contextlib.suppress(OSError):
            os.close(master)
        if new_host is not None:
            end_process(new_host)
    assert gone(new_host)
    assert processes(str(db)) == [] and processes(SLEEP) == []
