"""Time travel in the console (`T`, `agentdeck --at`), on a real seeded SQLite database.

The database is the past scene (tests.ui.scenes.seed_past_scene), 42 events:

- 1-11 at 09:00: w-1 created, its run r1 answers "echo: Why is test_login flaky?"
  (6 run.created, 7 planning, 8 executing, 9 the answer, 11 completed);
- 12-31 at 09:02: w-2 created (12), its run fails (16 created, 24 failed); w-1's run
  r2 (26 created, 29 the answer, 31 completed);
- 32-42 at 09:04: w-1 stopped (32), w-3 created (33) and answered (40).

Assertions read the panes as drawn (tests.ui.rendered), not the whole screen.
"""

from __future__ import annotations

from datetime import UTC
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input

from engine.clock import CountingIds, SteppingClock
from engine.results import CreateWorkerRequest
from store.models import TaskIntent, WorkerStatus
from tests.ui.fake_backend import FakeBackend
from tests.ui.rendered import content_rows, pane_rows
from tests.ui.scenes import SCENE_CONFIG, open_past_scene_backend, past_scene_app, seed_past_scene
from tests.ui.test_live import fake_console
from tests.ui.waits import until
from tui.app import AgentDeckApp
from tui.backend import HostedBackend, open_backend
from tui.past_backend import PAST_READ_ONLY
from tui.screens.main import MainScreen
from tui.screens.past import GoToScreen, PastApp, PastScreen, PastWorkerScreen

SIZE = (120, 40)
LAST = 42


def text(app: AgentDeckApp, widget: Any) -> str:
    return "\n".join(content_rows(pane_rows(app, widget)))


def worker_rows(app: AgentDeckApp, screen: MainScreen) -> dict[str, str]:
    """Each worker's row in the workers pane as drawn, by worker id."""
    rows = content_rows(pane_rows(app, screen.workers_table))[1:]  # under the column labels
    return {row.split()[0]: row for row in rows if row.strip()}


def notices(app: AgentDeckApp) -> list[str]:
    return [n.message for n in app._notifications]


async def live(pilot: Pilot[Any]) -> MainScreen:
    app = pilot.app
    assert isinstance(app, AgentDeckApp)
    await until(
        pilot,
        lambda: app.main_screen is not None
        and app.main_screen.workers_table.row_count == 3
        and len(app.main_screen.event_log.window) == LAST
        and app.main_screen.transcript.loaded,
    )
    await pilot.pause(0.1)
    return app.main


async def shown(pilot: Pilot[Any], position: int) -> PastScreen:
    """Wait until the past on top shows `position` in every pane."""
    app = pilot.app

    def done() -> bool:
        screen = app.screen
        return (
            isinstance(screen, PastScreen)
            and screen.shown_position == position
            and screen.transcript.loaded
            and screen.event_log.loaded
            and not screen.event_log.busy
            and (not screen.event_log.window or screen.event_log.window[-1].position <= position)
        )

    await until(pilot, done)
    await pilot.pause(0.1)  # the highlight of a re-selected worker, and its paint
    await until(pilot, done)
    screen = app.screen
    assert isinstance(screen, PastScreen)
    return screen


async def go_to(pilot: Pilot[Any], words: str) -> None:
    """In the past (once it opened): `T`, `words`, enter."""
    await until(pilot, lambda: isinstance(pilot.app.screen, PastScreen))
    await pilot.press("T")
    await until(pilot, lambda: isinstance(pilot.app.screen, GoToScreen))
    pilot.app.screen.query_one(Input).value = words
    await pilot.press("enter")


async def test_t_opens_the_past_at_the_newest_event_marked_as_the_past(tmp_path: Path) -> None:
    app = past_scene_app(tmp_path / "past.db")
    async with app.run_test(size=SIZE) as pilot:
        main = await live(pilot)
        before = worker_rows(app, main)
        await pilot.press("T")
        past = await shown(pilot, LAST)
        banner = str(past.banner.visual)
        assert "PAST" in banner
        assert f"position {LAST} of {LAST}" in banner
        assert "2026-01-01 09:04:00 UTC" in banner
        assert "esc: back to live" in banner
        assert "PAST at position 42 — read-only" in str(past.sub_title)
        footer = app.screen._compositor.render_strips()[-1].text
        for key in ("esc Live", "[ ] Event", "{ } Run", "< > Minute", "T Go to"):
            assert key in footer, footer
        for key in (" n ", " i ", " s ", " c ", " x ", " v "):
            assert key not in footer, footer  # operation keys are not offered
        # At the newest event, the past shows what live shows.
        assert worker_rows(app, past) == before
        assert "■ stopped" in worker_rows(app, past)["w-1"]


