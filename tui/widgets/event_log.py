"""The event log pane: live events and their history, filtered, one row each.

A `ScrollView` that renders only the rows on screen (`render_line`, with a
small LRU cache of rendered rows) from a bounded window of events in memory.
The window is a slice of the log that matches the active filter:

- *attached*: its bottom is the live edge; the console feed (`tui.feed`)
  hands the pane paced batches of new events (`apply_batch`), which it
  filters and appends. Past the cap the oldest rows are trimmed and come back
  from the store on scroll.
- *detached*: the operator scrolled so far back that the newest rows were
  trimmed; live events are only remembered at the tail (bounded), scrolling
  down pages newer events in from the store and re-attaches when it reaches
  the end, `G` jumps straight to the newest page.

The pane never subscribes: while a page is read, live events that arrive are
kept in a bounded tail and those past the page are applied when it lands (no
gap, no duplicate at the seam); a tail that overflowed means read again.

Every store read runs in a worker; nothing on the UI thread waits on I/O.
Each load bumps a generation number, so a read or a drain that was started
for an older window is dropped instead of applied to the new one.

A load that fails (the store raises while reading the page for a new filter,
say) empties the window and says why in the pane, under the title naming the
filter that failed: rows read for the previous filter are never listed under
a new one, and the filter bar and the title keep showing what the operator
asked for. `G` (or applying a filter again) retries.
"""

from __future__ import annotations

import contextlib
import json
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, tzinfo
from pathlib import Path
from typing import ClassVar, cast

from rich.style import Style
from rich.text import Text
from textual import events, work
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.reactive import var
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.timer import Timer
from textual.worker import Worker, WorkerState

from store.errors import StoreError
from store.filters import Filter, parse_filter
from store.models import Event, Lag, Severity
from tui.backend import EventPages
from tui.clock import ConsoleClock
from tui.export import EXPORT_FORMATS, ExportFormat, export_events
from tui.safe_text import multi_line, one_line

__all__ = ["EXPORT_FORMATS", "EventLog", "EventSource", "export_events"]

EventSource = EventPages

WINDOW_CAP = 5_000
"""Most events held in memory; older and newer ones page in from the store."""
PAGE = 500
"""Events read per page (first load, scroll back, scroll forward)."""
LAG_NOTICE = "… fell behind, reloading from store"
NOTICE_SECONDS = 4.0

LEVEL_LABELS = {Severity.INFO: "INF", Severity.WARNING: "WRN", Severity.ERROR: "ERR"}
Item = Event | Lag


def _fixed(value: str, width: int, style: Style) -> Text:
    """`value` made safe, cut or padded to exactly `width` cells."""
    text = one_line(value, width, style=style)
    if text.cell_len < width:
        text.append(" " * (width - text.cell_len))
    return text


def _where(runtime_id: str, seq: int, width: int, style: Style) -> Text:
    """`runtime#seq` in `width` cells, shortening the runtime name rather than the number."""
    suffix = f"#{seq}"
    room = width - len(suffix)
    name = runtime_id if len(runtime_id) <= room else runtime_id[: max(room - 1, 0)] + "…"
    return _fixed(name + suffix if room >= 2 else suffix, width, style)


