"""`WorkerScreen`: one worker in full screen: detail, runs and the whole transcript, live.

Everything is read from the store in Textual workers (async, never blocking the
UI). Live updates come from a store subscription filtered to this worker; the
events are only a signal: each drain (at most every `DRAIN_S`) re-reads the
worker's projections, so a burst of a thousand events costs one refresh, and a
lagging subscription is simply restarted at the end of the log.

The transcript shows every entry's full text, wrapped, made safe by
`tui.safe_text`. Entries are grouped in `Static` chunks of `CHUNK` entries, so a
live append re-renders one small chunk, and a resize re-wraps everything.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Button, DataTable, Footer, Header, Static

from store.event_store import EventStore
from store.feed import Subscription
from store.filters import parse_filter
from store.models import (
    Lag,
    RunRecord,
    TranscriptEntry,
    WorkerRecord,
    WorkerRef,
)
from tui.safe_text import multi_line, one_line
from tui.widgets.labels import ROLE_STYLE, run_status, worker_status

PAGE = 500
"""Transcript entries read per page (the store's maximum)."""
CHUNK = 50
"""Transcript entries per rendered chunk."""
KEEP = 2000
"""Transcript entries kept while tailing; older ones are dropped (and reloadable)."""
RUNS_SHOWN = 100
DRAIN_S = 0.1
"""At most one refresh per this many seconds under a stream of events."""
LIVE_QUEUE = 2000
"""Events the subscription may hold before it lags (and is restarted at the end)."""

KEY_STYLE = Style(bold=True)
DIM = Style(dim=True)
ERROR_STYLE = Style(bold=True)


def format_time(at: datetime) -> str:
    """A stored time as shown in the worker view (UTC, like every stored time)."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def entry_text(entry: TranscriptEntry) -> Text:
    """One transcript entry: a heading line (role, number, time, run), then its full text."""
    text = Text(end="")
    text.append(entry.role.value, ROLE_STYLE[entry.role])
    heading = f"  #{entry.sequence}  {entry.at.astimezone(UTC):%H:%M:%S}"
    if entry.run_id:
        heading += f"  {entry.run_id}"
    text.append(heading, DIM)
    text.append("\n")
    text.append_text(multi_line(entry.content))
    return text


def _list_text(items: Sequence[tuple[str, str | None]], sep: str) -> Text:
    """`name sep value, ...` made safe; `none` when empty."""
    if not items:
        return Text("none", style=DIM)
    out = Text(end="")
    for index, (name, value) in enumerate(items):
        if index:
            out.append(", ")
        out.append_text(one_line(name))
        if value:
            out.append(sep)
            out.append_text(one_line(value))
    return out


def detail_text(
    record: WorkerRecord, runs: Sequence[RunRecord], readonly_reason: str | None
) -> Text:
    """The detail panel: what the worker was made from and where it stands.

    Five lines for a typical worker (six with a read-only reason, which comes first).
    """
    spec = record.spec
    intent = spec.intent
    out = Text(end="")
    if readonly_reason:
        # First, so it stays in view when the panel is short.
        out.append("read-only:", Style(bold=True, reverse=True))
        out.append(" ")
        out.append_text(one_line(readonly_reason))
        out.append("\n")

    def key(label: str) -> None:
        out.append(f"{label} ", KEY_STYLE)

    def gap() -> None:
        out.append("   ")

    def none() -> Text:
        return Text("none", style=DIM, end="")

    out.append(record.worker_id, KEY_STYLE)
    gap()
    out.append_text(worker_status(record.status))
    gap()
    key("intent")
    out.append(intent.type)
    gap()
    key("profile")
    out.append_text(one_line(spec.profile))
    gap()
    key("config bundle")
    out.append_text(one_line(spec.config_bundle) if spec.config_bundle else none())
    out.append("\n")
    if intent.type == "task":
        key("objective")
        out.append_text(multi_line(intent.objective))
    else:
        if intent.type == "role":
            key("role")
            out.append_text(one_line(intent.role))
            gap()
        key("purpose")
        out.append_text(multi_line(intent.purpose) if intent.purpose else none())
    out.append("\n")
    key("capabilities")
    out.append_text(_list_text([(c.name, c.reason) for c in spec.capabilities], ": "))
    gap()
    key("workspace")
    out.append_text(_list_text([(r.name, r.reference) for r in spec.workspace_refs], "="))
    gap()
    key("mounts")
    out.append_text(_list_text([(r.name, r.reference) for r in spec.mount_refs], "="))
    out.append("\n")
    key("transcript")
    out.append(str(record.transcript_len))
    gap()
    key("queued")
    out.append(str(record.queued))
    gap()
    key("current run")
    if record.current_run_id:
        out.append_text(one_line(record.current_run_id))
        if record.current_run_status is not None:
            out.append(" ")
            out.append_text(run_status(record.current_run_status))
    else:
        out.append_text(none())
        if runs:
            out.append(f" (last {runs[0].run_id} ")
            out.append_text(run_status(runs[0].status))
            out.append(")")
    out.append("\n")
    key("created")
    out.append(format_time(record.created_at))
    gap()
    key("last activity")
    out.append(f"{format_time(record.updated_at)} UTC")
    return out


class RunsTable(DataTable[Text]):
    """A worker's runs, newest first, with vi-style keys beside the arrows."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "scroll_top", "Top", show=False),
        Binding("G", "scroll_bottom", "Bottom", show=False),
    ]