async def test_t_opens_at_the_event_selected_in_the_log(tmp_path: Path) -> None:
    app = past_scene_app(tmp_path / "past.db")
    async with app.run_test(size=SIZE) as pilot:
        main = await live(pilot)
        main.event_log.focus()
        await pilot.press(*["k"] * (LAST - 9))  # up from 42 to 9: w-1's first answer
        assert main.event_log.selected_event is not None
        assert main.event_log.selected_event.position == 9
        await pilot.press("T")
        past = await shown(pilot, 9)
        assert list(worker_rows(app, past)) == ["w-1"]
        assert "echo: Why is test_login flaky?" in text(app, past.transcript)


async def test_stepping_by_event_shows_workers_and_transcript_as_they_were(tmp_path: Path) -> None:
    app = past_scene_app(tmp_path / "past.db")
    async with app.run_test(size=SIZE) as pilot:
        await live(pilot)
        await pilot.press("T")
        await shown(pilot, LAST)
        await go_to(pilot, "8")
        past = await shown(pilot, 8)
        # w-1's run executes: its answer is not in the transcript yet.
        assert list(worker_rows(app, past)) == ["w-1"]
        assert "◑ executing" in worker_rows(app, past)["w-1"]
        transcript = text(app, past.transcript)
        assert "Why is test_login flaky?" in transcript and "echo:" not in transcript
        await pilot.press("right_square_bracket")
        past = await shown(pilot, 9)
        assert "echo: Why is test_login flaky?" in text(app, past.transcript)
        await pilot.press("left_square_bracket")
        past = await shown(pilot, 8)
        assert "echo:" not in text(app, past.transcript)
        # Event 12 creates w-2: one step in, one step out.
        await go_to(pilot, "11")
        past = await shown(pilot, 11)
        assert list(worker_rows(app, past)) == ["w-1"]
        assert "idle" in worker_rows(app, past)["w-1"]
        await pilot.press("right_square_bracket")
        past = await shown(pilot, 12)
        assert list(worker_rows(app, past)) == ["w-1", "w-2"]
        await pilot.press("left_square_bracket")
        past = await shown(pilot, 11)
        assert list(worker_rows(app, past)) == ["w-1"]
        # The event log ends where the past is.
        assert past.event_log.window[-1].position == 11


async def test_stepping_by_run_stops_where_runs_start_or_end(tmp_path: Path) -> None:
    app = past_scene_app(tmp_path / "past.db")
    async with app.run_test(size=SIZE) as pilot:
        await live(pilot)
        await pilot.press("T")
        await shown(pilot, LAST)
        await go_to(pilot, "31")
        past = await shown(pilot, 31)
        assert "echo: Summarise the last three failures." in text(app, past.transcript)
        await pilot.press("left_curly_bracket")  # back to w-1's run r2 being created
        past = await shown(pilot, 26)
        transcript = text(app, past.transcript)
        assert "Summarise the last three failures." in transcript
        assert "echo: Summarise" not in transcript
        await pilot.press("left_curly_bracket")  # w-2's run failing
        past = await shown(pilot, 24)
        await pilot.press("left_curly_bracket")  # w-2's run created
        past = await shown(pilot, 16)
        assert list(worker_rows(app, past)) == ["w-1", "w-2"]
        await pilot.press("right_curly_bracket", "right_curly_bracket", "right_curly_bracket")
        past = await shown(pilot, 31)  # three steps typed ahead: one redraw at the end
        assert "echo: Summarise the last three failures." in text(app, past.transcript)


