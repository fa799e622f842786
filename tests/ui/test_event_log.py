"""The event log pane against a real store file: paging, live, follow, pause, filter, export."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from rich.console import Console
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.pilot import Pilot
from textual.widgets import Footer

from store.event_store import EventStore
from store.filters import parse_filter
from store.models import Event, Lag, NewEvent
from tests.ui.waits import until
from tui.feed import ConsoleFeed, FeedBatch
from tui.live_buffer import LiveBuffer
from tui.widgets.event_log import LAG_NOTICE, EventLog
from tui.widgets.filter_bar import PRESETS, FilterBar

BASE = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
KINDS = (
    "run.completed",
    "exec.command.failed",
    "run.step.started",
    "worker.restarting",
    "exec.command.started",
)
EVIL = "[@click=app.quit]quit[/] [b]bold[/b] [link=https://evil.example]x[/link] \x1b[31mred"


def default_payload(kind: str, i: int) -> dict[str, Any]:
    """A payload the event catalog accepts for `kind`, carrying `i`."""
    if kind == "run.completed":
        return {"result": f"result {i}"}
    if kind == "run.step.started":
        return {"step": i, "title": f"step {i}"}
    return {"exit_code": i}


def new_event(
    i: int,
    *,
    kind: str | None = None,
    message: str | None = None,
    payload: dict[str, Any] | None = None,
) -> NewEvent:
    """Event number `i`: fixed id and time, so a rendered scene is the same every run."""
    return NewEvent(
        event_id=UUID(int=i + 1),
        kind=kind or KINDS[i % len(KINDS)],
        worker_id=f"w-{i % 3 + 1}",
        run_id=f"r-{i % 7}",
        run_seq=i // 7 + 1,
        message=f"event {i}" if message is None else message,
        payload=default_payload(kind or KINDS[i % len(KINDS)], i) if payload is None else payload,
        at=BASE + timedelta(milliseconds=i * 10),
    )


async def append(store: EventStore, events: Iterable[NewEvent]) -> list[Event]:
    out: list[Event] = []
    batch = list(events)
    for start in range(0, len(batch), 2000):
        out += await store.append("local", None, batch[start : start + 2000])
    return out


async def seed(store: EventStore, count: int, start: int = 0) -> list[Event]:
    return await append(store, (new_event(i) for i in range(start, start + count)))


@pytest.fixture
async def store(tmp_path: Path) -> Any:
    opened = await EventStore.open(tmp_path / "events.db", watch=False)
    yield opened
    await opened.close()


class WindowWatch(EventLog):
    """An EventLog that remembers the largest window it ever held."""

    largest = 0

    def _after_window_change(self, *, to_end: bool = False, shift: int = 0) -> None:
        WindowWatch.largest = max(WindowWatch.largest, len(self._events))
        super()._after_window_change(to_end=to_end, shift=shift)


class LogApp(App[None]):
    """The pane and its filter bar, fed by the console feed, as the console wires them."""

    BINDINGS = [Binding("slash", "focus_filter", "Filter")]

    def __init__(
        self,
        store: EventStore | None = None,
        *,
        db_path: Path | None = None,
        log_class: type[EventLog] = EventLog,
        **log_options: Any,
    ) -> None:
        super().__init__()
        self.store = store
        self.db_path = db_path
        self.log_class = log_class
        self.feed_options = {
            key: log_options.pop(option)
            for option, key in (("buffer_capacity", "capacity"), ("drain_interval", "interval"))
            if option in log_options
        }
        self.log_options = log_options
        self.selected: list[Event | None] = []
        self.feed: ConsoleFeed | None = None

    def compose(self) -> ComposeResult:
        yield FilterBar()
        yield self.log_class(tz=UTC, **self.log_options)
        yield Footer()

    async def on_mount(self) -> None:
        if self.store is None:
            assert self.db_path is not None
            self.store = await EventStore.open(self.db_path, watch=False, read_only=True)
        log = self.query_one(EventLog)
        self.feed = ConsoleFeed(self.store.subscribe, self._deliver, **self.feed_options)
        self.feed.start(await self.store.last_position())
        log.attach(self.store)
        log.focus()

    def _deliver(self, batch: FeedBatch) -> None:
        log = self.query_one(EventLog)
        if batch.reload:
            log.feed_lost()
        else:
            log.apply_batch(batch.events)

    async def on_unmount(self) -> None:
        if self.feed is not None:
            await self.feed.close()
        if self.db_path is not None and self.store is not None:
            await self.store.close()

    def action_focus_filter(self) -> None:
        self.query_one(FilterBar).focus_input()

    def on_filter_bar_applied(self, message: FilterBar.Applied) -> None:
        self.query_one(EventLog).set_filter(message.text)

    def on_event_log_selected(self, message: EventLog.Selected) -> None:
        self.selected.append(message.event)


def screen_text(app: App[Any]) -> str:
    width, height = app.size
    console = Console(
        width=width, height=height, file=io.StringIO(), force_terminal=True,
        color_system="truecolor", record=True, legacy_windows=False,
    )
    console.print(
        app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    )
    return console.export_text()



def positions(log: EventLog) -> list[int]:
    return [e.position for e in log.window]


# Read through functions: mypy would otherwise keep an attribute narrowed
# across the awaits that change it.
def following(log: EventLog) -> bool:
    return log.follow


def is_paused(log: EventLog) -> bool:
    return log.paused


def is_attached(log: EventLog) -> bool:
    return log.attached


def error_of(bar: FilterBar) -> str | None:
    return bar.error


def older_than(log: EventLog, first: int) -> Callable[[], bool]:
    return lambda: positions(log)[0] < first


def newer_than(log: EventLog, last: int) -> Callable[[], bool]:
    return lambda: is_attached(log) or positions(log)[-1] > last


def shows(app: App[Any], text: str) -> bool:
    return text in screen_text(app)


async def loaded(pilot: Pilot[Any]) -> EventLog:
    log = pilot.app.query_one(EventLog)
    await until(pilot, lambda: log.loaded and log.attached and not log.busy)
    await pilot.pause()
    return log


# -- the live buffer ----------------------------------------------------------


def test_buffer_drains_everything_in_order() -> None:
    buffer: LiveBuffer[int] = LiveBuffer(capacity=10)
    assert buffer.push([1, 2]) is True  # was idle: schedule a drain
    assert buffer.push([3]) is False  # a drain is already due
    drained = buffer.drain()
    assert drained.items == [1, 2, 3] and drained.dropped == 0
    assert not buffer.drain()
    assert buffer.push([4]) is True


def test_buffer_drops_oldest_past_capacity_and_counts() -> None:
    buffer: LiveBuffer[int] = LiveBuffer(capacity=5)
    buffer.push(range(4))
    buffer.push(range(4, 9))
    assert len(buffer) == 5
    drained = buffer.drain()
    assert drained.items == [4, 5, 6, 7, 8]
    assert drained.dropped == 4
    assert buffer.dropped == 0 and buffer.dropped_total == 4 and buffer.pushed_total == 9


def test_buffer_paces_drains() -> None:
    now = [100.0]
    buffer: LiveBuffer[int] = LiveBuffer(capacity=5, interval=0.1, clock=lambda: now[0])
    assert buffer.delay() == 0  # idle: at once
    buffer.push([1])
    buffer.drain()
    now[0] += 0.03
    buffer.push([2])
    assert buffer.delay() == pytest.approx(0.07)
    now[0] += 0.5
    assert buffer.delay() == 0
    buffer.clear()
    assert len(buffer) == 0 and not buffer.drain()


def test_buffer_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        LiveBuffer(capacity=0)
    with pytest.raises(ValueError):
        LiveBuffer(interval=-1)


# -- first page and live --------------------------------------------------------


async def test_first_page_shows_the_newest_events(store: EventStore) -> None:
    await seed(store, 1200)
    app = LogApp(store, page_size=500)
    async with app.run_test(size=(100, 20)) as pilot:
        log = await loaded(pilot)
        assert positions(log) == list(range(701, 1201))
        assert log.selected_event is not None and log.selected_event.position == 1200
        assert log.is_vertical_scroll_end
        text = screen_text(app)
        assert "event 1199" in text and "event 600" not in text
        assert "follow · 500 shown" in text
        assert "Events · all" in text


async def test_rows_show_time_level_where_kind_who_and_message(store: EventStore) -> None:
    await append(store, [
        new_event(0, kind="exec.command.failed", message="exit status 2"),
        new_event(1, kind="worker.restarting", message="backing off"),
        new_event(2, kind="run.completed", message="done"),
        new_event(3, kind="run.step.started", message="", payload={"step": 2, "title": "plan"}),
    ])
    app = LogApp(store)
    async with app.run_test(size=(100, 12)) as pilot:
        await loaded(pilot)
        lines = screen_text(app).splitlines()
        row = next(line for line in lines if "exit status 2" in line)
        assert "03:04:05.000 ERR local#1" in row and "exec.command.failed" in row and "w-1" in row
        assert any("03:04:05.010 WRN local#2" in line for line in lines)
        assert any("INF local#3" in line and "done" in line for line in lines)
        # No message: the payload stands in.
        assert any('{"step": 2, "title": "plan"}' in line for line in lines)


async def test_live_events_appear_and_follow_keeps_the_bottom(store: EventStore) -> None:
    await seed(store, 300)
    app = LogApp(store)
    async with app.run_test(size=(100, 16)) as pilot:
        log = await loaded(pilot)
        await seed(store, 3, start=300)
        await until(pilot, lambda: positions(log)[-1] == 303)
        await pilot.pause()
        assert log.follow and log.is_vertical_scroll_end
        assert log.selected_event is not None and log.selected_event.position == 303
        assert shows(app, "event 302")
        assert app.selected[-1] is not None and app.selected[-1].position == 303


async def test_follow_off_keeps_the_view_where_the_operator_is(store: EventStore) -> None:
    await seed(store, 300)
    app = LogApp(store)
    async with app.run_test(size=(100, 16)) as pilot:
        log = await loaded(pilot)
        await pilot.press("k", "k", "k")
        assert not log.follow
        selected = log.selected_event
        scroll_y = log.scroll_y
        assert selected is not None and selected.position == 297
        assert app.selected[-1] == selected
        await seed(store, 20, start=300)
        await until(pilot, lambda: positions(log)[-1] == 320)
        assert log.selected_event == selected
        assert log.scroll_y == scroll_y
        assert "follow off" in log.status_text
        await pilot.press("f")  # follow again: jump to the newest
        assert following(log)
        assert log.selected_event is not None and log.selected_event.position == 320
        await pilot.pause()
        assert log.is_vertical_scroll_end


async def test_pause_counts_arrivals_and_resume_applies_them(store: EventStore) -> None:
    await seed(store, 50)
    app = LogApp(store)
    async with app.run_test(size=(100, 16)) as pilot:
        log = await loaded(pilot)
        await pilot.press("p")
        assert log.paused
        await seed(store, 7, start=50)
        await until(pilot, lambda: log.paused_count == 7)
        assert positions(log)[-1] == 50  # nothing applied while paused
        await pilot.pause()
        assert shows(app, "paused — 7 new")
        await pilot.press("p")
        assert not is_paused(log) and log.paused_count == 0
        assert positions(log)[-1] == 57
        await pilot.pause()
        assert shows(app, "event 56")


async def test_pause_with_too_many_arrivals_rereads_from_the_store(store: EventStore) -> None:
    await seed(store, 100)
    app = LogApp(store, window_cap=400, page_size=100)
    async with app.run_test(size=(100, 16)) as pilot:
        log = await loaded(pilot)
        await pilot.press("p")
        await seed(store, 900, start=100)
        await until(pilot, lambda: log.paused_count == 900)
        assert len(log.window) == 100
        await pilot.press("p")
        await until(pilot, lambda: log.attached and positions(log)[-1] == 1000)
        assert positions(log) == list(range(901, 1001))  # the newest page, re-read


async def test_lag_notice_shows_a_line_and_reloads(store: EventStore) -> None:
    await seed(store, 40)
    app = LogApp(store)
    async with app.run_test(size=(100, 16)) as pilot:
        log = await loaded(pilot)
        await seed(store, 5, start=40)
        log.apply_batch([Lag(position=40, dropped=5)])
        assert LAG_NOTICE in log.status_text
        await until(pilot, lambda: log.attached and positions(log)[-1] == 45)
        await pilot.pause()
        assert shows(app, "fell behind, reloading from store")


async def test_buffer_overflow_rereads_from_the_store(store: EventStore) -> None:
    await seed(store, 10)
    app = LogApp(store, buffer_capacity=20)
    async with app.run_test(size=(100, 16)) as pilot:
        log = await loaded(pilot)
        await seed(store, 500, start=10)  # one feed batch, far past the buffer
        await until(pilot, lambda: positions(log)[-1] == 510)
        assert positions(log) == list(range(11, 511))  # no hole: re-read as one page
        assert LAG_NOTICE in log.status_text


async def test_apply_batch_filters_and_ignores_what_it_already_has(store: EventStore) -> None:
    events = await seed(store, 10)
    app = LogApp(store, filter_text="kind:run.*")
    async with app.run_test(size=(100, 16)) as pilot:
        log = await loaded(pilot)
        before = positions(log)
        log.apply_batch(events)  # replayed history: already shown, changes nothing
        assert positions(log) == before
        await pilot.pause()


# -- filter ---------------------------------------------------------------------


async def test_invalid_filter_shows_the_bad_term_and_keeps_the_old_one(store: EventStore) -> None:
    await seed(store, 30)
    app = LogApp(store)
    async with app.run_test(size=(100, 16)) as pilot:
        log = await loaded(pilot)
        bar = app.query_one(FilterBar)
        await pilot.press("slash")
        assert bar.input.has_focus
        await pilot.press(*"kind:run.*", "enter")
        await until(pilot, lambda: log.filter_text == "kind:run.*" and log.attached)
        assert log.has_focus  # enter hands focus back
        await pilot.press("slash")
        bar.input.value = "level:error bogus:1"
        await pilot.press("enter")
        await pilot.pause()
        assert bar.error is not None and "bogus:1" in bar.error
        assert log.filter_text == "kind:run.*"  # the old filter stays active
        assert bar.input.has_focus  # still editing
        text = screen_text(app)
        assert "bogus:1" in text and "unknown field" in text
        assert "filter: kind:run.*" in text  # the active filter is always visible
        await pilot.press("escape")
        assert error_of(bar) is None and bar.input.value == "kind:run.*"
        assert log.has_focus


async def test_valid_filter_reloads_and_applies_to_live_events(store: EventStore) -> None:
    await seed(store, 1000)
    app = LogApp(store, page_size=100, window_cap=400)
    async with app.run_test(size=(100, 16)) as pilot:
        log = await loaded(pilot)
        await log.set_filter("kind:exec.* worker:w-2").wait()
        assert log.attached
        wanted = parse_filter("kind:exec.* worker:w-2")
        assert log.window and all(wanted.matches(e) for e in log.window)
        assert len(log.window) == 100  # the newest page of matches, from the store
        assert log.window[-1].position == max(
            e.position for e in await store.read_before(10_000, 1000, wanted)
        )
        await append(store, [
            new_event(1000, kind="run.completed"),
            new_event(1001, kind="exec.command.failed"),  # w-3: filtered out
            new_event(1003, kind="exec.command.failed", message="this one"),  # w-2
        ])
        await until(pilot, lambda: log.window[-1].message == "this one")
        assert all(wanted.matches(e) for e in log.window)
        await pilot.pause()
        assert shows(app, "filter: kind:exec.* worker:w-2")


async def test_set_filter_refuses_a_bad_expression(store: EventStore) -> None:
    from store.errors import FilterError

    await seed(store, 5)
    app = LogApp(store)
    async with app.run_test(size=(80, 12)) as pilot:
        log = await loaded(pilot)
        with pytest.raises(FilterError, match="nope:x"):
            log.set_filter("nope:x")
        assert log.filter_text == ""
        assert PRESETS and all(p.text == "" or parse_filter(p.text) for p in PRESETS)


async def test_empty_result_says_so(store: EventStore) -> None:
    await seed(store, 5)
    app = LogApp(store, filter_text="kind:runtime.stopped")
    async with app.run_test(size=(80, 12)) as pilot:
        log = await loaded(pilot)
        assert log.window == () and log.selected_event is None
        assert shows(app, "No events match the filter.")


def _damage_search_index(path: Path) -> None:
    """What a damaged file looks like to a reader: the free-text index is gone."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("DROP TABLE events_fts")
    finally:
        conn.close()


