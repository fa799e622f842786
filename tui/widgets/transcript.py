"""The transcript pane: the selected worker's entries, paged from the store.

Only a window of entries is held (a worker with 100k entries opens at once:
the last page is read, earlier pages come in when the operator scrolls to
the top), only visible rows are rendered, and rows longer than the pane are
cut (the full text is one key away, in the worker view). New entries are
appended live; the view follows them while it sits at the bottom.
"""

from __future__ import annotations

from collections import OrderedDict

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import work
from textual.binding import Binding
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from store.event_store import EventStore
from store.models import TranscriptEntry, WorkerRef
from tui.safe_text import multi_line
from tui.widgets.labels import ROLE_STYLE

PAGE = 200
MAX_ENTRIES = 2000


def entry_lines(entry: TranscriptEntry) -> list[Text]:
    head = Text()
    head.append(entry.at.strftime("%H:%M:%S "), style=Style(dim=True))
    head.append(f"{entry.role.value:<10}", style=ROLE_STYLE[entry.role])
    head.append(f"#{entry.sequence}", style=Style(dim=True))
    if entry.run_id:
        head.append(f" {entry.run_id}", style=Style(dim=True))
    body = multi_line(entry.content).split("\n", allow_blank=True)
    return [head, *(Text("  ") + line for line in body)]


class TranscriptView(ScrollView, can_focus=True):
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

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.store: EventStore | None = None
        self.ref: WorkerRef | None = None
        self.entries: list[TranscriptEntry] = []
        self._lines: list[Text] = []
        self._cache: OrderedDict[tuple[int, int], Strip] = OrderedDict()
        self.total = 0
        self._loading_earlier = False
        self._following = True

    # -- data ---------------------------------------------------------------

    def clear_view(self, note: str = "") -> None:
        self.ref = None
        self.entries = []
        self._lines = [Text(note, style=Style(dim=True))] if note else []
        self._relayout(follow=False)

    @work(exclusive=True, group="transcript-load")
    async def show_worker(self, store: EventStore, ref: WorkerRef) -> None:
        """Load the last page of `ref`'s transcript and follow it."""
        self.store = store
        first = await store.transcript(ref, 0, 1)
        start = max(0, first.total_items - PAGE)
        page = await store.transcript(ref, start, PAGE) if first.total_items else first
        self.ref = ref
        self.total = page.total_items
        self.entries = list(page.items)
        self._rebuild()
        if not self.entries:
            self._lines = [Text("no transcript yet: press i to send input", style=Style(dim=True))]
        self._relayout(follow=True)

    def append_entries(self, entries: list[TranscriptEntry]) -> None:
        """Live entries for the shown worker; a gap means reload from the store."""
        if self.ref is None or not entries:
            return
        fresh = [e for e in entries if not self.entries or e.sequence > self.entries[-1].sequence]
        if not fresh:
            return
        expected = self.entries[-1].sequence + 1 if self.entries else 1
        if fresh[0].sequence != expected and self.store is not None:
            self.show_worker(self.store, self.ref)
            return
        at_bottom = self.scroll_y >= self.max_scroll_y
        replaced_placeholder = not self.entries
        if replaced_placeholder:
            self._lines = []
        self.entries.extend(fresh)
        self.total = max(self.total, fresh[-1].sequence)
        for entry in fresh:
            self._lines.extend(entry_lines(entry))
        if len(self.entries) > MAX_ENTRIES or replaced_placeholder:
            self.entries = self.entries[-MAX_ENTRIES:]
            self._rebuild()
            self._relayout(follow=at_bottom)
        else:
            self._relayout(follow=at_bottom, appended=True)

    @work(exclusive=True, group="transcript-earlier")
    async def _load_earlier(self) -> None:
        if self.store is None or self.ref is None or not self.entries:
            return
        first_index = self.entries[0].sequence - 1
        if first_index <= 0:
            return
        self._loading_earlier = True
        try:
            start = max(0, first_index - PAGE)
            page = await self.store.transcript(self.ref, start, first_index - start)
            if self.ref != page.ref:
                return
            added = [line for entry in page.items for line in entry_lines(entry)]
            self.entries = page.items + self.entries
            if len(self.entries) > MAX_ENTRIES:
                self.entries = self.entries[:MAX_ENTRIES]
            self._rebuild()
            self._relayout(follow=False)
            self.scroll_to(y=self.scroll_y + len(added), animate=False, immediate=True)
        finally:
            self._loading_earlier = False

    def _rebuild(self) -> None:
        self._lines = [line for entry in self.entries for line in entry_lines(entry)]

    def _relayout(self, follow: bool, appended: bool = False) -> None:
        if not appended:
            self._cache.clear()  # rows moved; appending only adds rows after the cached ones
        # Rows are cut to the pane, never scrolled sideways: the width is the pane's.
        size = Size(self.size.width, len(self._lines))
        if (
            appended
            and self.show_vertical_scrollbar
            and size.height > self.container_size.height
            and size.width == self.virtual_size.width
        ):
            # Only the scroll range grew and the scrollbar is already there: update it
            # without the whole-screen layout that assigning `virtual_size` triggers
            # (several a second while a worker streams output).
            self.set_reactive(TranscriptView.virtual_size, size)
            self._scroll_update(size)
        else:
            self.virtual_size = size
        self.refresh()
        self._following = follow
        if follow:
            # `force`: before the first layout there is no scrollbar and a plain
            # scroll_end does nothing; after it, the end is the new end.
            self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)
            self.call_after_refresh(
                self.scroll_end, animate=False, immediate=True, x_axis=False, force=True
            )

    def on_resize(self) -> None:
        self._relayout(follow=self._following or self.scroll_y >= self.max_scroll_y)

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        if new <= 0 and old > 0 and not self._loading_earlier:
            self._load_earlier()

    def action_scroll_home(self) -> None:
        if self.scroll_y <= 0:
            self._load_earlier()
        super().action_scroll_home()

    # -- rendering --------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        index = int(self.scroll_y) + y
        width = self.size.width
        key = (index, width)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        if index >= len(self._lines):
            strip = Strip.blank(width, self.rich_style)
        else:
            text = self._lines[index].copy()
            if text.cell_len > width:
                text.truncate(max(width, 1), overflow="ellipsis")
            segments = [Segment(s.text, s.style) for s in text.render(self.app.console, end="")]
            # The pane's own style goes under every segment, so text keeps the background.
            strip = Strip(segments).crop_extend(0, width, None).apply_style(self.rich_style)
        self._cache[key] = strip
        if len(self._cache) > 500:
            self._cache.popitem(last=False)
        return strip