async def test_stepping_by_minute(tmp_path: Path) -> None:
    app = past_scene_app(tmp_path / "past.db")
    async with app.run_test(size=SIZE) as pilot:
        await live(pilot)
        await pilot.press("T")
        past = await shown(pilot, LAST)
        assert list(worker_rows(app, past)) == ["w-1", "w-2", "w-3"]
        await pilot.press("less_than_sign")  # 09:03:00.41 and before: the end of 09:02
        past = await shown(pilot, 31)
        rows = worker_rows(app, past)
        assert list(rows) == ["w-1", "w-2"]
        assert "● running" in rows["w-1"]  # stopped only at 09:04
        await pilot.press("less_than_sign")
        past = await shown(pilot, 11)
        assert list(worker_rows(app, past)) == ["w-1"]
        await pilot.press("less_than_sign")  # nothing a minute before 09:00: the start
        past = await shown(pilot, 0)
        assert worker_rows(app, past) == {}
        assert "no workers at this position" in text(app, past.transcript)
        assert "before the first event" in str(past.banner.visual)
        # Empty panes take the arrows like any other.
        past.workers_table.focus()
        await pilot.press("up", "k", "down")
        past.runtimes_pane.focus()
        await pilot.press("up", "down")
        await pilot.pause(0.1)
        assert app.screen is past and app.crash is None
        past.workers_table.focus()
        await pilot.press("greater_than_sign")  # a minute on from the first event: all of 09:00
        past = await shown(pilot, 11)
        await pilot.press("greater_than_sign")  # nothing until 09:02: its first event at least
        past = await shown(pilot, 12)
        assert list(worker_rows(app, past)) == ["w-1", "w-2"]
        await pilot.press("greater_than_sign")
        past = await shown(pilot, 31)


async def test_go_to_a_time_and_refusals_in_the_dialog(tmp_path: Path) -> None:
    app = past_scene_app(tmp_path / "past.db")
    async with app.run_test(size=SIZE) as pilot:
        await live(pilot)
        await pilot.press("T")
        await shown(pilot, LAST)
        await go_to(pilot, "2026-01-01T09:03:00Z")
        await shown(pilot, 31)
        await go_to(pilot, "09:01")  # a time of day: the console clock's day, its zone
        await shown(pilot, 11)
        for words, says in (
            ("99", "position 99 is beyond the log (its last position is 42)"),
            ("soon", "is neither a position"),
            ("2026-01-01T08:00:00Z", "is before the first event"),
        ):
            await go_to(pilot, words)
            dialog = app.screen
            assert isinstance(dialog, GoToScreen)
            await until(pilot, lambda d=dialog: d.error is not None)  # type: ignore[misc]
            assert says in (dialog.error or "")
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, PastScreen))
        past = await shown(pilot, 11)
        assert past.past.position == 11


async def test_operation_keys_are_refused_in_the_past(tmp_path: Path) -> None:
    app = past_scene_app(tmp_path / "past.db")
    async with app.run_test(size=SIZE) as pilot:
        await live(pilot)
        await pilot.press("T")
        await go_to(pilot, "11")
        past = await shown(pilot, 11)
        for key in ("n", "i", "s", "c", "x"):
            app.clear_notifications()
            await pilot.press(key)
            await until(pilot, lambda: notices(app) == [PAST_READ_ONLY])
            await pilot.pause(0.1)
            assert app.screen is past, key  # no form, no question
        # Nothing changed in the store: w-1 still runs, no worker was created.
        backend = app.backend
        assert isinstance(backend, HostedBackend)
        workers = await backend.store.workers("local")
        assert [(w.worker_id, w.status) for w in workers] == [
            ("w-1", WorkerStatus.STOPPED), ("w-2", WorkerStatus.RUNNING), ("w-3", WorkerStatus.RUNNING),
        ]
        # The worker view opens as it was, read-only too.
        past.workers_table.focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, PastWorkerScreen) and app.screen.loaded)
        view = app.screen
        assert isinstance(view, PastWorkerScreen)
        await pilot.pause(0.1)
        detail = text(app, view.query_one("#wv-detail-box"))
        assert f"read-only: {PAST_READ_ONLY}" in detail
        assert "running" in detail  # w-1 was not stopped yet at 11
        assert "w-1.r1" in text(app, view.query_one("#wv-runs"))
        assert "w-1.r2" not in text(app, view.query_one("#wv-runs"))
        await pilot.press("s")
        await pilot.pause(0.1)
        assert app.screen is view
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is past)


