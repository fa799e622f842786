"""The console end to end: every key against a real store file, the real engine and Pilot."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Select, Static, TextArea

from engine.profiles import parse_profiles
from engine.results import CreateWorkerRequest
from store.models import RunStatus, TaskIntent, WorkerRef, WorkerStatus
from tui.app import AgentDeckApp
from tui.backend import HostedBackend, open_backend
from tui.screens.confirm import ConfirmScreen
from tui.screens.create_worker import CreateWorkerScreen
from tui.screens.diagnostics import DiagnosticsScreen
from tui.screens.help import HelpScreen
from tui.screens.send_input import SendInputScreen
from tui.screens.worker import WorkerScreen
from tui.widgets.filter_bar import FilterBar

AGENTDECK = Path(sys.executable).parent / "agentdeck"
SIZE = (120, 40)


class Console:
    """The app under test plus what it told the operator."""

    def __init__(self, app: AgentDeckApp, pilot: Pilot[int]) -> None:
        self.app = app
        self.pilot = pilot
        self.said: list[str] = []
        original = app.notify

        def record(message: str, *args: object, **kwargs: object) -> None:
            self.said.append(str(message))
            original(message, *args, **kwargs)  # type: ignore[arg-type]

        app.notify = record  # type: ignore[method-assign]

    @property
    def backend(self) -> HostedBackend:
        assert isinstance(self.app.backend, HostedBackend)
        return self.app.backend

    async def until(self, condition: Callable[[], bool], timeout: float = 8.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not condition():
            if loop.time() > deadline:
                raise AssertionError("condition not met in time")
            await self.pilot.pause(0.05)

    async def said_something(self, fragment: str) -> None:
        await self.until(lambda: any(fragment in s for s in self.said))


def console(db: Path, **kwargs: object) -> AgentDeckApp:
    return AgentDeckApp(lambda: open_backend(db, watch=True, **kwargs), settings_file=None)  # type: ignore[arg-type]


async def started(app: AgentDeckApp, pilot: Pilot[int]) -> Console:
    c = Console(app, pilot)
    await c.until(
        lambda: app.main_screen is not None and app.main_screen.runtimes_pane.row_count > 0
    )
    return c


async def make_worker(c: Console, objective: str = "fix the build", **kwargs: object) -> WorkerRef:
    runtime = c.backend.runtime
    assert runtime is not None
    from store.models import TaskIntent

    record = await runtime.create_worker(
        CreateWorkerRequest(intent=TaskIntent(objective=objective), **kwargs)
    )  # type: ignore[arg-type]
    await c.until(lambda: record.worker_id in (c.app.main.workers_table._shown))
    c.app.main.workers_table.select_worker(record.worker_id)
    c.app.main.workers_table.focus()
    await c.pilot.pause()
    return record.ref


async def test_opens_hosting_local_with_no_configuration(tmp_path: Path) -> None:
    app = console(tmp_path / "a.db")
    async with app.run_test(size=SIZE) as pilot:
        c = await started(app, pilot)
        assert c.backend.runtime is not None and c.backend.runtime.runtime_id == "local"
        assert "hosting local" in app.sub_title
        assert app.main.runtimes_pane.selected_runtime_id == "local"
        await c.until(lambda: len(app.main.event_log.window) >= 1)
        assert app.main.event_log.window[0].kind == "runtime.started"


async def test_arrow_keys_on_an_empty_workers_table_do_nothing(tmp_path: Path) -> None:
    # Textual highlights "no row" on an empty table; that once crashed the console.
    app = console(tmp_path / "a.db")
    async with app.run_test(size=SIZE) as pilot:
        c = await started(app, pilot)
        assert app.main.workers_table.row_count == 0
        app.main.workers_table.focus()
        for key in ("up", "down", "k", "j", "g", "G"):
            await pilot.press(key)
        await pilot.pause()
        assert app.is_running and app.main.workers_table.row_count == 0
        app.main.runtimes_pane.focus()
        await pilot.press("up", "down")
        await pilot.pause()
        assert app.is_running and app.main.runtimes_pane.selected_runtime_id == "local"
        assert c.backend.runtime is not None


async def test_new_worker_form_validates_then_creates(tmp_path: Path) -> None:
    app = console(tmp_path / "a.db")
    async with app.run_test(size=SIZE) as pilot:
        c = await started(app, pilot)
        await pilot.press("n")
        await c.until(lambda: isinstance(app.screen, CreateWorkerScreen))
        app.screen.query_one("#cw-intent", Select).value = "task"
        await pilot.pause()
        await pilot.press("ctrl+s")  # blank objective
        await pilot.pause()
        assert isinstance(app.screen, CreateWorkerScreen)
        assert "objective" in str(app.screen.query_one("#cw-error").render())
        assert await c.backend.store.workers("local") == []
        app.screen.query_one("#cw-objective", Input).value = "triage CI"
        await pilot.press("ctrl+s")
        await c.said_something("created w-1")
        workers = await c.backend.store.workers("local")
        assert [w.worker_id for w in workers] == ["w-1"]
        assert workers[0].spec.intent.type == "task"
        await c.until(lambda: app.main.workers_table.row_count == 1)


async def test_input_runs_and_shows_in_transcript_and_log(tmp_path: Path) -> None:
    app = console(tmp_path / "a.db")
    async with app.run_test(size=SIZE) as pilot:
        c = await started(app, pilot)
        ref = await make_worker(c)
        await pilot.press("i")
        await c.until(lambda: isinstance(app.screen, SendInputScreen))
        app.screen.query_one("#si-content", TextArea).text = "line one\nline two"
        await pilot.press("ctrl+s")
        await c.said_something("queued as run w-1.r1")
        await c.until(lambda: any(e.role.value == "assistant" for e in app.main.transcript.entries))
        assert app.main.transcript.entries[0].content == "line one\nline two"
        assert app.main.transcript.entries[1].content == "echo: line one\nline two"
        await c.until(lambda: any(e.kind == "run.completed" for e in app.main.event_log.window))
        record = await c.backend.store.worker(ref.runtime_id, ref.worker_id)
        assert record is not None and record.transcript_len == 2


async def test_stop_asks_first_and_is_idempotent(tmp_path: Path) -> None:
    app = console(tmp_path / "a.db")
    async with app.run_test(size=SIZE) as pilot:
        c = await started(app, pilot)
        ref = await make_worker(c)
        await pilot.press("s")
        await c.until(lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")  # safe by default: no changes nothing
        await pilot.pause()
        record = await c.backend.store.worker(ref.runtime_id, ref.worker_id)
        assert record is not None and record.status is WorkerStatus.RUNNING
        await pilot.press("s")
        await c.until(lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await c.said_something("w-1 stopped")
        record = await c.backend.store.worker(ref.runtime_id, ref.worker_id)
        assert record is not None and record.status is WorkerStatus.STOPPED
        await pilot.press("c")
        await c.until(lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await c.said_something("already stopped")
        await pilot.press("i")  # refused before any dialog, naming the status
        await c.said_something("w-1 is stopped and takes no more input")
        assert not isinstance(app.screen, SendInputScreen)


async def test_cancel_worker_and_cancel_run(tmp_path: Path) -> None:
    config = tmp_path / "agentdeck.toml"
    config.write_text(
        '[profiles.slow]\nbuiltin = "demo"\ndemo = { pace = 5.0, steps = 3, fail_rate = 0.0 }\n'
    )
    app = console(tmp_path / "a.db", config=config)
    async with app.run_test(size=SIZE) as pilot:
        c = await started(app, pilot)
        parse_profiles(config.read_text())  # the file the runtime loaded is valid
        ref = await make_worker(c, profile="slow")
        await pilot.press("x")
        await c.said_something("has no run in progress")
        runtime = c.backend.runtime
        assert runtime is not None
        await runtime.send_input(ref, "first")
        await runtime.send_input(ref, "second")

        async def current() -> str | None:
            record = await c.backend.store.worker(ref.runtime_id, ref.worker_id)
            return record.current_run_id if record else None

        for _ in range(100):
            if await current() == "w-1.r1":
                break
            await pilot.pause(0.05)
        await pilot.press("x")
        await c.until(lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await c.said_something("run w-1.r1 cancelled")
        run = await c.backend.store.run("local", "w-1.r1")
        assert run is not None and run.status is RunStatus.CANCELLED
        for _ in range(100):
            if await current() == "w-1.r2":
                break
            await pilot.pause(0.05)
        assert await current() == "w-1.r2"  # the queue went on
        await pilot.press("c")
        await c.until(lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await c.said_something("w-1 cancelled")
        run2 = await c.backend.store.run("local", "w-1.r2")
        assert run2 is not None and run2.status is RunStatus.CANCELLED


async def test_worker_view_diagnostics_help_and_back(tmp_path: Path) -> None:
    app = console(tmp_path / "a.db")
    async with app.run_test(size=SIZE) as pilot:
        c = await started(app, pilot)
        ref = await make_worker(c)
        await pilot.press("enter")
        await c.until(lambda: isinstance(app.screen, WorkerScreen))
        assert app.screen.ref == ref
        await pilot.press("escape")
        await c.until(lambda: not isinstance(app.screen, WorkerScreen))
        await pilot.press("d")
        await c.until(lambda: isinstance(app.screen, DiagnosticsScreen))
        await pilot.press("escape")
        await pilot.press("question_mark")
        await c.until(lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("escape")
        await c.until(lambda: app.screen is app.main)


async def test_filter_errors_inline_and_applies(tmp_path: Path) -> None:
    app = console(tmp_path / "a.db")
    async with app.run_test(size=SIZE) as pilot:
        c = await started(app, pilot)
        await make_worker(c)
        await pilot.press("slash")
        bar = app.screen.query_one(FilterBar)
        assert bar.input.has_focus
        bar.input.value = "level:loud"
        await pilot.press("enter")
        await pilot.pause()
        assert bar.error is not None and "level:loud" in bar.error
        assert app.main.event_log.filter_text == ""
        bar.input.value = "kind:worker.*"
        await pilot.press("enter")
        await c.until(lambda: app.main.event_log.filter_text == "kind:worker.*")
        await c.until(lambda: bool(app.main.event_log.window))
        assert all(e.kind.startswith("worker.") for e in app.main.event_log.window)


async def test_copy_and_export(tmp_path: Path) -> None:
    app = console(tmp_path / "a.db")
    async with app.run_test(size=SIZE) as pilot:
        c = await started(app, pilot)
        await make_worker(c)
        await pilot.press("y")
        await c.said_something("copied")
        assert app.clipboard == "local/w-1"
        target = tmp_path / "out.jsonl"
        await pilot.press("E")
        await pilot.pause(0.2)
        app.screen.query_one("#ex-path", Input).value = str(target)
        await pilot.press("ctrl+s")
        await c.said_something("exported")
        rows = [json.loads(line) for line in target.read_text().splitlines()]
        assert [r["kind"] for r in rows][:2] == ["runtime.started", "worker.created"]


async def test_read_only_mode_says_why(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    writer = console(db)
    async with writer.run_test(size=SIZE) as pilot:
        c = await started(writer, pilot)
        await make_worker(c)
    app = console(db, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        c = await started(app, pilot)
        assert "read-only" in app.sub_title
        await c.until(lambda: app.main.workers_table.row_count == 1)
        for key, screen in (
            ("n", CreateWorkerScreen),
            ("i", SendInputScreen),
            ("s", ConfirmScreen),
        ):
            await pilot.press(key)
            await c.said_something("--read-only")
            assert not isinstance(app.screen, screen)
            c.said.clear()


async def test_untrusted_output_is_literal_and_inert(tmp_path: Path) -> None:
    app = console(tmp_path / "a.db")
    async with app.run_test(size=SIZE) as pilot:
        c = await started(app, pilot)
        ref = await make_worker(c)
        runtime = c.backend.runtime
        assert runtime is not None
        await runtime.send_input(ref, "[@click=app.quit]QUIT[/] [b]x[/b] \x1b[31mred")
        await c.until(lambda: len(app.main.transcript.entries) == 2)
        await pilot.pause(0.2)
        rendered = [app.main.transcript.render_line(y).text for y in range(app.main.transcript.size.height)]
        joined = "\n".join(rendered)
        assert "[@click=app.quit]QUIT[/]" in joined
        assert "␛[31mred" in joined
        # Click where the fake link is drawn: the app must still be running.
        await pilot.click(app.main.transcript, offset=(4, 1))
        await pilot.pause()
        assert app.is_running
        await c.until(lambda: any("QUIT" in e.message for e in app.main.event_log.window))


async def test_events_from_another_process_and_its_workers_operated_through_it(
    tmp_path: Path,
) -> None:
    """A runtime another process hosts (here `agentdeck demo`) shows live, and its workers
    take the same keys as those hosted here: the command goes to that process."""
    db = tmp_path / "a.db"
    app = console(db)
    async with app.run_test(size=SIZE) as pilot:
        c = await started(app, pilot)
        demo = await asyncio.create_subprocess_exec(
            str(AGENTDECK),
            "--db",
            str(db),
            "demo",
            "--runtime",
            "other",
            "--workers",
            "2",
            "--rate",
            "40",
            "--duration",
            "20",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await c.until(lambda: any(e.runtime_id == "other" for e in app.main.event_log.window), 15)
            await c.until(lambda: app.main.runtimes_pane.row_count == 2)
            app.main.runtimes_pane.select_runtime("other")
            await c.until(
                lambda: app.main.workers_table.runtime_id == "other" and app.main.workers_table.row_count == 2
            )
            app.main.workers_table.focus()
            assert "(through pid " in str(app.main.workers_table.border_title)
            await pilot.press("s")
            await c.until(lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("n")
            await c.until(lambda: not isinstance(app.screen, ConfirmScreen))
            assert not any("not available" in s for s in c.said), c.said
            # New events keep arriving from the other process.
            seen = max(e.position for e in app.main.event_log.window)
            await c.until(lambda: max(e.position for e in app.main.event_log.window) > seen, 10)
        finally:
            demo.send_signal(signal.SIGINT)
            _, err = await asyncio.wait_for(demo.communicate(), 20)
        assert demo.returncode == 0, err.decode()
        assert b"Traceback" not in err


def test_headless_commands_do_not_import_textual(tmp_path: Path) -> None:
    code = (
        "import sys; from tui.cli import main\n"
        "try:\n    main(['--db', sys.argv[1], 'verify'])\nexcept SystemExit: pass\n"
        "assert 'textual' not in sys.modules, 'verify imported textual'\n"
    )
    db = tmp_path / "v.db"
    env = dict(os.environ)
    result = subprocess.run(
        [sys.executable, "-c", code, str(db)], capture_output=True, text=True, env=env
    )
    assert "imported textual" not in result.stderr
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("size", [(80, 24)])
async def test_usable_at_80x24(tmp_path: Path, size: tuple[int, int]) -> None:
    app = console(tmp_path / "a.db")
    async with app.run_test(size=size) as pilot:
        c = await started(app, pilot)
        await make_worker(c)
        for widget in (app.main.runtimes_pane, app.main.workers_table, app.main.transcript, app.main.event_log):
            assert widget.size.height >= 2, f"{widget.id} has no room at 80x24"


async def test_theme_is_remembered(tmp_path: Path) -> None:
    settings = tmp_path / "settings.json"
    db = tmp_path / "a.db"
    app = AgentDeckApp(lambda: open_backend(db), settings_file=settings)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        app.theme = "textual-light"
        await pilot.pause()
    assert json.loads(settings.read_text())["theme"] == "textual-light"
    again = AgentDeckApp(lambda: open_backend(db), settings_file=settings)
    async with again.run_test(size=SIZE) as pilot:
        await started(again, pilot)
        assert again.theme == "textual-light"


async def test_palette_lists_every_action(tmp_path: Path) -> None:
    app = console(tmp_path / "a.db")
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        titles = {command.title for command in app.get_system_commands(app.screen)}
        for title in (
            "New worker",
            "Send input",
            "Stop worker",
            "Cancel worker",
            "Cancel current run",
            "Filter events",
            "Toggle follow",
            "Toggle pause",
            "Export events",
            "Quit",
            "Theme",
        ):
            assert any(title.lower() in t.lower() for t in titles), title


# -- issue 7 item 8: refusals stay in the dialog, with the text ----------------------------

MIB = 1024 * 1024


async def transcript_len(c: Console, ref: WorkerRef) -> int:
    record = await c.backend.store.worker(ref.runtime_id, ref.worker_id)
    assert record is not None
    page = await c.backend.store.transcript(ref, 0, 10)
    assert page.total_items == record.transcript_len
    return record.transcript_len


async def test_a_2_mib_input_is_refused_inside_the_dialog_and_kept(tmp_path: Path) -> None:
    """Issue 7 item 8: 2 MiB of input: the dialog stays, says why, keeps the text, stores nothing."""
    app = console(tmp_path / "a.db")
    async with app.run_test(size=SIZE) as pilot:
        c = await started(app, pilot)
        ref = await make_worker(c)
        last = await c.backend.store.last_seq("local")
        await pilot.press("i")
        await c.until(lambda: isinstance(app.screen, SendInputScreen))
        dialog = app.screen
        assert isinstance(dialog, SendInputScreen)
        big = "lorem ipsum dolor sit amet " * (2 * MIB // 27 + 1)
        area = dialog.query_one("#si-content", TextArea)
        area.text = big
        await pilot.pause()
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is dialog  # still open
        error = dialog.query_one("#si-error", Static)
        assert error.display
        shown = str(error.visual)
        assert "input is 2.0 MiB" in shown and "over the limit of 256 KiB" in shown
        assert "send it in parts" in shown
        assert area.text == big
        assert not area.soft_wrap  # shown unwrapped: wrapping 2 MiB costs seconds a key
        assert await transcript_len(c, ref) == 0
        assert await c.backend.store.last_seq("local") == last
        assert not any("over the limit" in said for said in c.said)  # inline, not a toast
        # Cut down to size, it goes: the dialog closes only now.
        area.text = "the first part"
        await pilot.press("ctrl+s")
        await c.said_something("queued as run w-1.r1")
        assert not isinstance(app.screen, SendInputScreen)
        await c.until(lambda: bool(app.main.transcript.entries))
        assert app.main.transcript.entries[0].content == "the first part"


async def test_input_to_a_worker_stopped_meanwhile_fails_inside_the_dialog(
    tmp_path: Path,
) -> None:
    """Issue 7 item 8: the real send fails (stopped after the dialog opened): inline, text kept."""
    app = console(tmp_path / "a.db")
    async with app.run_test(size=SIZE) as pilot:
        c = await started(app, pilot)
        ref = await make_worker(c)
        await pilot.press("i")
        await c.until(lambda: isinstance(app.screen, SendInputScreen))
        dialog = app.screen
        assert isinstance(dialog, SendInputScreen)
        runtime = c.backend.runtime
        assert runtime is not None
        await runtime.stop_worker(ref)
        await pilot.press(*"hello", "enter", *"there")
        await pilot.press("ctrl+s")
        error = dialog.query_one("#si-error", Static)
        await c.until(lambda: bool(error.display))
        assert app.screen is dialog
        assert "worker w-1 is stopped and takes no more input" in str(error.visual)
        assert dialog.query_one("#si-content", TextArea).text == "hello\nthere"
        assert await transcript_len(c, ref) == 0
        assert not any("takes no more input" in said for said in c.said)
        await pilot.press("escape")
        await c.until(lambda: not isinstance(app.screen, SendInputScreen))


async def test_an_over_limit_objective_is_refused_inside_the_form(tmp_path: Path) -> None:
    """Issue 7 item 8: a 1 MiB objective: the form stays as typed, names the field, creates nothing."""
    db = tmp_path / "a.db"
    app = console(db)
    async with app.run_test(size=SIZE) as pilot:
        c = await started(app, pilot)
        await pilot.press("n")
        await c.until(lambda: isinstance(app.screen, CreateWorkerScreen))
        form = app.screen
        assert isinstance(form, CreateWorkerScreen)
        form.query_one("#cw-intent", Select).value = "task"
        await pilot.pause()
        objective = form.query_one("#cw-objective", Input)
        huge = "o" * MIB
        objective.value = huge
        form.query_one("#cw-capabilities", Input).value = "shell, web: read docs"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is form
        error = form.query_one("#cw-error", Static)
        assert error.display
        shown = str(error.visual)
        assert shown.startswith("✗ task objective is 1.0 MiB (1048576 bytes)")
        assert "over the limit of 16 KiB (16384 bytes)" in shown
        assert app.focused is objective and objective.has_class("-invalid")
        assert objective.value == huge
        assert form.query_one("#cw-capabilities", Input).value == "shell, web: read docs"
        assert await c.backend.store.workers("local") == []
        assert not any("over the limit" in said for said in c.said)
        # Shortened, it is created and the form closes.
        objective.value = "triage CI"
        await pilot.press("ctrl+s")
        await c.said_something("created w-1")
        assert not isinstance(app.screen, CreateWorkerScreen)
        workers = await c.backend.store.workers("local")
        assert [w.spec.intent for w in workers] == [TaskIntent(objective="triage CI")]
    assert db.stat().st_size < MIB


async def test_a_refused_create_keeps_the_form_open_with_the_reason(tmp_path: Path) -> None:
    """Issue 7 item 8: the real create fails (runtime stopped meanwhile): inline, form kept."""
    app = console(tmp_path / "a.db")
    async with app.run_test(size=SIZE) as pilot:
        c = await started(app, pilot)
        await pilot.press("n")
        await c.until(lambda: isinstance(app.screen, CreateWorkerScreen))
        form = app.screen
        assert isinstance(form, CreateWorkerScreen)
        runtime = c.backend.runtime
        assert runtime is not None
        await runtime.stop_runtime()
        form.query_one("#cw-intent", Select).value = "role"
        await pilot.pause()
        form.query_one("#cw-role", Input).value = "reviewer"
        await pilot.press("ctrl+s")
        error = form.query_one("#cw-error", Static)
        await c.until(lambda: bool(error.display))
        assert app.screen is form
        assert "runtime local is stopped" in str(error.visual)
        assert form.query_one("#cw-role", Input).value == "reviewer"
        assert await c.backend.store.workers("local") == []
        assert not any("is stopped" in said for said in c.said)
