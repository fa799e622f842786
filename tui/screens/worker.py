"""`WorkerScreen`: one worker in full screen: detail, runs and the whole transcript, live.

The screen shows what it is given: it reads the worker through the backend
when it opens, and the console feed hands it every batch (`apply_batch`):
the transcript takes the entries of this worker from the events, and the
detail and runs are re-read when a batch touched the worker (at most once a
frame of the feed, so a burst of a thousand events costs one refresh). A hole
in the feed re-reads everything.

Beside the runs, their picture (tui.widgets.worker_picture): how long each
recent run took and how it ended, read from the store every couple of seconds
while this view is on top.

The transcript is the console's one transcript widget, wrapping every entry's
full text (made safe by `tui.safe_text`), with the same times as the main pane.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.widgets import DataTable, Footer, Header, Static

from store.catalog import transcript_entry
from store.models import RunRecord, WorkerRecord, WorkerRef
from tui.backend import ConsoleBackend
from tui.clock import ConsoleClock
from tui.feed import FeedBatch
from tui.operations import Operations
from tui.safe_text import multi_line, one_line
from tui.screens.live import LiveScreen
from tui.widgets.labels import run_status, worker_status
from tui.widgets.transcript import TranscriptView
from tui.widgets.worker_picture import RunsPicture

RUNS_SHOWN = 100

KEY_STYLE = Style(bold=True)
DIM = Style(dim=True)
ERROR_STYLE = Style(bold=True)


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
    record: WorkerRecord,
    runs: Sequence[RunRecord],
    readonly_reason: str | None,
    clock: ConsoleClock,
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
    out.append(clock.date_time(record.created_at))
    gap()
    key("last activity")
    out.append(clock.date_time(record.updated_at))
    return out


class RunsTable(DataTable[Text]):
    """A worker's runs, newest first, with vi-style keys beside the arrows."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "scroll_top", "Top", show=False),
        Binding("G", "scroll_bottom", "Bottom", show=False),
    ]