def _repair_search_index(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute(
            "CREATE VIRTUAL TABLE events_fts USING fts5"
            "(body, content='', tokenize='unicode61 remove_diacritics 0')"
        )
    finally:
        conn.close()


def failure_of(log: EventLog) -> str | None:
    return log.failure


async def test_a_filter_that_fails_at_read_time_lists_nothing_and_says_why(
    tmp_path: Path,
) -> None:
    """Issue 7 item 6: a read failure for a new filter empties the window and shows the error.

    The rows read for the previous filter must not stay listed under the new
    filter's title; the title names the filter that failed, the pane says why,
    `G` retries and another filter works as soon as the store can answer it.
    """
    db = tmp_path / "events.db"
    async with await EventStore.open(db, watch=False) as writer:
        await seed(writer, 30)
    app = LogApp(db_path=db)
    async with app.run_test(size=(120, 16)) as pilot:
        log = await loaded(pilot)
        assert len(log.window) == 30 and shows(app, "event 29")
        # Damaged under the running store: a word filter needs the search index.
        await asyncio.to_thread(_damage_search_index, db)
        await pilot.press("slash", *"event", "enter")
        await until(pilot, lambda: log.filter_text == "event" and not log.busy)
        await pilot.pause()
        assert log.window == () and log.selected_event is None
        assert app.selected[-1] is None  # whatever showed the old selection is told
        error = failure_of(log)
        assert error is not None and "events_fts" in error
        text = screen_text(app)
        assert "filter: event" in text  # which filter failed
        assert "cannot read events with this filter" in text and "events_fts" in text
        assert "G retries" in text
        assert "read failed" in text and "0 shown" in text
        assert "event 29" not in text and "event 1 " not in text  # nothing from the old filter
        # Live events for the failed filter are not shown either (no feed runs).
        assert not log.attached

        await pilot.press("G")  # retry: still damaged, still says so
        await until(pilot, lambda: not log.busy)
        await pilot.pause()
        assert failure_of(log) is not None and log.window == ()

        await asyncio.to_thread(_repair_search_index, db)
        await pilot.press("G")
        await until(pilot, lambda: not log.busy and failure_of(log) is None)
        await pilot.pause()
        assert log.attached and "read failed" not in log.status_text
        assert not shows(app, "cannot read events")

        await asyncio.to_thread(_damage_search_index, db)
        bar = app.query_one(FilterBar)
        await pilot.press("slash")
        bar.input.value = "kind:run.*"  # no words: the log table answers it
        await pilot.press("enter")
        await until(pilot, lambda: log.filter_text == "kind:run.*" and not log.busy)
        await pilot.pause()
        assert failure_of(log) is None and log.attached
        assert len(log.window) == 12 and all(e.kind.startswith("run.") for e in log.window)
        assert not shows(app, "cannot read events")


# -- history -----------------------------------------------------------------------


async def test_scrolling_back_pages_from_the_store_with_a_bounded_window(
    store: EventStore,
) -> None:
    await seed(store, 20_000)
    WindowWatch.largest = 0
    app = LogApp(store, log_class=WindowWatch, window_cap=2000, page_size=500)
    async with app.run_test(size=(100, 20)) as pilot:
        log = await loaded(pilot)
        assert positions(log)[0] == 19_501
        for _ in range(8):  # scroll to the top, eight times: older pages come in
            first = positions(log)[0]
            log.scroll_home(animate=False)
            await until(pilot, older_than(log, first))
        assert positions(log)[0] == 20_000 - 9 * 500 + 1
        assert positions(log) == list(range(positions(log)[0], positions(log)[0] + 2000))
        assert WindowWatch.largest <= 2000
        assert not log.attached and "G for newest" in log.status_text
        # Live events while looking at history: not appended, the window stays bounded.
        await seed(store, 10, start=20_000)
        await pilot.pause(0.2)
        assert len(log.window) == 2000 and positions(log)[-1] < 20_000
        await pilot.press("G")
        await until(pilot, lambda: log.attached and positions(log)[-1] == 20_010)
        assert log.follow and len(log.window) == 500
        assert WindowWatch.largest <= 2000


async def test_oldest_then_scrolling_down_pages_newer_and_reattaches(store: EventStore) -> None:
    await seed(store, 2000)
    WindowWatch.largest = 0
    app = LogApp(store, log_class=WindowWatch, window_cap=600, page_size=200)
    async with app.run_test(size=(100, 20)) as pilot:
        log = await loaded(pilot)
        await pilot.press("g")
        await until(pilot, lambda: bool(log.window) and positions(log)[0] == 1)
        assert not log.follow and not log.attached
        assert log.selected_event is not None and log.selected_event.position == 1
        for _ in range(20):
            if is_attached(log):
                break
            last = positions(log)[-1]
            log.scroll_end(animate=False)
            await until(pilot, newer_than(log, last))
        assert is_attached(log) and positions(log)[-1] == 2000
        assert WindowWatch.largest <= 600
        await seed(store, 2, start=2000)  # live again
        await until(pilot, lambda: positions(log)[-1] == 2002)


async def test_cursor_keys_and_mouse_select_rows(store: EventStore) -> None:
    await seed(store, 100)
    app = LogApp(store)
    async with app.run_test(size=(100, 16)) as pilot:
        log = await loaded(pilot)
        await pilot.press("up", "k")
        assert log.selected_event is not None and log.selected_event.position == 98
        await pilot.press("down", "j")
        assert log.selected_event.position == 100
        await pilot.press("pageup")
        assert log.selected_event.position < 90
        await pilot.press("pagedown", "pagedown")
        assert log.selected_event.position == 100
        await pilot.click(EventLog, offset=(5, 1))  # first content row
        top = round(log.scroll_y)
        assert log.cursor == top
        assert app.selected[-1] == log.selected_event


# -- untrusted text --------------------------------------------------------------------


async def test_markup_in_messages_is_shown_literally_and_clicking_does_nothing(
    store: EventStore,
) -> None:
    await seed(store, 3)
    await append(store, [new_event(3, message=EVIL)])
    app = LogApp(store)
    async with app.run_test(size=(180, 12)) as pilot:
        log = await loaded(pilot)
        lines = screen_text(app).splitlines()
        row_no, row = next((n, line) for n, line in enumerate(lines) if "[@click" in line)
        assert "[@click=app.quit]quit[/] [b]bold[/b] [link=https://evil.example]x[/link]" in row
        assert "␛[31mred" in row and "\x1b" not in row
        x = row.index("[@click") + 2
        widget_y = row_no - log.region.y - 1  # the border row is above the content
        await pilot.click(EventLog, offset=(x, widget_y + 1))
        await pilot.click(EventLog, offset=(x + 18, widget_y + 1))
        await pilot.press("enter")
        await pilot.pause()
        assert app.is_running and app.return_code is None
        assert log.selected_event is not None and log.selected_event.message == EVIL


# -- export ---------------------------------------------------------------------------


async def test_export_writes_every_matching_event_not_just_the_window(
    store: EventStore, tmp_path: Path
) -> None:
    await seed(store, 1500)
    await append(store, [new_event(1500, kind="exec.command.failed", message='say "hi", \x1b[0m')])
    app = LogApp(store, page_size=100, window_cap=200, filter_text="kind:exec.*")
    async with app.run_test(size=(100, 16)) as pilot:
        log = await loaded(pilot)
        flt = parse_filter("kind:exec.*")
        expected = [e for e in await store.read_before(10_000, 10_000, flt)][::-1]
        assert len(expected) > len(log.window)

        jsonl = tmp_path / "out.jsonl"
        assert await log.export(jsonl, "jsonl") == len(expected)
        rows = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines()]
        assert rows == [e.to_json_dict() for e in expected]

        path = tmp_path / "out.csv"
        assert await log.export(path, "csv") == len(expected)
        with path.open(encoding="utf-8", newline="") as handle:
            table = list(csv.DictReader(handle))
        assert list(table[0]) == [
            "position", "at", "runtime_id", "seq", "level", "kind",
            "worker_id", "run_id", "run_seq", "message", "payload",
        ]
        assert [int(r["position"]) for r in table] == [e.position for e in expected]
        last, event = table[-1], expected[-1]
        # Cleaned as the screen shows it (Issue 7 item 11); the JSONL above is the exact copy.
        assert last["message"] == 'say "hi", ␛[0m'
        assert last["level"] == "error" and last["kind"] == "exec.command.failed"
        assert last["worker_id"] == event.worker_id and last["run_id"] == event.run_id
        assert last["run_seq"] == str(event.run_seq) and last["seq"] == str(event.seq)
        assert last["at"] == event.to_json_dict()["at"]
        assert json.loads(last["payload"]) == event.payload
        assert not await asyncio.to_thread(lambda: list(tmp_path.glob("*.part")))
        with pytest.raises(ValueError, match="xml"):
            await log.export(tmp_path / "out.xml", "xml")  # type: ignore[arg-type]
        await pilot.pause()


