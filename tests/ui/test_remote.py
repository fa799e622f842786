"""Issue 9 item 2: a console operates any runtime of its database, whoever hosts it.

Real processes on real database files: `agentdeck host` hosting the runtime a
Pilot console operates through the command inbox, and the reverse, a script
with a `CommandClient` operating the runtime a Pilot console hosts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from textual.widgets import TextArea

from engine.errors import WorkerNotRunning
from store.models import WorkerRef, WorkerSpec
from tests.store.support import AGENTDECK, child_env, wait_for_line
from tests.ui.console_process import profiles_config
from tests.ui.rendered import pane_border, pane_rows
from tests.ui.test_app import SIZE, Console, console, started
from tui.backend import AccessMode
from tui.screens.confirm import ConfirmScreen
from tui.screens.create_worker import CreateWorkerScreen
from tui.screens.send_input import SendInputScreen

CONFIG = profiles_config(grace=0.3, timeout=None)  # the default timeout
CLIENT = Path(__file__).parent / "programs" / "remote_client.py"


def start_host(db: Path, runtime: str = "local") -> subprocess.Popen[str]:
    """`agentdeck host` for `runtime` on `db`, once it says it hosts it."""
    host = subprocess.Popen(
        [str(AGENTDECK), "--db", str(db), "host", "--runtime", runtime],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=child_env(),
    )
    wait_for_line(host, f"agentdeck: host {runtime}: hosting")
    return host


def end(process: subprocess.Popen[str]) -> str:
    """Stop a host the way a service manager does; what it wrote."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        output, _ = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate(timeout=10)
    return output or ""


async def dialog_sends(c: Console, text: str) -> SendInputScreen:
    """Open `i` on the selected worker and type `text` (not sent yet)."""
    await c.pilot.press("i")
    await c.until(lambda: isinstance(c.app.screen, SendInputScreen))
    screen = c.app.screen
    assert isinstance(screen, SendInputScreen)
    screen.query_one("#si-content", TextArea).text = text
    return screen


async def confirmed(c: Console, key: str) -> None:
    await c.pilot.press(key)
    await c.until(lambda: isinstance(c.app.screen, ConfirmScreen))
    await c.pilot.press("y")
    await c.until(lambda: not isinstance(c.app.screen, ConfirmScreen))


async def test_a_console_operates_a_runtime_hosted_by_agentdeck_host(tmp_path: Path) -> None:
    """The keys, dialogs, confirmations and lines are those of a runtime hosted here."""
    db = tmp_path / "a.db"
    (tmp_path / "agentdeck.toml").write_text(CONFIG)
    host = start_host(db)
    try:
        app = console(db)
        async with app.run_test(size=SIZE) as pilot:
            c = await started(app, pilot)
            main = app.main
            through = f"operating local through pid {host.pid} on "
            await c.until(lambda: through in str(app.sub_title))
            assert c.backend.runtime is None  # nothing is hosted in this process
            assert c.backend.access("local").mode is AccessMode.REMOTE
            await c.until(
                lambda: any(f"pid {host.pid}@" in row for row in pane_rows(app, main.runtimes_pane))
            )
            assert f"through pid {host.pid} on" in pane_border(app, main.workers_table, bottom=False)

            await pilot.press("n")
            await c.until(lambda: isinstance(app.screen, CreateWorkerScreen))
            form = app.screen
            assert isinstance(form, CreateWorkerScreen)
            assert "sh" in form.profile_names  # read from the same agentdeck.toml
            assert form._title().startswith(f"New worker in runtime local (through pid {host.pid} on ")
            await pilot.press("ctrl+s")
            await c.said_something("created w-1 (sh)")  # the host's default profile
            await c.until(lambda: main.workers_table.row_count == 1)
            main.workers_table.focus()

            await dialog_sends(c, "echo answered-by-$0-elsewhere")
            await pilot.press("ctrl+s")
            await c.said_something("w-1: input #1 queued as run w-1.r1")
            assert not isinstance(app.screen, SendInputScreen)
            await c.until(
                lambda: "  answered-by-sh-elsewhere" in pane_rows(app, main.transcript), 15
            )

            # x, s and c: the same questions and the same lines as for a runtime hosted here.
            await dialog_sends(c, "sleep 30")
            await pilot.press("ctrl+s")
            await c.said_something("queued as run w-1.r2")
            ref = WorkerRef(runtime_id="local", worker_id="w-1")

            async def executing() -> bool:
                record = await c.backend.store.worker("local", "w-1")
                return record is not None and record.current_run_id == "w-1.r2"

            for _ in range(200):
                if await executing():
                    break
                await pilot.pause(0.05)
            await confirmed(c, "x")
            await c.said_something("run w-1.r2 cancelled")

            await confirmed(c, "s")
            await c.said_something("w-1 stopped")
            await confirmed(c, "c")
            await c.said_something("w-1 was already stopped; nothing changed")
            await pilot.press("i")
            await c.said_something("w-1 is stopped and takes no more input")
            with pytest.raises(WorkerNotRunning) as refused:
                await c.backend.send_input(ref, "too late")
            assert str(refused.value) == "worker w-1 is stopped and takes no more input"

            # The operator opens the input dialog; meanwhile the worker is stopped: the
            # host's refusal comes back as the engine's own error, with its own line.
            other = await c.backend.create_worker("local", WorkerSpec())
            await c.until(lambda: main.workers_table.row_count == 2)
            main.workers_table.select_worker(other.worker_id)
            await pilot.pause()
            screen = await dialog_sends(c, "too late")
            await c.backend.stop_worker(other.ref)
            await pilot.press("ctrl+s")
            await c.until(lambda: screen.error is not None)
            assert screen.error == f"✗ {WorkerNotRunning('w-2', 'stopped')}"
            await pilot.press("escape")
            await c.until(lambda: not isinstance(app.screen, SendInputScreen))
            assert not any("not available" in line for line in c.said), c.said
    finally:
        output = end(host)
    assert "Traceback" not in output, output