class WorkerScreen(LiveScreen):
    """One worker in full screen. i/s/c/x act on it, as on the main screen."""

    CSS_PATH = "screens.tcss"
    AUTO_FOCUS = "#wv-transcript"
    SHOW_PICTURE: ClassVar[bool] = True
    """Whether the runs have their picture beside them (a subclass with no picture to draw
    sets it False)."""
    DEFAULT_CSS = """
    WorkerScreen #wv-runs-row {
        height: auto;
    }
    WorkerScreen #wv-runs-row > #wv-runs {
        width: 1fr;
    }
    WorkerScreen #wv-runs-row > #wv-picture {
        width: 40%;
        max-width: 64;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("i", "send_input", "Input"),
        Binding("s", "stop_worker", "Stop"),
        Binding("c", "cancel_worker", "Cancel"),
        Binding("x", "cancel_run", "Cancel run"),
        Binding("left_square_bracket", "load_earlier", "Earlier"),
        Binding("z", "zoom", "Zoom"),
    ]

    def __init__(
        self,
        backend: ConsoleBackend,
        ref: WorkerRef,
        clock: ConsoleClock | None = None,
        operations: Operations | None = None,
    ) -> None:
        super().__init__()
        self.backend = backend
        self.ref = ref
        self.clock = clock or ConsoleClock()
        self.operations = operations
        self.record: WorkerRecord | None = None
        self.runs: list[RunRecord] = []
        self.loaded = False
        """True once the first read finished (tests and snapshots wait for it)."""
        self.refreshes = 0
        """Live refreshes applied so far (each one follows a batch that touched the worker)."""

    # -- layout ------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="wv-detail-box") as box:
            box.border_title = "Worker"
            yield Static(Content("loading…"), id="wv-detail")
        with Horizontal(id="wv-runs-row"):
            runs = RunsTable(id="wv-runs", cursor_type="row", zebra_stripes=True)
            runs.border_title = "Runs"
            yield runs
            if self.SHOW_PICTURE:
                picture = RunsPicture(
                    lambda now_us: self.backend.worker_picture(self.ref, now_us),
                    self.clock.now,
                    lambda: self.is_attached and self.app.screen is self,
                    id="wv-picture",
                )
                picture.border_title = "Run times"
                yield picture
        transcript = TranscriptView(self.backend, clock=self.clock, wrap=True, id="wv-transcript")
        transcript.border_title = "Transcript"
        yield transcript
        yield Footer()

    @property
    def readonly_reason(self) -> str | None:
        """Why this worker cannot be changed from here (None: it can), as of the last read."""
        return self.backend.access(self.ref.runtime_id).reason

    def on_mount(self) -> None:
        self.title = f"Worker {self.ref.worker_id}"
        access = self.backend.access(self.ref.runtime_id)
        through = f" — {access.summary}" if access.host else ""
        self.sub_title = f"runtime {self.ref.runtime_id}{through} — times {self.clock.zone}"
        table = self.query_one(RunsTable)
        table.add_column("Run", key="run")
        table.add_column("Status", key="status")
        table.add_column("Prompt", key="prompt")
        table.add_column("Result / error", key="result")
        self.transcript.show_worker(self.ref)
        self._load()

    @property
    def transcript(self) -> TranscriptView:
        return self.query_one(TranscriptView)

    # -- reading -----------------------------------------------------------------

    def apply_batch(self, batch: FeedBatch) -> None:
        if batch.reload:
            self.transcript.reload()
            self._refresh()
            return
        rid, wid = self.ref.runtime_id, self.ref.worker_id
        mine = [e for e in batch.events if e.worker_id == wid and e.runtime_id == rid]
        if not mine:
            return
        entries = [e for e in map(transcript_entry, mine) if e is not None]
        if entries:
            self.transcript.append_entries(entries)
        self._refresh()

    @work(exclusive=True, group="worker-view-load", exit_on_error=False)
    async def _load(self) -> None:
        try:
            record = await self.backend.worker(self.ref.runtime_id, self.ref.worker_id)
            if record is None:
                self._show_problem(f"worker {self.ref} is not in the store")
                return
            self._apply(record, await self.backend.runs(self.ref, RUNS_SHOWN))
            self.refresh_bindings()
        except Exception as exc:  # store closed or unreadable: say so, never crash the app
            self._show_problem(f"stopped reading the store: {exc}")
        finally:
            self.loaded = True

    @work(exclusive=True, group="worker-view-refresh", exit_on_error=False)
    async def _refresh(self) -> None:
        try:
            record = await self.backend.worker(self.ref.runtime_id, self.ref.worker_id)
            if record is None:
                return
            runs = (
                await self.backend.runs(self.ref, RUNS_SHOWN)
                if self.record is None or record.last_seq != self.record.last_seq
                else self.runs
            )
        except Exception as exc:
            self._show_problem(f"stopped reading the store: {exc}")
            return
        self._apply(record, runs)
        self.refresh_bindings()  # whether it can be changed may have changed (a host came or went)
        self.refreshes += 1

    def _apply(self, record: WorkerRecord, runs: list[RunRecord]) -> None:
        if record != self.record or runs != self.runs:
            self.query_one("#wv-detail", Static).update(
                detail_text(record, runs, self.readonly_reason, self.clock)
            )
        if runs != self.runs or self.record is None:
            self._fill_runs(runs)
        self.record = record
        self.runs = runs

    def _show_problem(self, message: str) -> None:
        text = Text("✗ ", style=ERROR_STYLE, end="")
        text.append_text(one_line(message))
        if self.record is not None:
            detail = detail_text(self.record, self.runs, self.readonly_reason, self.clock)
            text = detail + Text("\n") + text
        self.query_one("#wv-detail", Static).update(text)

    def _column_widths(self, runs: Sequence[RunRecord]) -> tuple[int, int]:
        """Prompt and result widths that fill the table without a horizontal scrollbar."""
        run_width = max((len(run.run_id) for run in runs), default=3)
        # 11: the widest status word with its mark; 2 cells of padding per column;
        # 2 for the border and 1 for the vertical scrollbar.
        beside = sum(p.outer_size.width for p in self.query(RunsPicture))
        room = max(30, self.size.width - beside - max(run_width, 3) - 11 - 4 * 2 - 3)
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
        if action in ("send_input", "stop_worker", "cancel_worker", "cancel_run"):
            return self.operations is not None and self.readonly_reason is None
        return True

    @work(group="action")
    async def action_send_input(self) -> None:
        if self.operations is not None:
            await self.operations.send_input(self.ref)

    @work(group="action")
    async def action_stop_worker(self) -> None:
        if self.operations is not None:
            await self.operations.end_worker(self.ref, "stop")

    @work(group="action")
    async def action_cancel_worker(self) -> None:
        if self.operations is not None:
            await self.operations.end_worker(self.ref, "cancel")

    @work(group="action")
    async def action_cancel_run(self) -> None:
        if self.operations is not None:
            await self.operations.cancel_run(self.ref)

    def action_zoom(self) -> None:
        """Give the focused pane the whole screen, or give it back (esc also does)."""
        if self.maximized is not None:
            self.minimize()
        elif self.focused is not None:
            self.maximize(self.focused)

    def action_load_earlier(self) -> None:
        self.transcript.load_earlier()

    def selected_text(self) -> str | None:
        """What `y` copies: the mouse selection, else the highlighted run, else the last entry."""
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

    def commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Send input", "Send input to this worker (i)", self.action_send_input)
        yield SystemCommand("Stop worker", "Stop this worker (s)", self.action_stop_worker)
        yield SystemCommand("Cancel worker", "Cancel this worker (c)", self.action_cancel_worker)
        yield SystemCommand("Cancel current run", "Cancel this worker's run (x)", self.action_cancel_run)
