"""The console on PostgreSQL, end to end (issue 10): a real `AgentDeckApp` hosting a runtime
on a database of the session's throwaway server (tests/pg.py), driven with Pilot keys.

`n` creates a worker on a shell profile (`command = ["sh", "-c"]`, `input = "argument"`), `i`
sends it `echo hello`, and the answer is read from what the transcript pane draws. A second
store on the same database, and a child `agentdeck events --db URL`, see the same events; the
event log's filter with a free word keeps only the events that carry it.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from textual.widgets import Select, TextArea

from store.open import open_store
from store.postgres.event_store import PgEventStore
from tests.store.support import child_env, read_all
from tests.ui.rendered import content_rows, pane_rows
from tests.ui.waits import until
from tui.app import AgentDeckApp
from tui.backend import HostedBackend, open_backend
from tui.screens.create_worker import CreateWorkerScreen
from tui.screens.send_input import SendInputScreen

AGENTDECK = Path(sys.executable).parent / "agentdeck"
SHELL_PROFILE = '[profiles.sh]\ncommand = ["sh", "-c"]\ninput = "argument"\ngrace = 0.3\n'



async def test_the_console_hosts_a_shell_worker_on_postgresql(
    pg_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "agentdeck.toml"
    config.write_text(SHELL_PROFILE)
    app = AgentDeckApp(
        lambda: open_backend(pg_url, config=config),  # the LISTEN/NOTIFY feed included
        settings_file=None,
    )
    async with app.run_test(size=(120, 40)) as pilot:
        await until(
            pilot, lambda: app.main_screen is not None and app.main.runtimes_pane.row_count > 0
        )
        backend = app.backend
        assert isinstance(backend, HostedBackend) and backend.runtime is not None
        assert isinstance(backend.store, PgEventStore)

        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, CreateWorkerScreen))
        app.screen.query_one("#cw-profile", Select).value = "sh"
        await pilot.pause()
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.screen is app.main)
        await until(pilot, lambda: app.main.workers_table.row_count == 1)

        await pilot.press("i")
        await until(pilot, lambda: isinstance(app.screen, SendInputScreen))
        app.screen.query_one("#si-content", TextArea).text = "echo hello"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: not isinstance(app.screen, SendInputScreen))

        # The program's answer, as the transcript pane draws it (not anywhere on screen).
        def transcript() -> list[str]:
            return content_rows(pane_rows(app, app.main.transcript))

        await until(pilot, lambda: any(row.strip() == "hello" for row in transcript()))
        shown = transcript()
        assert any(row.strip() == "echo hello" for row in shown), shown  # the input, above it
        runtime = backend.runtime
        worker = (await backend.store.workers("local"))[0]
        assert worker.spec.profile == "sh"
        run = await backend.store.run("local", f"{worker.worker_id}.r1")
        assert run is not None and run.status.value == "completed"

        # A second store on the same database (its own connections) sees the same log.
        async with await open_store(pg_url, read_only=True) as other:
            mine = await read_all(backend.store)
            theirs = await read_all(other)
        assert [e.event_id for e in theirs] == [e.event_id for e in mine]
        assert any(
            e.kind == "worker.output" and e.payload.get("content") == "hello" for e in theirs
        )
        # And another process, through the command line.
        listed = await asyncio.to_thread(
            subprocess.run,
            [str(AGENTDECK), "--db", pg_url, "events", "--filter", "runtime:local"],
            capture_output=True, text=True, env=child_env(), timeout=60,
        )
        assert listed.returncode == 0, listed.stderr
        assert "run.completed" in listed.stdout and f"{worker.worker_id}.r1" in listed.stdout

        # The event log filter with a free word: only the events that carry it are drawn.
        await runtime.send_input(worker.ref, "echo goodbye")
        log = app.main.event_log
        await until(pilot, lambda: any("goodbye" in row for row in pane_rows(app, log)))
        await pilot.press("slash")
        await pilot.press(*"hello")
        await pilot.press("enter")
        await until(pilot, lambda: log.filter_text == "hello")
        await until(
            pilot, lambda: not any("goodbye" in row for row in pane_rows(app, log)), timeout=10
        )
        rows = [row for row in content_rows(pane_rows(app, log)) if row.strip()]
        # The word matches in a message or a payload (the run's result says hello too): the
        # events of the first run only, never those of the goodbye run.
        assert any("echo hello" in row for row in rows), rows
        assert all(f"{worker.worker_id}.r1" in row for row in rows), rows
