"""Issue 7 in the console: `q` asks before failing hosted runs; a full database is shown.

The real app through Pilot, on real database files, with real `sh` programs.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from textual.widgets import Static

from engine.results import CreateWorkerRequest
from store.models import RunStatus
from tests.ui.test_app import SIZE, Console, console, started
from tui.screens.quit import QuitScreen

CONFIG = """\
[profiles.sh]
command = ["sh", "-c"]
input = "argument"
grace = 0.3
"""


def with_config(tmp_path: Path) -> Path:
    (tmp_path / "agentdeck.toml").write_text(CONFIG)
    return tmp_path / "a.db"


async def running(c: Console, script: str) -> str:
    """A worker running `script` (an `sh -c` program); its run id once it executes."""
    runtime = c.backend.runtime
    assert runtime is not None
    worker = await runtime.create_worker(CreateWorkerRequest(profile="sh"))
    ack = await runtime.send_input(worker.ref, script)

    async def executing() -> bool:
        run = await c.backend.store.run("local", ack.run_id)
        return run is not None and run.status is RunStatus.EXECUTING

    await c.until(lambda: runtime.work_in_progress()[0] == [ack.run_id])
    for _ in range(100):
        if await executing():
            break
        await c.pilot.pause(0.05)
    return ack.run_id


def body_of(screen: QuitScreen) -> str:
    return " ".join(str(w.render()) for w in screen.query(Static))


async def test_q_asks_before_failing_runs_in_progress(tmp_path: Path) -> None:
    """Issue 7 item 10: `q` names the runs that stopping would fail; `n` keeps everything
    going; "stop" fails them and keeps the queue (issue 9 item 4 added "keep running")."""
    db = with_config(tmp_path)
    app = console(db)
    async with app.run_test(size=SIZE) as pilot:
        c = await started(app, pilot)
        run_id = await running(c, "sleep 407")
        runtime = c.backend.runtime
        assert runtime is not None
        await runtime.send_input((await c.backend.store.workers("local"))[0].ref, "echo later")
        await pilot.press("q")
        await c.until(lambda: isinstance(app.screen, QuitScreen))
        text = body_of(app.screen)  # type: ignore[arg-type]
        assert "Quit while runtime local has work?" in text
        assert f"1 run in progress ({run_id}) and 1 queued input" in text
        assert 'the run in progress fails "host closed" and its program ends' in text
        await pilot.press("n")
        await c.until(lambda: not isinstance(app.screen, QuitScreen))
        assert app.is_running and runtime.work_in_progress()[0] == [run_id]
        await pilot.press("q")
        await c.until(lambda: isinstance(app.screen, QuitScreen))
        await pilot.press("s")
        await c.until(lambda: not app.is_running)
    assert app.return_code == 0
    check = sqlite3.connect(db)
    try:
        status, error = check.execute(
            "SELECT status, error FROM runs WHERE run_id = ?", (run_id,)
        ).fetchone()
        queued = check.execute("SELECT status FROM runs WHERE run_id = 'w-1.r2'").fetchone()
    finally:
        check.close()
    assert (status, error) == ("failed", "host closed")
    assert queued == ("created",)


async def test_q_with_nothing_running_quits_at_once(tmp_path: Path) -> None:
    """Issue 7 item 10: no question when quitting fails nothing."""
    app = console(with_config(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        await pilot.press("q")
        await pilot.pause()
        assert not isinstance(app.screen, QuitScreen)
    assert app.return_code == 0


async def test_a_full_database_is_said_and_shown_until_it_takes_writes_again(
    tmp_path: Path,
) -> None:
    """Issue 7 item 5: the console tells the operator, keeps saying it, and says when it is over."""
    app = console(with_config(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        c = await started(app, pilot)
        run_id = await running(c, "while true; do echo tick; sleep 0.05; done")
        store = c.backend.store

        def freeze(conn: sqlite3.Connection) -> None:
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {pages}").fetchone()

        await store.run_job(freeze)
        await c.said_something("cannot write to the database")
        assert any("disk is full" in s for s in c.said)
        assert "cannot write: work on hold" in app.sub_title
        await store.run_job(lambda conn: conn.execute("PRAGMA max_page_count = 1073741823"))
        await c.said_something("takes writes again")
        await c.until(lambda: "cannot write" not in app.sub_title)
        run = await store.run("local", run_id)
        assert run is not None and run.status is RunStatus.FAILED
        assert run.error is not None and "could not be recorded" in run.error


def test_an_unexpected_error_in_the_console_prints_no_traceback(tmp_path: Path) -> None:
    """Issue 7 item 7: a bug inside the app ends it with one line and a crash log."""
    script = (
        "import sys\n"
        "from tui.app import AgentDeckApp\n"
        "from tui.crash_log import crash_line\n"
        "async def broken():\n"
        "    raise RuntimeError('a bug in the backend factory')\n"
        "app = AgentDeckApp(broken, settings_file=None)\n"
        "app.run(headless=True)\n"
        "assert isinstance(app.crash, RuntimeError), app.crash\n"
        "print(crash_line(app.crash), file=sys.stderr)\n"
    )
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    [line] = result.stderr.splitlines()
    assert "unexpected error (RuntimeError: a bug in the backend factory)" in line
    saved = Path(line.split("details in ", 1)[1].split(";", 1)[0])
    assert "a bug in the backend factory" in saved.read_text()


async def test_a_thousand_term_filter_is_refused_inline_not_called_damage(tmp_path: Path) -> None:
    """Issue 7 item 6: the filter bar names the limit; the log keeps its rows and filter."""
    app = console(with_config(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        c = await started(app, pilot)
        await c.until(lambda: bool(app.main.event_log.window))
        shown = list(app.main.event_log.window)
        await pilot.press("slash")
        bar = app.main.filter_bar
        bar.input.value = " ".join(f"-word{i}" for i in range(1000))
        await pilot.press("enter")
        await pilot.pause()
        assert bar.error is not None and "narrow the filter" in bar.error
        assert "damaged" not in bar.error
        assert app.main.event_log.filter_text == ""
        assert list(app.main.event_log.window) == shown
        assert not any("damaged" in said for said in c.said)
