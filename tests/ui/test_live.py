"""The console live, end to end: a real store file, the builtin echo profile, Pilot keys,
and assertions on what each pane *draws* (read from the screen's compositor).

The transcript tests pin a bug: on a fresh worker the first answer was not drawn
until a resize (rows drawn past the end were cached blank and reused when
entries were appended), and a second input showed blank rows above the newest
answer.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, timedelta, timezone
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import TextArea

from engine.results import CreateWorkerRequest
from engine.runtime import Runtime
from store.models import AssistantIntent, WorkerRecord, WorkerRef
from tests.ui.fake_backend import FakeBackend
from tests.ui.rendered import content_rows, pane_border, pane_rows, scrollbar_thumb_rows
from tests.ui.waits import until
from tui.app import AgentDeckApp
from tui.backend import HostedBackend, open_backend
from tui.screens.create_worker import CreateWorkerScreen
from tui.screens.send_input import SendInputScreen
from tui.screens.worker import WorkerScreen

HEADING = re.compile(r"^\d\d:\d\d:\d\d (user|assistant|system|tool) +#\d+")


def console(db: Path, **kwargs: object) -> AgentDeckApp:
    return AgentDeckApp(lambda: open_backend(db, watch=False), settings_file=None, **kwargs)  # type: ignore[arg-type]


def fake_console(backend: FakeBackend) -> AgentDeckApp:
    """The console on an in-memory backend (no store, no engine), times in UTC."""

    async def open_fake() -> FakeBackend:
        return backend

    return AgentDeckApp(open_fake, settings_file=None, tz=UTC)



async def started(app: AgentDeckApp, pilot: Pilot[int]) -> None:
    await until(
        pilot,
        lambda: app.main_screen is not None and app.main_screen.runtimes_pane.row_count > 0,
    )


def backend_of(app: AgentDeckApp) -> HostedBackend:
    assert isinstance(app.backend, HostedBackend)
    return app.backend


async def hosted_worker(app: AgentDeckApp, pilot: Pilot[int]) -> tuple[Runtime, WorkerRef]:
    """The runtime this console hosts, and a new echo worker once its row is in the table."""
    runtime = backend_of(app).runtime
    assert runtime is not None
    record = await runtime.create_worker(CreateWorkerRequest(intent=AssistantIntent()))
    await until(pilot, lambda: app.main.workers_table.row_count == 1)
    return runtime, record.ref


async def send_by_keys(app: AgentDeckApp, pilot: Pilot[int], text: str) -> None:
    await pilot.press("i")
    await until(pilot, lambda: isinstance(app.screen, SendInputScreen))
    app.screen.query_one("#si-content", TextArea).text = text
    await pilot.press("ctrl+s")
    await until(pilot, lambda: not isinstance(app.screen, SendInputScreen))


def transcript_rows(app: AgentDeckApp) -> list[str]:
    return pane_rows(app, app.main.transcript)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
async def test_first_answer_on_a_fresh_worker_is_drawn(tmp_path: Path, size: tuple[int, int]) -> None:
    app = console(tmp_path / "a.db")
    async with app.run_test(size=size) as pilot:
        await started(app, pilot)
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, CreateWorkerScreen))
        await pilot.press("ctrl+s")  # an assistant on the default (echo) profile
        await until(pilot, lambda: app.screen is app.main)
        await until(pilot, lambda: app.main.workers_table.row_count == 1)
        await send_by_keys(app, pilot, "hello")
        await until(pilot, lambda: "  echo: hello" in transcript_rows(app))
        rows = content_rows(transcript_rows(app))
        assert rows[-1] == "  echo: hello"
        assert "  hello" in rows

        await send_by_keys(app, pilot, "again")
        await until(pilot, lambda: "  echo: again" in transcript_rows(app))
        rows = transcript_rows(app)
        shown = content_rows(rows)
        # Newest at the bottom, and no blank rows drawn where entries are.
        assert shown[-1] == "  echo: again"
        assert all(row.strip() for row in shown), rows
        assert HEADING.match(shown[-2]), rows


async def test_a_worker_made_with_n_is_selected_even_when_reads_are_slow() -> None:
    """`n` then `i` must feed the new worker, not the one highlighted before.

    Worker reads take a while here (a busy disk, a remote store): selecting the
    new row once a re-read lands raced the next repaint, and the input went to w-1.
    """
    class SlowReads(FakeBackend):
        async def worker(self, runtime_id: str, worker_id: str) -> WorkerRecord | None:
            await asyncio.sleep(0.3)
            return await super().worker(runtime_id, worker_id)

    fake = SlowReads()
    app = fake_console(fake)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(app, pilot)
        for count in (1, 2):
            await pilot.press("n")
            await until(pilot, lambda: isinstance(app.screen, CreateWorkerScreen))
            await pilot.press("ctrl+s")
            await until(pilot, lambda: app.screen is app.main)
            await until(pilot, lambda n=count: app.main.workers_table.row_count == n)
        await pilot.pause(0.5)
        assert app.main.workers_table.selected_worker_id == "w-2"
        await send_by_keys(app, pilot, "for the new one")
        await until(pilot, lambda: "  echo: for the new one" in transcript_rows(app))
        assert "w-2" in pane_border(app, app.main.transcript, bottom=False)
        w1 = WorkerRef(runtime_id=fake.default_runtime_id, worker_id="w-1")
        assert (await fake.transcript(w1, 0, 10)).items == []


async def test_a_hundred_answers_while_scrolled_up_keep_the_view_and_count_below(
    tmp_path: Path,
) -> None:
    app = console(tmp_path / "a.db")
    async with app.run_test(size=(100, 30)) as pilot:
        await started(app, pilot)
        runtime, ref = await hosted_worker(app, pilot)
        for n in range(6):
            await runtime.send_input(ref, f"warm-up {n}")
        await until(pilot, lambda: "  echo: warm-up 5" in transcript_rows(app))
        transcript = app.main.transcript
        transcript.focus()
        await pilot.press("home")
        await until(pilot, lambda: transcript.scroll_y == 0)
        await pilot.pause(0.2)
        before = transcript_rows(app)
        assert "  warm-up 0" in before

        for n in range(100):
            await runtime.send_input(ref, f"stream {n}")
        await until(
            pilot,
            lambda: bool(transcript.entries) and transcript.entries[-1].content == "echo: stream 99",
            timeout=30,
        )
        await pilot.pause(0.3)
        assert transcript_rows(app) == before  # the view stayed where the operator put it
        assert "200 new below" in pane_border(app, transcript)

        await pilot.press("end")
        await until(pilot, lambda: "  echo: stream 99" in transcript_rows(app))
        await pilot.pause(0.2)
        assert "new below" not in pane_border(app, transcript)


async def test_a_long_transcript_shown_as_the_console_starts_has_its_thumb_at_the_end(
    tmp_path: Path,
) -> None:
    """The transcript scrolled to its end before its scrollbar was shown; the scrollbar,
    made then, drew its thumb at the top until the next scroll."""
    db = tmp_path / "a.db"
    app = console(db)
    async with app.run_test(size=(100, 30)) as pilot:
        await started(app, pilot)
        runtime, ref = await hosted_worker(app, pilot)
        for n in range(15):
            await runtime.send_input(ref, f"question {n}")
        await until(pilot, lambda: "  echo: question 14" in transcript_rows(app), timeout=30)

    app = console(db)  # the next console selects the worker as it starts
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: "  echo: question 14" in transcript_rows(app))
        transcript = app.main.transcript
        await until(pilot, lambda: transcript.show_vertical_scrollbar)
        await pilot.pause(0.2)
        assert content_rows(transcript_rows(app))[-1] == "  echo: question 14"  # the end
        track = transcript.vertical_scrollbar.region.height
        thumb = scrollbar_thumb_rows(app, transcript)
        assert thumb and thumb[-1] == track - 1, (thumb, track)


async def test_worker_view_and_main_pane_show_the_same_entries_at_the_same_times(
    tmp_path: Path,
) -> None:
    # A zone that is not the machine's: every pane must use the console's one clock.
    app = console(tmp_path / "a.db", tz=timezone(timedelta(hours=5, minutes=30)))
    async with app.run_test(size=(120, 40)) as pilot:
        await started(app, pilot)
        runtime, ref = await hosted_worker(app, pilot)
        await runtime.send_input(ref, "one")
        await runtime.send_input(ref, "two")
        await until(pilot, lambda: "  echo: two" in transcript_rows(app))
        main_rows = content_rows(transcript_rows(app))
        entries = list(app.main.transcript.entries)
        assert len(entries) == 4
        local = entries[-1].at.astimezone(timezone(timedelta(hours=5, minutes=30)))
        assert main_rows[-2].startswith(local.strftime("%H:%M:%S"))

        log_rows = pane_rows(app, app.main.event_log)
        output_rows = [row for row in log_rows if "worker.output" in row]
        assert output_rows and output_rows[-1].startswith(local.strftime("%H:%M:%S."))

        app.main.workers_table.focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, WorkerScreen))
        screen = app.screen
        assert isinstance(screen, WorkerScreen)
        await until(pilot, lambda: "  echo: two" in pane_rows(app, screen.transcript))
        view_rows = content_rows(pane_rows(app, screen.transcript))
        # The main pane shows the newest rows that fit; the view shows them all, the same.
        assert len(view_rows) == 8 and view_rows[-len(main_rows) :] == main_rows
        assert "UTC+05:30" in str(screen.sub_title)


async def test_a_filter_changed_while_events_stream_shows_only_matches(tmp_path: Path) -> None:
    app = console(tmp_path / "a.db")
    async with app.run_test(size=(120, 40)) as pilot:
        await started(app, pilot)
        runtime, ref = await hosted_worker(app, pilot)

        async def stream() -> None:
            for n in range(60):
                await runtime.send_input(ref, f"input {n}")
                await asyncio.sleep(0.01)

        streaming = asyncio.create_task(stream())
        await pilot.pause(0.2)
        await pilot.press("slash")
        await pilot.press(*"kind:run.completed")
        await pilot.press("enter")
        await streaming
        log = app.main.event_log
        await until(pilot, lambda: log.filter_text == "kind:run.completed")
        await until(
            pilot,
            lambda: any("w-1.r60" in row for row in pane_rows(app, log)),
            timeout=20,
        )
        await pilot.pause(0.3)
        rows = [row for row in pane_rows(app, log) if row.strip()]
        assert rows
        assert all("run.completed" in row for row in rows), rows
        completed = [row for row in rows if "run.completed" in row]
        assert len(completed) == len(rows)
        assert len({row for row in rows}) == len(rows)  # no event drawn twice


async def test_the_console_runs_on_any_backend_a_small_fake_one(tmp_path: Path) -> None:
    fake = FakeBackend()
    app = fake_console(fake)
    async with app.run_test(size=(100, 30)) as pilot:
        await started(app, pilot)
        assert "memory — hosting mem — times UTC" in str(app.sub_title)
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, CreateWorkerScreen))
        app.screen.query_one("#cw-intent").value = "task"  # type: ignore[attr-defined]
        await pilot.pause()
        await pilot.press("ctrl+s")  # no objective: the backend's validator says so, inline
        await until(pilot, lambda: isinstance(app.screen, CreateWorkerScreen) and bool(app.screen.error))
        assert isinstance(app.screen, CreateWorkerScreen)
        assert "objective" in (app.screen.error or "")
        assert fake.commands == []
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.main)
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, CreateWorkerScreen))
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.screen is app.main)
        await until(pilot, lambda: any("w-1" in row for row in pane_rows(app, app.main.workers_table)))
        await send_by_keys(app, pilot, "hi")
        await until(pilot, lambda: "  echo: hi" in transcript_rows(app))
        assert fake.commands == ["create", "input hi"]
        rows = content_rows(transcript_rows(app))
        assert rows[0].startswith("03:04:0") and "user" in rows[0]
        await until(pilot, lambda: any("worker.output" in r for r in pane_rows(app, app.main.event_log)))
        await pilot.press("s")
        await pilot.press("y")
        await until(pilot, lambda: fake.commands[-1] == "stop")
        await until(pilot, lambda: any("stopped" in row for row in pane_rows(app, app.main.workers_table)))


async def test_under_a_dialog_batches_only_mark_stale_and_the_panes_catch_up(
    tmp_path: Path,
) -> None:
    app = console(tmp_path / "a.db")
    async with app.run_test(size=(120, 40)) as pilot:
        await started(app, pilot)
        runtime, ref = await hosted_worker(app, pilot)
        log = app.main.event_log
        await until(pilot, lambda: log.loaded and log.attached)
        await pilot.press("question_mark")  # the help screen covers the main one
        await until(pilot, lambda: app.screen is not app.main)
        shown = len(log.window)
        entries = len(app.main.transcript.entries)
        await runtime.send_input(ref, "while covered")
        await until(pilot, lambda: app.feed is not None and app.feed.pending == 0)
        await pilot.pause(0.5)
        assert len(log.window) == shown and len(app.main.transcript.entries) == entries
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.main)
        await until(pilot, lambda: "  echo: while covered" in transcript_rows(app))
        await until(pilot, lambda: any("run.completed" in r for r in pane_rows(app, log)))


async def test_enter_on_the_transcript_opens_its_worker_full_screen(tmp_path: Path) -> None:
    """tab to the transcript, enter: the worker view (not only from the workers table)."""
    app = console(tmp_path / "a.db")
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        await hosted_worker(app, pilot)
        await until(pilot, lambda: app.main.workers_table.selected_worker_id == "w-1")
        app.main.transcript.focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, WorkerScreen))
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.main)
        app.main.event_log.focus()
        await pilot.press("enter")  # the event log has no worker of its own to open
        await pilot.pause(0.3)
        assert app.screen is app.main