async def test_a_runtime_with_no_live_host_says_why_and_what_to_do(tmp_path: Path) -> None:
    """A runtime whose host stopped: the pane says so, and a key says how to get one."""
    db = tmp_path / "a.db"
    end(start_host(db, "ci"))  # hosted once, then stopped: no live host now
    app = console(db)
    async with app.run_test(size=SIZE) as pilot:
        c = await started(app, pilot)
        main = app.main
        await c.until(lambda: main.runtimes_pane.row_count == 2)
        await c.until(
            lambda: any(
                row.split()[1:2] == ["ci"] and "no live host" in row
                for row in pane_rows(app, main.runtimes_pane)
            )
        )
        main.runtimes_pane.select_runtime("ci")
        await c.until(lambda: main.workers_table.runtime_id == "ci")
        assert "(no live host)" in pane_border(app, main.workers_table, bottom=False)
        await pilot.press("n")
        await c.said_something("agentdeck host --runtime ci")
        line = next(s for s in c.said if "no live host" in s)
        assert line.startswith("not available: runtime ci has no live host (no process hosts it)")
        assert not isinstance(app.screen, CreateWorkerScreen)


async def test_another_process_operates_the_runtime_this_console_hosts(tmp_path: Path) -> None:
    """The reverse: a script's commands run here, and every pane shows them live."""
    db = tmp_path / "a.db"
    (tmp_path / "agentdeck.toml").write_text(CONFIG)
    app = console(db)
    async with app.run_test(size=SIZE) as pilot:
        c = await started(app, pilot)
        main = app.main
        await c.until(lambda: c.backend.runtime is not None)
        client = await asyncio.create_subprocess_exec(
            sys.executable, str(CLIENT), str(db), "local", "echo from-a-script",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=child_env(),
        )
        try:
            raw_out, raw_err = await asyncio.wait_for(client.communicate(), 30)
        finally:
            with contextlib.suppress(ProcessLookupError):
                client.kill()
        out, err = raw_out.decode(), raw_err.decode()
        assert client.returncode == 0, (out, err)
        assert [json.loads(line) for line in out.splitlines()] == [
            {"worker": "w-1"}, {"run": "w-1.r1"},
        ]
        await c.until(lambda: main.workers_table.row_count == 1)
        assert any("w-1" in row for row in pane_rows(app, main.workers_table))
        main.workers_table.select_worker("w-1")
        await c.until(lambda: "  from-a-script" in pane_rows(app, main.transcript), 15)

        # The commands and their outcomes are events like any other: the log shows them.
        main.filter_bar.set_active("kind:command.*")
        await main.event_log.set_filter("kind:command.*").wait()
        await pilot.pause(0.2)
        shown = [row for row in pane_rows(app, main.event_log) if row.strip()]
        kinds = [row.split()[3] for row in shown]
        assert kinds == ["command.issued", "command.completed"] * 2, shown
        assert "asks: create a" in shown[0] and "asks: input to" in shown[2]
        said = [e.message for e in main.event_log.window]
        assert "asks: create a worker (assistant, default)" in said[0]
        assert said[2].endswith("asks: input to w-1: echo from-a-script (command " + said[2][-9:])