class TranscriptView(VerticalScroll):
    """The transcript window: full entries, wrapped, in chunks; tails when at the bottom."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "scroll_down", "Down", show=False),
        Binding("k", "scroll_up", "Up", show=False),
        Binding("g", "scroll_home", "Top", show=False),
        Binding("G", "scroll_end", "Bottom", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._chunks: list[tuple[Static, list[TranscriptEntry]]] = []
        self.first_sequence = 1
        """The sequence of the first entry shown (1 when the start is loaded)."""
        self.last_sequence = 0
        """The sequence of the last entry shown (0 when empty)."""
        self._keep = KEEP

    def compose(self) -> ComposeResult:
        yield Button(Content(""), id="wv-earlier", compact=True)
        yield Static(Content("no transcript entries yet"), id="wv-transcript-empty")

    def on_mount(self) -> None:
        self._update_markers()

    @property
    def entries(self) -> list[TranscriptEntry]:
        """Every entry currently loaded, oldest first."""
        return [entry for _, items in self._chunks for entry in items]

    @property
    def earlier(self) -> int:
        """How many entries come before the first one loaded."""
        return self.first_sequence - 1

    def _update_markers(self) -> None:
        earlier = self.earlier
        button = self.query_one("#wv-earlier", Button)
        button.label = Content(f"▲ {earlier} earlier entries: press [ to load ▲")
        button.display = earlier > 0
        self.query_one("#wv-transcript-empty").display = not self._chunks
        self.screen.refresh_bindings()  # `[` is dimmed in the footer when nothing is earlier

    def _chunk_text(self, items: Iterable[TranscriptEntry]) -> Text:
        return Text("\n\n", end="").join(entry_text(entry) for entry in items)

    def _new_chunks(
        self, items: Sequence[TranscriptEntry]
    ) -> list[tuple[Static, list[TranscriptEntry]]]:
        out = []
        for i in range(0, len(items), CHUNK):
            part = list(items[i : i + CHUNK])
            out.append((Static(self._chunk_text(part), classes="tx-chunk"), part))
        return out

    async def set_entries(self, items: Sequence[TranscriptEntry], first_sequence: int) -> None:
        """Show `items` (which start at `first_sequence`) in place of everything."""
        for static, _ in self._chunks:
            await static.remove()
        self._chunks = self._new_chunks(items)
        self.first_sequence = items[0].sequence if items else first_sequence
        self.last_sequence = items[-1].sequence if items else first_sequence - 1
        if self._chunks:
            await self.mount_all([static for static, _ in self._chunks])
        self._update_markers()
        self.call_after_refresh(self.scroll_end, animate=False)

    async def append(self, items: Sequence[TranscriptEntry]) -> None:
        """Add entries after the last one (those at or below `last_sequence` are skipped)."""
        fresh = [entry for entry in items if entry.sequence > self.last_sequence]
        if not fresh:
            return
        following = self.is_vertical_scroll_end or self.max_scroll_y == 0
        if self._chunks and len(self._chunks[-1][1]) < CHUNK:
            static, part = self._chunks[-1]
            room = CHUNK - len(part)
            part.extend(fresh[:room])
            static.update(self._chunk_text(part))
            fresh = fresh[room:]
        if fresh:
            new = self._new_chunks(fresh)
            self._chunks.extend(new)
            await self.mount_all([static for static, _ in new])
        self.last_sequence = self._chunks[-1][1][-1].sequence
        self.first_sequence = self._chunks[0][1][0].sequence
        await self._trim()
        self._update_markers()
        if following:
            self.call_after_refresh(self.scroll_end, animate=False)

    async def prepend(self, items: Sequence[TranscriptEntry]) -> None:
        """Add entries before the first one (paging back)."""
        older = [entry for entry in items if entry.sequence < self.first_sequence]
        if not older:
            return
        anchor = self._chunks[0][0] if self._chunks else None
        new = self._new_chunks(older)
        self._chunks[:0] = new
        self.first_sequence = older[0].sequence
        if anchor is not None:
            await self.mount_all([static for static, _ in new], before=anchor)
        else:
            await self.mount_all([static for static, _ in new])
        self._keep = max(self._keep, len(self.entries))
        self._update_markers()
        if anchor is not None:
            # Keep the entry that was first in view; the older ones are above it.
            self.call_after_refresh(self.scroll_to_widget, anchor, top=True, animate=False)

    async def _trim(self) -> None:
        count = sum(len(part) for _, part in self._chunks)
        while len(self._chunks) > 1 and count - len(self._chunks[0][1]) >= self._keep:
            static, part = self._chunks.pop(0)
            count -= len(part)
            await static.remove()
            self.first_sequence = self._chunks[0][1][0].sequence


class WorkerScreen(Screen[None]):
    """One worker in full screen. `ref` is public: the app's i/s/c/x act on it."""

    CSS_PATH = "screens.tcss"
    AUTO_FOCUS = "#wv-transcript"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("left_square_bracket", "load_earlier", "Earlier"),
        Binding("z", "zoom", "Zoom"),
    ]

    def __init__(
        self, store: EventStore, ref: WorkerRef, readonly_reason: str | None = None
    ) -> None:
        super().__init__()
        self.store = store
        self.ref = ref
        self.readonly_reason = readonly_reason
        self.record: WorkerRecord | None = None
        self.runs: list[RunRecord] = []
        self.loaded = False
        """True once the first read finished (tests and snapshots wait for it)."""
        self.refreshes = 0
        """Live refreshes applied so far (each one drains a batch of events)."""
        self._sub: Subscription | None = None

    # -- layout ------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="wv-detail-box") as box:
            box.border_title = "Worker"
            yield Static(Content("loading…"), id="wv-detail")
        runs = RunsTable(id="wv-runs", cursor_type="row", zebra_stripes=True)
        runs.border_title = "Runs"
        yield runs
        transcript = TranscriptView(id="wv-transcript")
        transcript.border_title = "Transcript"
        yield transcript
        yield Footer()

    def on_mount(self) -> None:
        self.title = f"Worker {self.ref.worker_id}"
        self.sub_title = f"runtime {self.ref.runtime_id}"
        table = self.query_one(RunsTable)
        table.add_column("Run", key="run")
        table.add_column("Status", key="status")
        table.add_column("Prompt", key="prompt")
        table.add_column("Result / error", key="result")
        self._follow()

    def on_unmount(self) -> None:
        if self._sub is not None:
            self._sub.close()
            self._sub = None

    @property
    def transcript(self) -> TranscriptView:
        return self.query_one(TranscriptView)

    # -- reading -----------------------------------------------------------------

    @work(exclusive=True, group="worker-view-follow", exit_on_error=False)
    async def _follow(self) -> None:
        rt, wid = self.ref.runtime_id, self.ref.worker_id
        flt = parse_filter(f"runtime:{rt} worker:{wid}")
        try:
            position = await self.store.last_position()
            await self._load_all()
            sub = self._sub = self.store.subscribe(position, flt, max_queue=LIVE_QUEUE)
            while True:
                try:
                    items = await sub.next_batch()
                except StopAsyncIteration:
                    return
                if any(isinstance(item, Lag) for item in items):
                    # The projections are the truth: skip the backlog, re-read, go on live.
                    sub.close()
                    position = await self.store.last_position()
                    sub = self._sub = self.store.subscribe(position, flt, max_queue=LIVE_QUEUE)
                await self._refresh_live()
                await asyncio.sleep(DRAIN_S)
        except Exception as exc:  # store closed or unreadable: say so, never crash the app
            self._show_problem(f"stopped reading the store: {exc}")
        finally:
            if self._sub is not None:
                self._sub.close()
                self._sub = None

    async def _load_all(self) -> None:
        record = await self.store.worker(self.ref.runtime_id, self.ref.worker_id)
        if record is None:
            self._show_problem(f"worker {self.ref} is not in the store")
            self.loaded = True
            return
        runs = await self.store.runs(self.ref.runtime_id, self.ref.worker_id, RUNS_SHOWN)
        start = max(0, record.transcript_len - PAGE)
        page = await self.store.transcript(self.ref, start, PAGE)
        self._apply(record, runs)
        await self.transcript.set_entries(page.items, start + 1)
        self.loaded = True
        self.refresh_bindings()

    async def _refresh_live(self) -> None:
        record = await self.store.worker(self.ref.runtime_id, self.ref.worker_id)
        if record is None:
            return
        runs = (
            await self.store.runs(self.ref.runtime_id, self.ref.worker_id, RUNS_SHOWN)
            if self.record is None or record.last_seq != self.record.last_seq
            else self.runs
        )
        view = self.transcript
        if record.transcript_len > view.last_sequence:
            missing = record.transcript_len - view.last_sequence
            if missing > PAGE:
                start = record.transcript_len - PAGE
                page = await self.store.transcript(self.ref, start, PAGE)
                await view.set_entries(page.items, start + 1)
            else:
                page = await self.store.transcript(self.ref, view.last_sequence, PAGE)
                await view.append(page.items)
        self._apply(record, runs)
        self.refreshes += 1

    def _apply(self, record: WorkerRecord, runs: list[RunRecord]) -> None:
        if record != self.record or runs != self.runs:
            self.query_one("#wv-detail", Static).update(
                detail_text(record, runs, self.readonly_reason)
            )
        if runs != self.runs or self.record is None:
            self._fill_runs(runs)
        self.record = record
        self.runs = runs

    def _show_problem(self, message: str) -> None:
        text = Text("✗ ", style=ERROR_STYLE, end="")
        text.append_text(one_line(message))
        if self.record is not None:
            text = detail_text(self.record, self.runs, self.readonly_reason) + Text("\n") + text
        self.query_one("#wv-detail", Static).update(text)

    def _column_widths(self, runs: Sequence[RunRecord]) -> tuple[int, int]:
        """Prompt and result widths that fill the table without a horizontal scrollbar."""
        run_width = max((len(run.run_id) for run in runs), default=3)
        # 11: the widest status word with its mark; 2 cells of padding per column;
        # 2 for the border and 1 for the vertical scrollbar.
        room = max(30, self.size.width - max(run_width, 3) - 11 - 4 * 2 - 3)
        prompt = max(12, room * 2 // 5)
        return prompt, max(12, room - prompt)

    def _fill_runs(self, runs: Sequence[RunRecord]) -> None:
        table = self.query_one(RunsTable)
        cursor = table.cursor_row
        table.clear()
        prompt_width, result_width = self._column_widths(runs)
        for run in runs:
            if run.error:
                result = Text("error: ", style=ERROR_STYLE, end="")
                result.append_text(one_line(run.error, max(1, result_width - 7)))
            elif run.result_text is not None:
                result = one_line(run.result_text, result_width)
            else:
                result = Text("–", style=DIM)
            table.add_row(
                one_line(run.run_id),
                run_status(run.status),
                one_line(run.prompt, prompt_width),
                result,
                key=run.run_id,
            )
        if runs:
            table.move_cursor(row=min(cursor, len(runs) - 1))

    def on_resize(self) -> None:
        if self.loaded and self.runs:
            self._fill_runs(self.runs)

    # -- actions -----------------------------------------------------------------

    def action_back(self) -> None:
        self.dismiss(None)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "load_earlier":
            return True if self.loaded and self.transcript.earlier > 0 else None
        return True

    def action_zoom(self) -> None:
        """Give the focused pane the whole screen, or give it back (esc also does)."""
        if self.maximized is not None:
            self.minimize()
        elif self.focused is not None:
            self.maximize(self.focused)

    def action_load_earlier(self) -> None:
        if self.transcript.earlier > 0:
            self._load_earlier()

    @on(Button.Pressed, "#wv-earlier")
    def _earlier_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_load_earlier()

    @work(exclusive=True, group="worker-view-earlier", exit_on_error=False)
    async def _load_earlier(self) -> None:
        view = self.transcript
        before = view.earlier
        if before <= 0:
            return
        start = max(0, before - PAGE)
        try:
            page = await self.store.transcript(self.ref, start, before - start)
        except Exception as exc:
            self._show_problem(f"could not load earlier entries: {exc}")
            return
        await view.prepend(page.items)

    def selected_text(self) -> str | None:
        """What `y` should copy: the mouse selection, else the highlighted run, else the last entry."""
        selected = self.get_selected_text()
        if selected:
            return selected
        table = self.query_one(RunsTable)
        if table.has_focus and self.runs and 0 <= table.cursor_row < len(self.runs):
            run = self.runs[table.cursor_row]
            parts = [run.prompt]
            if run.result_text:
                parts.append(run.result_text)
            if run.error:
                parts.append(f"error: {run.error}")
            return "\n\n".join(parts)
        entries = self.transcript.entries
        return entries[-1].content if entries else None