class EventLog(ScrollView, can_focus=True):
    """Live, filtered, scroll-back view of the event log."""

    DEFAULT_CSS = Path(__file__).with_suffix(".tcss").read_text(encoding="utf-8")
    ALLOW_SELECT = False

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "event-log--time",
        "event-log--info",
        "event-log--warning",
        "event-log--error",
        "event-log--where",
        "event-log--kind",
        "event-log--who",
        "event-log--payload",
        "event-log--empty",
        "event-log--cursor",
    }

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "toggle_follow", "Follow", tooltip="Stay on the newest event as they arrive"),
        Binding("p", "toggle_pause", "Pause", tooltip="Hold live updates (counts what arrives)"),
        Binding("up,k", "cursor_up", "Up", show=False),
        Binding("down,j", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("g,home", "first", "Oldest", show=False),
        Binding("G,end", "last", "Newest", show=False),
    ]

    follow: var[bool] = var(True, init=False)
    """Stay on the newest event as events arrive (`f`)."""
    paused: var[bool] = var(False, init=False)
    """Hold live updates; `paused_count` says how many arrived meanwhile (`p`)."""

    class Selected(Message):
        """The selected event changed (None when the pane is empty)."""

        def __init__(self, event_log: EventLog, event: Event | None) -> None:
            self.event_log = event_log
            self.event = event
            super().__init__()

        @property
        def control(self) -> EventLog:
            return self.event_log

    def __init__(
        self,
        store: EventSource | None = None,
        *,
        filter_text: str = "",
        window_cap: int = WINDOW_CAP,
        page_size: int = PAGE,
        tz: tzinfo | None = None,
        clock: Callable[[], datetime] | None = None,
        console_clock: ConsoleClock | None = None,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        """`console_clock` shows times (or `tz`, None: the local zone); `clock` feeds `after:-10m`."""
        super().__init__(name=name, id=id, classes=classes)
        if window_cap < page_size * 2:
            raise ValueError("window_cap must hold at least two pages")
        self._store = store
        self._times = console_clock or ConsoleClock(tz, clock)
        self._clock = clock or self._times.now
        self._filter = parse_filter(filter_text, now=self._clock())
        self.window_cap = window_cap
        self.page_size = page_size
        self._events: list[Event] = []
        self._cursor = -1
        self._selected_position: int | None = None
        self._has_older = False  # the store has matching events above the window
        self._attached = False  # the window's bottom is the live edge
        self._live_after = 0  # live events at or below this are already in the window
        self._loaded = False
        self._generation = 0
        # Live events that match while the window is not at the live edge (a page is
        # being read, or history is shown): applied past the page that lands.
        self._tail: deque[Event] = deque(maxlen=window_cap)
        self._tail_lost = 0  # the newest position that fell out of the full tail
        self._held: list[Event] = []
        self._held_overflow = False
        self._paused_count = 0
        self._notice: str | None = None
        self._notice_timer: Timer | None = None
        self._line_cache: LRUCache[tuple[int, int, int], Strip] = LRUCache(1024)
        self._span_styles: dict[str, Style] = {}
        self._loader: Worker[None] | None = None
        self._pager: Worker[None] | None = None
        self._adjusting = False
        self._loading = False  # a load (not a page) is in flight
        self._failure: str | None = None  # why the last load could not read the store

    # -- public API ----------------------------------------------------------

    @property
    def store(self) -> EventSource | None:
        return self._store

    @property
    def filter(self) -> Filter:
        """The active filter (an empty one matches everything)."""
        return self._filter

    @property
    def filter_text(self) -> str:
        return self._filter.text

    @property
    def window(self) -> Sequence[Event]:
        """The events in memory, oldest first (at most `window_cap`)."""
        return tuple(self._events)

    @property
    def window_size(self) -> int:
        return len(self._events)

    @property
    def cursor(self) -> int:
        """Index of the selected row in `window`, -1 when empty."""
        return self._cursor

    @property
    def selected_event(self) -> Event | None:
        if 0 <= self._cursor < len(self._events):
            return self._events[self._cursor]
        return None

    @property
    def paused_count(self) -> int:
        """Events that arrived while paused."""
        return self._paused_count

    @property
    def attached(self) -> bool:
        """Whether the window reaches the live edge (else it shows older history)."""
        return self._attached

    @property
    def loaded(self) -> bool:
        """Whether a first page has been read from the store."""
        return self._loaded

    @property
    def busy(self) -> bool:
        """Whether a read from the store (a load or a page) is in flight."""
        return self._loading or (self._pager is not None and not self._pager.is_finished)

    @property
    def failure(self) -> str | None:
        """Why the last load failed (the window is then empty), None once one succeeds."""
        return self._failure

    @property
    def status_text(self) -> str:
        """What the bottom border says: follow/pause state, notices, counts."""
        parts: list[str] = []
        if self._notice:
            parts.append(self._notice)
        if self.paused:
            more = "+" if self._held_overflow else ""
            parts.append(f"paused — {self._paused_count:,}{more} new")
        elif self._loading:
            parts.append("loading…")
        elif self._failure is not None:
            parts.append("read failed — G to retry")
        elif not self._attached and self._loaded:
            parts.append("history — G for newest")
        else:
            parts.append("follow" if self.follow else "follow off")
        parts.append(f"{len(self._events):,} shown")
        return " · ".join(parts)

    def attach(self, store: EventSource, filter_text: str | None = None) -> Worker[None]:
        """Show `store`: read its newest page and follow it live (raises FilterError)."""
        if filter_text is not None:
            self._filter = parse_filter(filter_text, now=self._clock())
        self._store = store
        self._update_titles()
        return self.reload()

    def set_filter(self, text: str) -> Worker[None]:
        """Parse `text` and reload the window with it; on FilterError the old filter stays."""
        flt = parse_filter(text, now=self._clock())  # raises before anything changes
        self._filter = flt
        self._update_titles()
        return self.reload()

    def reload(self, *, notice: str | None = None) -> Worker[None]:
        """Re-read the newest page from the store and follow live from there."""
        self._begin_load()
        if notice:
            self._show_notice(notice)
        # `@work` with options loses the result type (Worker[Never]); it is None.
        worker = cast("Worker[None]", self._load_newest(self._generation))
        self._loader = worker
        return worker

    def apply_batch(self, batch: Sequence[Item]) -> None:
        """Apply one batch of live items from the console feed (events in position order)."""
        self._apply(batch, prefiltered=False)

    def feed_lost(self) -> None:
        """Live events were lost on the way: re-read from the store (on resume, when paused)."""
        if self.paused:
            self._held.clear()
            self._held_overflow = True
            self._update_titles()
        else:
            self.reload(notice=LAG_NOTICE)

    async def export(self, path: Path | str, fmt: ExportFormat) -> int:
        """Write every stored event matching the active filter to `path`; return the count."""
        if self._store is None:
            raise StoreError("the event log is not attached to a store")
        return await export_events(self._store, self._filter, Path(path), fmt)

    # -- loading ------------------------------------------------------------

    def _begin_load(self) -> None:
        """Forget the live pipeline of the old window before a new one is read."""
        self._generation += 1
        self._loading = True
        self._attached = False
        self._tail.clear()
        self._tail_lost = 0
        self._held.clear()
        self._held_overflow = False
        self._paused_count = 0
        self.workers.cancel_group(self, "event-log-page")

    @work(exclusive=True, group="event-log-load", exit_on_error=False)
    async def _load_newest(self, generation: int) -> None:
        store = self._store
        if store is None:
            return
        flt = self._filter
        try:
            # Live events that commit meanwhile wait in the tail (see _attach_at).
            last = await store.last_position()
            page = await store.read_before(last + 1, self.page_size, flt)
        except StoreError as exc:
            self._load_failed(generation, exc)
            return
        if generation != self._generation:
            return
        page.reverse()
        self._replace_window(page, has_older=len(page) >= self.page_size, cursor_at_end=True)
        if not self._attach_at(last):
            return
        self._after_window_change(to_end=True)

    @work(exclusive=True, group="event-log-load", exit_on_error=False)
    async def _load_oldest(self, generation: int) -> None:
        store = self._store
        if store is None:
            return
        flt = self._filter
        try:
            batch = await store.read_after(0, self.page_size, flt)
        except StoreError as exc:
            self._load_failed(generation, exc)
            return
        if generation != self._generation:
            return
        self._replace_window(list(batch.events), has_older=False, cursor_at_end=False)
        if not batch.has_more and not self._attach_at(batch.cursor.position):
            return
        self._after_window_change()

    def _load_failed(self, generation: int, error: BaseException) -> None:
        """Empty the window and say why: its rows may have been read for another filter."""
        if generation != self._generation:
            return
        self._loading = False
        self._failure = str(error) or type(error).__name__
        self._events = []
        self._cursor = -1
        self._has_older = False
        self._attached = False
        self._line_cache.clear()
        with self._programmatic_scroll():
            self.scroll_to(y=0, animate=False, force=True)
        self._after_window_change()

    def _attach_at(self, position: int) -> bool:
        """Follow live from just after `position` (the window's bottom); False if reloading.

        The tail holds what arrived while the page was read: what is past it is
        appended; if the tail lost something past it, the newest page is read again.
        """
        if self._tail_lost > position:
            self.reload()
            return False
        self._live_after = position
        self._attached = True
        tail = [e for e in self._tail if e.position > position]
        self._tail.clear()
        if tail:
            self._events.extend(tail)
            self._live_after = tail[-1].position
            self._trim_top()
            if self._cursor < 0 or self.follow:
                self._cursor = len(self._events) - 1
        return True

    @work(exclusive=True, group="event-log-page", exit_on_error=False)
    async def _page_older(self, generation: int, first: int) -> None:
        store = self._store
        if store is None:
            return
        try:
            older = await store.read_before(first, self.page_size, self._filter)
        except StoreError as exc:
            self._show_notice(f"cannot read events: {exc}")
            return
        # A load, or a trim of the top by live events, makes this page stale.
        if generation != self._generation or not self._events or self._events[0].position != first:
            return
        older.reverse()
        self._has_older = len(older) >= self.page_size
        if not older:
            self._update_titles()
            return
        count = len(older)
        self._events[0:0] = older
        self._cursor += count
        overflow = len(self._events) - self.window_cap
        if overflow > 0:
            # Trim the newest end: the window no longer reaches the live edge.
            del self._events[-overflow:]
            self._detach()
            self._cursor = min(self._cursor, len(self._events) - 1)
        self._after_window_change(shift=count)

    @work(exclusive=True, group="event-log-page", exit_on_error=False)
    async def _page_newer(self, generation: int, last: int) -> None:
        store = self._store
        if store is None:
            return
        try:
            batch = await store.read_after(last, self.page_size, self._filter)
        except StoreError as exc:
            self._show_notice(f"cannot read events: {exc}")
            return
        if generation != self._generation or self._attached:
            return
        if not self._events or self._events[-1].position != last:
            return
        self._events.extend(batch.events)
        shift = self._trim_top()
        if not batch.has_more and not self._attach_at(batch.cursor.position):
            return
        self._after_window_change(shift=shift)

    def _detach(self) -> None:
        self._attached = False
        self._tail.clear()
        self._tail_lost = 0
        self._held.clear()
        self._held_overflow = False
        if self.follow:
            self.set_reactive(EventLog.follow, False)

    def _replace_window(self, events: list[Event], *, has_older: bool, cursor_at_end: bool) -> None:
        self._loading = False
        self._failure = None
        self._events = events
        self._has_older = has_older
        self._attached = False
        self._loaded = True
        if not events:
            self._cursor = -1
        elif cursor_at_end:
            self._cursor = len(events) - 1
        else:
            self._cursor = 0
        with self._programmatic_scroll():
            self.scroll_to(y=0, animate=False, force=True)

    # -- live ---------------------------------------------------------------

    def _apply(self, batch: Sequence[Item], *, prefiltered: bool) -> None:
        if any(isinstance(item, Lag) for item in batch):
            self.feed_lost()
            return
        flt = None if prefiltered or self._filter.is_empty else self._filter
        fresh = [
            e
            for e in batch
            if isinstance(e, Event)
            and e.position > self._live_after
            and (flt is None or flt.matches(e))
        ]
        if not fresh:
            return
        if not self._attached:
            # A page is being read, or older history is shown: the store has these,
            # but whatever lands past the page being read comes from here.
            if self._failure is not None:
                return
            dropped = len(self._tail) + len(fresh) - (self._tail.maxlen or 0)
            if dropped > 0:
                held = len(self._tail)
                newest_lost = self._tail[dropped - 1] if dropped <= held else fresh[dropped - held - 1]
                self._tail_lost = max(self._tail_lost, newest_lost.position)
            self._tail.extend(fresh)
            return
        self._live_after = fresh[-1].position
        if self.paused:
            self._paused_count += len(fresh)
            if not self._held_overflow:
                if len(self._held) + len(fresh) > self.window_cap:
                    self._held.clear()
                    self._held_overflow = True  # resume re-reads from the store instead
                else:
                    self._held.extend(fresh)
            self._update_titles()
            return
        self._append_live(fresh)

    def _append_live(self, fresh: list[Event]) -> None:
        self._events.extend(fresh)
        shift = self._trim_top()
        if self.follow or self._cursor < 0:
            self._cursor = len(self._events) - 1
        self._after_window_change(to_end=self.follow, shift=shift)

    def _trim_top(self) -> int:
        """Drop the oldest rows past the cap; return the scroll shift that keeps the view still."""
        overflow = len(self._events) - self.window_cap
        if overflow <= 0:
            return 0
        del self._events[:overflow]
        self._has_older = True
        self._cursor = max(self._cursor - overflow, 0 if self._events else -1)
        return -overflow

    # -- view ---------------------------------------------------------------

    def _after_window_change(self, *, to_end: bool = False, shift: int = 0) -> None:
        """Resize the scroll area to the window, then keep the view on the same rows (or the end)."""
        self.virtual_size = Size(0, len(self._events))
        with self._programmatic_scroll():
            if to_end:
                self._scroll_to_end()
            elif shift:
                y = max(0, round(self.scroll_y) + shift)
                self.scroll_to(y=y, animate=False, force=True)
        self._update_titles()
        self._post_selection()
        self.refresh()

    @contextlib.contextmanager
    def _programmatic_scroll(self) -> Iterator[None]:
        """Scrolls made to keep the view on the same rows: they page nothing in, stop no follow."""
        self._adjusting = True
        try:
            yield
        finally:
            self._adjusting = False

    def _scroll_to_end(self) -> None:
        # `force`: the scrollbar only appears at the next layout, and without
        # it Textual would refuse to scroll now.
        with self._programmatic_scroll():
            self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)

    def _post_selection(self) -> None:
        event = self.selected_event
        position = event.position if event is not None else None
        if position != self._selected_position:
            self._selected_position = position
            self.post_message(self.Selected(self, event))

    def _update_titles(self) -> None:
        title = Text("Events", style=Style(bold=True))
        if self._filter.is_empty:
            title.append(" · all", style=Style(dim=True))
        else:
            title.append(" · filter: ")
            title.append_text(one_line(self._filter.text, 60))
        self.border_title = title
        self.border_subtitle = one_line(self.status_text)
        self.set_class(self.paused, "-paused")

    def _show_notice(self, notice: str) -> None:
        self._notice = notice
        if self._notice_timer is not None:
            self._notice_timer.stop()
        self._notice_timer = self.set_timer(NOTICE_SECONDS, self._clear_notice)
        self._update_titles()

    def _clear_notice(self) -> None:
        self._notice = None
        self._notice_timer = None
        self._update_titles()

    def _move_cursor(self, index: int) -> None:
        if not self._events:
            return
        index = max(0, min(index, len(self._events) - 1))
        previous = self._cursor
        self._cursor = index
        if self.follow and index < len(self._events) - 1:
            self.follow = False  # moving off the newest row stops following
        self._scroll_cursor_into_view()
        if previous != index:
            self.refresh()
            self._post_selection()
        self._maybe_page()

    def _scroll_cursor_into_view(self) -> None:
        height = self.scrollable_content_region.height
        if height <= 0:
            return
        top = round(self.scroll_y)
        if self._cursor < top:
            self.scroll_to(y=self._cursor, animate=False, force=True)
        elif self._cursor >= top + height:
            self.scroll_to(y=self._cursor - height + 1, animate=False, force=True)

    def _maybe_page(self) -> None:
        """Page in older (newer) events when the view nears the window's top (bottom)."""
        if self._store is None or not self._loaded or not self._events:
            return
        if any(w is not None and not w.is_finished for w in (self._loader, self._pager)):
            return
        height = max(self.scrollable_content_region.height, 1)
        top = round(self.scroll_y)
        if self._has_older and top < height:
            self._pager = self._page_older(self._generation, self._events[0].position)
        elif not self._attached and top + 2 * height >= len(self._events):
            self._pager = self._page_newer(self._generation, self._events[-1].position)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self._adjusting:
            return
        back = round(new_value) < round(old_value)
        # A layout that shrinks the scroll range also lowers scroll_y: still at the bottom.
        if back and self.follow and round(new_value) < round(self.max_scroll_y):
            self.follow = False  # the operator scrolled back to read: stay there
        if back or not self._attached:
            self._maybe_page()

    def watch_follow(self, follow: bool) -> None:
        if follow:
            self._go_newest()
        self._update_titles()

    def watch_paused(self, paused: bool) -> None:
        if not paused:
            held, overflow = self._held, self._held_overflow
            self._held, self._held_overflow = [], False
            self._paused_count = 0
            if overflow:
                self.reload()
            elif held:
                self._append_live(held)
        self._update_titles()

    def _go_newest(self) -> None:
        # After a failed load there is nothing to go to: read again (the retry).
        stale = self._failure is not None or (self._loaded and not self._attached)
        if self._store is not None and stale:
            self.reload()
        elif self._events:
            self._cursor = len(self._events) - 1
            self._scroll_to_end()
            self.refresh()
            self._post_selection()

    # -- actions ------------------------------------------------------------

    def action_toggle_follow(self) -> None:
        """Follow the newest events, or stay where the view is."""
        self.follow = not self.follow

    def action_toggle_pause(self) -> None:
        """Hold or resume live updates."""
        self.paused = not self.paused

    def action_cursor_up(self) -> None:
        self._move_cursor(self._cursor - 1)

    def action_cursor_down(self) -> None:
        self._move_cursor(self._cursor + 1)

    def action_page_up(self) -> None:
        self._move_cursor(self._cursor - max(self.scrollable_content_region.height - 1, 1))

    def action_page_down(self) -> None:
        self._move_cursor(self._cursor + max(self.scrollable_content_region.height - 1, 1))

    def action_first(self) -> None:
        """The oldest matching event in the store."""
        if self.follow:
            self.follow = False
        if self._has_older and self._store is not None:
            self._begin_load()
            self._loader = self._load_oldest(self._generation)
        else:
            self._move_cursor(0)

    def action_last(self) -> None:
        """The newest matching event, following from there."""
        if self.follow:
            self._go_newest()
        else:
            self.follow = True

    # -- events -------------------------------------------------------------

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # Workers here do not take the app down on an unexpected error; they say so.
        if event.state == WorkerState.ERROR and event.worker.group.startswith("event-log"):
            if event.worker is self._loader and self._loading:
                error = event.worker.error
                self._load_failed(self._generation, error or RuntimeError("unknown error"))
                return
            self._show_notice(f"event log error: {event.worker.error}")

    def on_mount(self) -> None:
        self._update_titles()
        if self._store is not None and not self._loaded:
            self.reload()

    def on_unmount(self) -> None:
        self._generation += 1

    def on_resize(self, event: events.Resize) -> None:
        self._line_cache.clear()
        if self.follow:
            self._scroll_to_end()
        else:
            with self._programmatic_scroll():
                self._scroll_cursor_into_view()

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        index = round(self.scroll_y) + offset.y
        if 0 <= index < len(self._events):
            self._move_cursor(index)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._line_cache.clear()
        self._span_styles.clear()

    # -- rendering ----------------------------------------------------------

    def _style(self, name: str) -> Style:
        """A component's colour and text style, without its background.

        The full style is what blends translucent theme colours (`$foreground
        60%`) against the pane; its background is dropped so a span never
        paints over the cursor row's.
        """
        style = self._span_styles.get(name)
        if style is None:
            full = self.get_component_rich_style(f"event-log--{name}")
            style = Style(
                color=full.color,
                bold=full.bold,
                dim=full.dim,
                italic=full.italic,
                underline=full.underline,
                reverse=full.reverse,
                strike=full.strike,
            )
            self._span_styles[name] = style
        return style

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        index = round(self.scroll_y) + y
        base = self.rich_style
        if index >= len(self._events) or index < 0:
            if self._failure is not None and not self._events:
                return self._render_failure(index, width, base)
            if index == 0 and self._loaded:
                empty = (
                    "No events match the filter." if not self._filter.is_empty else "No events yet."
                )
                line = Text(empty, style=self._style("empty"), end="")
                return Strip(line.render(self.app.console)).adjust_cell_length(width, base)
            return Strip.blank(width, base)
        event = self._events[index]
        cursor = 0 if index != self._cursor else (2 if self.has_focus else 1)
        key = (event.position, width, cursor)
        strip = self._line_cache.get(key)
        if strip is None:
            strip = self._render_event(event, width, cursor, base)
            self._line_cache.set(key, strip)
        return strip

    def _render_failure(self, y: int, width: int, base: Style) -> Strip:
        """Row `y` of why the window is empty, wrapped to the pane (the error can be long)."""
        what = "with this filter" if not self._filter.is_empty else "from the store"
        text = Text(f"✗ cannot read events {what}: ", style=self._style("error"), end="")
        text.append_text(multi_line(self._failure or ""))
        text.append("\nG retries; / changes the filter.", style=self._style("empty"))
        lines = text.wrap(self.app.console, max(width, 1))
        if not 0 <= y < len(lines):
            return Strip.blank(width, base)
        return Strip(lines[y].render(self.app.console)).adjust_cell_length(width, base)

    def _columns(self, width: int) -> tuple[int, int, int]:
        """Widths of the runtime#seq, kind and worker/run columns for a pane `width` wide."""
        if width >= 130:
            return 18, 22, 24
        if width >= 100:
            return 14, 22, 12
        return 11, 20, 5

    def _render_event(self, event: Event, width: int, cursor: int, base: Style) -> Strip:
        if cursor:
            base = base + self.get_component_rich_style("event-log--cursor")
        where_w, kind_w, who_w = self._columns(width)
        level = event.level
        line = Text(style=base, no_wrap=True, end="")
        line.append(self._times.time_ms(event.at), self._style("time"))
        line.append(" ")
        line.append(LEVEL_LABELS.get(level, "???"), self._style(level.value))
        line.append(" ")
        line.append_text(_where(event.runtime_id, event.seq, where_w, self._style("where")))
        line.append(" ")
        line.append_text(_fixed(event.kind, kind_w, self._style("kind")))
        line.append(" ")
        who = event.worker_id or "-"
        if event.run_id and who_w >= 12:
            who = f"{who}/{event.run_id}"
        line.append_text(_fixed(who, who_w, self._style("who")))
        line.append(" ")
        room = width - line.cell_len
        if room > 0:
            if event.message:
                line.append_text(one_line(event.message, room))
            elif event.payload:
                payload = json.dumps(event.payload, ensure_ascii=False, sort_keys=True)
                line.append_text(one_line(payload, room, style=self._style("payload")))
        strip = Strip(line.render(self.app.console))
        return strip.adjust_cell_length(width, base)
