"""The transcript pane: a worker's entries, paged from the backend, appended live.

One widget serves the main screen (rows cut to the pane, full text one key
away) and the worker view (`wrap=True`: every entry's whole text, wrapped).
Only a window of entries is held (a worker with 100k entries opens at once:
the last page is read, earlier pages come in when the operator scrolls to the
top), and only visible rows are rendered (`render_line`) from the row list,
through a small cache.

Live entries come from the console feed (`append_entries`); a gap in the
sequence means "re-read the last page". The view follows new entries while it
sits at the bottom; scrolled up, it stays put and says how many are below.
"""

from __future__ import annotations

from itertools import pairwise

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import work
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from store.models import TranscriptEntry, WorkerRef
from tui.backend import TranscriptPages
from tui.clock import ConsoleClock
from tui.safe_text import multi_line
from tui.widgets.labels import ROLE_STYLE

PAGE = 200
MAX_ENTRIES = 2000
DIM = Style(dim=True)
EMPTY_NOTE = "no transcript yet: press i to send input"


def entry_lines(entry: TranscriptEntry, clock: ConsoleClock) -> list[Text]:
    """One entry as rows: a heading (time, role, number, run), then its text, indented."""
    head = Text(end="")
    head.append(clock.time(entry.at) + " ", style=DIM)
    head.append(f"{entry.role.value:<10}", style=ROLE_STYLE[entry.role])
    head.append(f"#{entry.sequence}", style=DIM)
    if entry.run_id:
        head.append(f" {entry.run_id}", style=DIM)
    body = multi_line(entry.content).split("\n", allow_blank=True)
    return [head, *(Text("  ", end="") + line for line in body)]