async def test_esc_returns_to_live_which_moved_on_meanwhile(tmp_path: Path) -> None:
    app = past_scene_app(tmp_path / "past.db")
    async with app.run_test(size=SIZE) as pilot:
        main = await live(pilot)
        await pilot.press("T")
        await go_to(pilot, "11")
        past = await shown(pilot, 11)
        backend = app.backend
        assert isinstance(backend, HostedBackend) and backend.runtime is not None
        created = await backend.runtime.create_worker(
            CreateWorkerRequest(intent=TaskIntent(objective="arrives while in the past"))
        )
        await until(pilot, lambda: f"of {LAST + 3}" in str(past.banner.visual))
        assert list(worker_rows(app, past)) == ["w-1"]  # the past does not change
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is main)
        await until(pilot, lambda: created.worker_id in worker_rows(app, main))
        assert past.past.view is not None and not past.is_attached


async def test_agentdeck_at_opens_the_console_in_the_past(tmp_path: Path) -> None:
    db = tmp_path / "past.db"
    app = PastApp(lambda: open_past_scene_backend(db), 24, settings_file=None, db_label="past.db")
    async with app.run_test(size=SIZE) as pilot:
        past = await shown(pilot, 24)
        assert list(worker_rows(app, past)) == ["w-1", "w-2"]
        assert "position 24 of" in str(past.banner.visual)
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen is app.main)


async def test_a_past_that_cannot_open_is_one_line_and_live_carries_on(tmp_path: Path) -> None:
    # A backend with no log of its own (the in-memory one) has no past to fold.
    fake = FakeBackend()
    app = fake_console(fake)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.main_screen is not None and app.main_screen.event_log.loaded)
        await pilot.press("T")
        await until(pilot, lambda: bool(notices(app)))
        assert notices(app) == ["this console has no log of its own: it cannot show the past"]
        assert app.screen is app.main
    # A store that fails while opening it: its error, in one line.
    app = past_scene_app(tmp_path / "past.db")
    async with app.run_test(size=SIZE) as pilot:
        main = await live(pilot)
        backend = app.backend
        assert isinstance(backend, HostedBackend)
        await backend.store.close()
        await pilot.press("T")
        await until(pilot, lambda: any("cannot open the past" in n for n in notices(app)))
        said = [n for n in notices(app) if "cannot open the past" in n]
        assert len(said) == 1 and "\n" not in said[0]
        assert app.screen is main


async def test_a_read_only_console_travels_too(tmp_path: Path) -> None:
    db = tmp_path / "past.db"
    seeded = await open_past_scene_backend(db)
    await seeded.close()
    app = AgentDeckApp(
        lambda: open_backend(db, read_only=True, watch=False), settings_file=None, tz=UTC
    )
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.main_screen is not None and app.main_screen.event_log.loaded)
        await pilot.press("T")
        await go_to(pilot, "2026-01-01T09:02:00.2")  # no zone: UTC
        past = await shown(pilot, 21)
        assert list(worker_rows(app, past)) == ["w-1", "w-2"]
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.main)


async def test_the_past_of_a_postgresql_database(pg_url: str, tmp_path: Path) -> None:
    config = tmp_path / "agentdeck.toml"
    config.write_text(SCENE_CONFIG)
    clock = SteppingClock()
    seeded = await open_backend(pg_url, config=config, clock=clock, ids=CountingIds(), watch=False)
    assert seeded.runtime is not None
    await seed_past_scene(seeded.runtime, clock)
    await seeded.close()
    app = AgentDeckApp(lambda: open_backend(pg_url, config=config), settings_file=None, tz=UTC)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.main_screen is not None and app.main_screen.event_log.loaded)
        await pilot.press("T")
        await go_to(pilot, "8")
        past = await shown(pilot, 8)
        assert list(worker_rows(app, past)) == ["w-1"]
        assert "echo:" not in text(app, past.transcript)
        await pilot.press("right_square_bracket")
        past = await shown(pilot, 9)
        assert "echo: Why is test_login flaky?" in text(app, past.transcript)
        await pilot.press("less_than_sign", "greater_than_sign", "greater_than_sign")
        past = await shown(pilot, 12)
        assert list(worker_rows(app, past)) == ["w-1", "w-2"]
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.main)