# -- snapshots (synchronous: snap_compare runs its own loop) ------------------------------


def seeded_db(path: Path) -> Path:
    async def write() -> None:
        async with await EventStore.open(path, watch=False) as store:
            events = [new_event(i) for i in range(40)]
            events[33] = new_event(33, kind="exec.command.failed", message=EVIL)
            events[36] = new_event(36, kind="worker.restarting", message="line one\nline\ttwo")
            await append(store, events)

    asyncio.run(write())
    return path


async def _settle(pilot: Pilot[Any]) -> None:
    log = pilot.app.query_one(EventLog)
    await until(pilot, lambda: log.loaded and log.attached and not log.busy)
    await pilot.pause()


def test_snapshot_event_log(snap_compare: Any, tmp_path: Path) -> None:
    app = LogApp(db_path=seeded_db(tmp_path / "snap.db"))
    assert snap_compare(app, terminal_size=(100, 24), run_before=_settle)


def test_snapshot_filter_error_at_80x24(snap_compare: Any, tmp_path: Path) -> None:
    async def bad_filter(pilot: Pilot[Any]) -> None:
        await _settle(pilot)
        pilot.app.query_one(FilterBar).input.cursor_blink = False  # a steady cursor
        await pilot.press("slash", *"kind:run.* colour:red", "enter")
        await pilot.pause()

    app = LogApp(db_path=seeded_db(tmp_path / "snap.db"))
    assert snap_compare(app, terminal_size=(80, 24), run_before=bad_filter)