class TranscriptView(ScrollView, can_focus=True):
    """A worker's transcript: entries in, visible rows out."""

    DEFAULT_CSS = """
    TranscriptView { height: 1fr; overflow-x: hidden; }
    """
    BINDINGS = [
        Binding("up,k", "scroll_up", "Up", show=False),
        Binding("down,j", "scroll_down", "Down", show=False),
        Binding("g,home", "scroll_home", "Top", show=False),
        Binding("G,end", "scroll_end", "Bottom", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
    ]

    def __init__(
        self,
        pages: TranscriptPages | None = None,
        *,
        clock: ConsoleClock | None = None,
        wrap: bool = False,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.pages = pages
        self.clock = clock or ConsoleClock()
        self.wrap = wrap
        self.ref: WorkerRef | None = None
        self.entries: list[TranscriptEntry] = []
        self.loaded = False
        """True once a worker's last page has been read (tests wait for it)."""
        self.new_below = 0
        """Entries that arrived below the view while the operator was scrolled up."""
        self._note = ""
        self._lines: list[Text] = []  # logical rows (before wrapping)
        self._rows: list[Text] = []  # rows as drawn (wrapped to `_rows_width` when `wrap`)
        self._rows_width = -1
        self._generation = 0  # bumped whenever existing rows change (not on appends)
        self._cache: LRUCache[tuple[int, int, int], Strip] = LRUCache(512)
        self._following = True
        self._loading_earlier = False
        self._pending: list[TranscriptEntry] = []

    # -- what is shown -----------------------------------------------------------

    @property
    def earlier(self) -> int:
        """How many entries come before the first one held."""
        return self.entries[0].sequence - 1 if self.entries else 0

    def clear_view(self, note: str = "") -> None:
        """Show no worker (with a dim `note`)."""
        self.ref = None
        self.entries = []
        self._note = note
        self.new_below = 0
        self._rebuild()
        self._relayout(follow=False)

    def show_worker(self, ref: WorkerRef) -> None:
        """Load the last page of `ref`'s transcript and follow it."""
        if ref != self.ref:
            self.ref = ref
            self.entries = []
            self._pending = []
            self.loaded = False
            self._note = ""
            self._rebuild()
            self._relayout(follow=True)
        self._load_last(ref)

    def reload(self) -> None:
        """Re-read the last page of the shown worker (after a gap in the live feed)."""
        if self.ref is not None:
            self.loaded = False  # live entries wait for the page (see append_entries)
            self._load_last(self.ref)

    @work(exclusive=True, group="transcript-load", exit_on_error=False)
    async def _load_last(self, ref: WorkerRef) -> None:
        if self.pages is None:
            return
        first = await self.pages.transcript(ref, 0, 1)
        start = max(0, first.total_items - PAGE)
        page = await self.pages.transcript(ref, start, PAGE) if first.total_items else first
        if ref != self.ref:
            return  # the operator moved on while this was read
        self.entries = list(page.items)
        self._note = "" if self.entries else EMPTY_NOTE
        self.new_below = 0
        self.loaded = True
        self._rebuild()
        self._relayout(follow=True)
        pending, self._pending = self._pending, []
        if pending:
            self.append_entries(pending)

    def append_entries(self, entries: list[TranscriptEntry]) -> None:
        """Live entries (any worker's: others are skipped); a gap means re-read the store."""
        ref = self.ref
        if ref is None:
            return
        mine = [e for e in entries if e.worker_id == ref.worker_id and e.runtime_id == ref.runtime_id]
        if not self.loaded:
            # The page being read may end before these: applied past it when it lands.
            self._pending.extend(mine)
            del self._pending[:-MAX_ENTRIES]
            return
        last = self.entries[-1].sequence if self.entries else 0
        fresh = [e for e in mine if e.sequence > last]
        if not fresh:
            return
        if fresh[0].sequence != last + 1 or any(
            b.sequence != a.sequence + 1 for a, b in pairwise(fresh)
        ):
            self.reload()
            return
        at_bottom = self._at_bottom()
        was_empty = not self.entries
        self.entries.extend(fresh)
        overflow = len(self.entries) - MAX_ENTRIES
        if was_empty or overflow > 0:
            before = len(self._rows)
            if overflow > 0:
                del self.entries[:overflow]
            self._note = ""
            self._rebuild()
            shift = 0 if was_empty else len(self._rows) - before  # rows gone from the top
            self._relayout(follow=at_bottom, shift=min(shift, 0))
        else:
            first_new = len(self._lines)
            for entry in fresh:
                self._lines.extend(entry_lines(entry, self.clock))
            self._extend_rows(first_new)
            self._relayout(follow=at_bottom)
        if not at_bottom:
            self.new_below += len(fresh)
            self._update_subtitle()

    @work(exclusive=True, group="transcript-earlier", exit_on_error=False)
    async def load_earlier(self) -> None:
        """Read the page before the first entry held, keeping the view on the same rows."""
        ref = self.ref
        if self.pages is None or ref is None or not self.entries or self._loading_earlier:
            return
        first_index = self.entries[0].sequence - 1
        if first_index <= 0:
            return
        self._loading_earlier = True
        try:
            start = max(0, first_index - PAGE)
            page = await self.pages.transcript(ref, start, first_index - start)
            if ref != self.ref or not self.entries or self.entries[0].sequence - 1 != first_index:
                return
            before = len(self._rows)
            self.entries = page.items + self.entries
            if len(self.entries) > MAX_ENTRIES:
                self.entries = self.entries[:MAX_ENTRIES]  # the newest go: no longer live
            self._rebuild()
            self._relayout(follow=False, shift=len(self._rows) - before)
        finally:
            self._loading_earlier = False

    # -- rows ------------------------------------------------------------------

    def _marker(self) -> list[Text]:
        earlier = self.earlier
        if earlier <= 0:
            return []
        return [Text(f"▲ {earlier} earlier entries: scroll up or press g", style=DIM, end="")]

    def _rebuild(self) -> None:
        """Logical rows from the entries (after anything but a plain append)."""
        if self.entries:
            self._lines = self._marker() + [
                line for entry in self.entries for line in entry_lines(entry, self.clock)
            ]
        else:
            self._lines = [Text(self._note, style=DIM, end="")] if self._note else []
        self._rows_width = -1  # re-wrap at the next layout
        self._generation += 1
        self._fit_rows()

    def _fit_rows(self) -> None:
        width = max(self.scrollable_content_region.width, 1)
        if not self.wrap:
            self._rows = self._lines
            self._rows_width = width
            return
        if width == self._rows_width:
            return
        self._rows = self._wrapped(self._lines, width)
        self._rows_width = width
        self._generation += 1

    def _wrapped(self, lines: list[Text], width: int) -> list[Text]:
        console = self.app.console
        out: list[Text] = []
        for line in lines:
            if line.cell_len <= width:
                out.append(line)
            else:
                out.extend(line.wrap(console, width))
        return out

    def _extend_rows(self, first_new_line: int) -> None:
        """Rows for logical lines appended from `first_new_line` on (existing rows stay)."""
        if not self.wrap:
            self._rows = self._lines
            return
        if self._rows_width < 0:
            self._fit_rows()
            return
        self._rows.extend(self._wrapped(self._lines[first_new_line:], self._rows_width))

    # -- layout and scrolling ----------------------------------------------------

    def _at_bottom(self) -> bool:
        return self._following or self.scroll_y >= self.max_scroll_y

    def _relayout(self, follow: bool, shift: int = 0) -> None:
        # Rows are cut to the pane (or wrapped to it), never scrolled sideways.
        self.virtual_size = Size(self.scrollable_content_region.width, len(self._rows))
        self.refresh()
        self._following = follow
        if follow:
            self.new_below = 0
            self._update_subtitle()
            # `force`: before the first layout there is no scrollbar and a plain
            # scroll_end does nothing; after it, the end is the new end.
            self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)
            self.call_after_refresh(self._settle_end)
        elif shift:
            self.scroll_to(y=max(0, self.scroll_y + shift), animate=False, force=True, immediate=True)

    def _settle_end(self) -> None:
        if self._following:
            self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)

    def _update_subtitle(self) -> None:
        self.border_subtitle = f"↓ {self.new_below} new below (G)" if self.new_below else ""

    def on_resize(self) -> None:
        at_bottom = self._at_bottom()
        if self.wrap:
            self._fit_rows()
        self._cache.clear()
        self._relayout(follow=at_bottom)

    def watch_show_vertical_scrollbar(self, shown: bool) -> None:
        # Textual moves the scrollbar only when scroll_y changes while it is shown: a
        # view scrolled to its end before the scrollbar appeared drew its thumb at the top.
        if shown:
            self.vertical_scrollbar.position = self.scroll_y

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        if new < old and new < self.max_scroll_y:  # not a layout clamping it to the end
            self._following = False
        if new >= self.max_scroll_y:
            self._following = True
            if self.new_below:
                self.new_below = 0
                self._update_subtitle()
        if new <= 0 < old and not self._loading_earlier:
            self.load_earlier()

    def action_scroll_home(self) -> None:
        if self.scroll_y <= 0:
            self.load_earlier()
        self._following = False
        super().action_scroll_home()

    def action_scroll_end(self) -> None:
        self._following = True
        super().action_scroll_end()

    # -- rendering --------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        index = int(self.scroll_y) + y
        width = self.scrollable_content_region.width
        if not 0 <= index < len(self._rows):
            # Past the end: not cached, so a row appended later is drawn, not this blank.
            return Strip.blank(width, self.rich_style)
        key = (index, width, self._generation)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        text = self._rows[index].copy()
        if text.cell_len > width:
            text.truncate(max(width, 1), overflow="ellipsis")
        segments = [Segment(s.text, s.style) for s in text.render(self.app.console, end="")]
        # The pane's own style goes under every segment, so text keeps the background.
        strip = Strip(segments).crop_extend(0, width, None).apply_style(self.rich_style)
        self._cache.set(key, strip)
        return strip

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._cache.clear()
