"""A console that watches a runtime hosted elsewhere takes it over when that host dies
(issue 9 item 5): a real host process, SIGKILL, the real app under Pilot."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.store.support import child_env, wait_for_line
from tests.ui.test_live import console, started, until
from tui.backend import AccessMode
from tui.screens.create_worker import CreateWorkerScreen

HOST_CHILD = Path(__file__).parents[1] / "engine" / "programs" / "host_child.py"


def start_holder(db: Path) -> subprocess.Popen[str]:
    """Another process hosting runtime `local` on `db`, once it says so."""
    holder = subprocess.Popen(
        [sys.executable, str(HOST_CHILD), str(db), "local", "hold"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=child_env(),
    )
    wait_for_line(holder, "hosting")
    return holder


async def test_a_watching_console_takes_over_when_the_host_is_killed(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    holder = start_holder(db)
    try:
        app = console(db)
        async with app.run_test(size=(120, 40)) as pilot:
            await started(app, pilot)
            # Hosted elsewhere: operated through that host until it dies.
            await until(
                pilot, lambda: f"operating local through pid {holder.pid} on" in str(app.sub_title)
            )
            assert app.main.backend.access("local").mode is AccessMode.REMOTE
            os.kill(holder.pid, signal.SIGKILL)
            holder.wait(timeout=10)
            await until(pilot, lambda: "hosting local" in str(app.sub_title), timeout=15)
            told = [n.message for n in app._notifications]
            assert any(f"pid {holder.pid}" in m and "took over" in m for m in told), told
            assert app.main.backend.access("local").mode is AccessMode.HOSTED
            await pilot.press("n")  # the keys work now, as for a runtime hosted here
            await until(pilot, lambda: isinstance(app.screen, CreateWorkerScreen))
            await pilot.press("ctrl+s")
            await until(pilot, lambda: app.main.workers_table.row_count == 1)
            await asyncio.sleep(0)
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.communicate(timeout=10)
