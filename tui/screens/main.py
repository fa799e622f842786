"""`MainScreen`: runtimes, workers, the selected worker's transcript, the event log.

The screen owns its panes and their keys. The panes show what they are given:
the screen reads runtimes and workers through the backend for what a batch of
the console feed touched (cells updated in place, at most a couple of times a
second under load), hands the transcript the entries of the worker it shows,
and the event log every event. While another screen covers this one (a
dialog, the worker view), batches only mark what is stale, and the panes catch
up when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Header

from store.catalog import KINDS, TRANSCRIPT_KINDS, WORKER_STATUS_KINDS, transcript_entry
from store.errors import StoreError
from store.models import Event, WorkerRef
from tui.backend import AccessMode, ConsoleBackend
from tui.clock import ConsoleClock
from tui.export import ExportFormat
from tui.feed import FeedBatch
from tui.operations import Operations
from tui.screens.diagnostics import DiagnosticsScreen
from tui.screens.export import ExportScreen
from tui.screens.live import LiveScreen
from tui.screens.worker import WorkerScreen
from tui.widgets.event_log import EventLog
from tui.widgets.filter_bar import PRESETS, FilterBar
from tui.widgets.pictures import PicturesStrip
from tui.widgets.runtimes import RuntimesPane
from tui.widgets.transcript import TranscriptView
from tui.widgets.workers import WorkersTable

BULK_RELOAD = 64
"""Past this many touched workers, one query for all beats one each."""
WORKERS_REFRESH_S = 0.5
"""Under load every batch touches most workers: redraw the table this often at most."""
HOSTS_REFRESH_S = 2.0
"""Host heartbeats are not events: the runtimes pane reads them this often."""
COVERED_CAP = 5_000
"""Events kept for the event log while the screen is covered; past this it re-reads."""
FIRST_SHOWN_S = 2.0
"""Most the console waits for its first screen before it hosts its runtime."""
RUNTIME_KINDS = frozenset(k for k in KINDS if k.startswith("runtime.")) | WORKER_STATUS_KINDS
"""Kinds that change what the runtimes pane counts."""


class MainScreen(LiveScreen):
    """The console's home: every pane, live."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "new_worker", "New"),
        Binding("i", "send_input", "Input"),
        Binding("s", "stop_worker", "Stop"),
        Binding("c", "cancel_worker", "Cancel"),
        Binding("x", "cancel_run", "Cancel run"),
        Binding("slash", "filter", "Filter"),
        # Follow and pause say their state on the event log's border; the footer's
        # width goes to the keys nothing else on screen names (help lists every key).
        Binding("f", "toggle_follow", "Follow", show=False),
        Binding("p", "toggle_pause", "Pause", show=False),
        Binding("d", "diagnostics", "Diagnostics"),
        Binding("v", "toggle_pictures", "Pictures"),
        Binding("E", "export", "Export", show=False),
        Binding("T", "time_travel", "Past"),  # tui.screens.past
        # The workers table opens its row itself; from the transcript, enter opens it full screen.
        Binding("enter", "open_worker", "Open", show=False),
    ]

    def __init__(
        self,
        backend: ConsoleBackend,
        operations: Operations,
        clock: ConsoleClock,
        *,
        pictures: bool = False,
    ) -> None:
        super().__init__()
        self.backend = backend
        self.operations = operations
        self.clock = clock
        self.selected_runtime: str | None = backend.default_runtime_id
        self.runtimes_pane = RuntimesPane(id="runtimes")
        self.workers_table = WorkersTable(clock, id="workers")
        self.transcript = TranscriptView(backend, clock=clock, id="transcript")
        self.filter_bar = FilterBar(id="filter")
        self.event_log = EventLog(backend, console_clock=clock, id="events")
        # The strip reads only while someone can see it: shown (v), on top, not paused.
        self.pictures = PicturesStrip(
            backend.fleet_picture,
            clock.now,
            lambda: self.on_top and not self.event_log.paused,
            id="pictures",
        )
        self.pictures.display = pictures
        self.set_class(pictures, "-pictures")  # app.tcss: the panes make room for it
        self._stale_workers: set[tuple[str, str]] = set()
        self._stale_runtimes = False
        self._stale_transcript = False
        self._covered_events: list[Event] = []
        self._covered_lost = False
        self._last_workers_refresh = 0.0
        self._workers_timer_set = False

    # -- layout ---------------------------------------------------------------

    def under_header(self) -> Widget:
        """What sits between the header and the panes: the pictures strip here."""
        return self.pictures

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield self.under_header()
        with Horizontal(id="top"):
            yield self.runtimes_pane
            yield self.workers_table
        yield self.transcript
        with Vertical(id="log"):
            yield self.filter_bar
            yield self.event_log
        yield Footer()

    def on_mount(self) -> None:
        watching = self.backend.access(self.backend.default_runtime_id).mode is AccessMode.READ_ONLY
        self.runtimes_pane.border_title = "Runtimes (watching)" if watching else "Runtimes"
        self.workers_table.border_title = "Workers"
        self.transcript.border_title = "Transcript"
        self._refresh_runtimes()
        if self.selected_runtime is not None:
            self._show_runtime(self.selected_runtime)
        self.set_interval(HOSTS_REFRESH_S, self._poll_hosts)
        self.workers_table.focus()

    async def first_shown(self, timeout: float = FIRST_SHOWN_S) -> None:
        """Return once the panes have drawn what the store holds (or after `timeout`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not (
            self.event_log.loaded and self.workers_table.runtime_id is not None
        ):
            await asyncio.sleep(0.01)
        # One frame later: what they read is on screen.
        drawn = asyncio.Event()
        self.call_after_refresh(drawn.set)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(drawn.wait(), timeout)

    # -- live -----------------------------------------------------------------

    def apply_batch(self, batch: FeedBatch) -> None:
        if batch.problem:
            self.operations.say(batch.problem, "error")
            return
        if batch.reload:
            self._stale_runtimes = True
            self._mark_all_workers_stale()
            self._stale_transcript = True
        shown = self.transcript.ref
        for event in batch.events:
            if event.kind in RUNTIME_KINDS:
                self._stale_runtimes = True
            if event.worker_id is not None:
                self._stale_workers.add((event.runtime_id, event.worker_id))
                if (
                    shown is not None
                    and event.worker_id == shown.worker_id
                    and event.runtime_id == shown.runtime_id
                    and event.kind in TRANSCRIPT_KINDS
                ):
                    self._stale_transcript = True
        if not self.on_top:
            # Covered: only remember; the log keeps a bounded backlog, else re-reads.
            if batch.reload or len(self._covered_events) + len(batch.events) > COVERED_CAP:
                self._covered_lost = True
                self._covered_events = []
            elif not self._covered_lost:
                self._covered_events.extend(batch.events)
            return
        if batch.reload:
            self.event_log.feed_lost()
            self.transcript.reload()
            self._stale_transcript = False
        else:
            self.event_log.apply_batch(batch.events)
            if self._stale_transcript:
                self._stale_transcript = False
                entries = [e for e in map(transcript_entry, batch.events) if e is not None]
                self.transcript.append_entries(entries)
        self._catch_up()

    def on_screen_resume(self) -> None:
        if self._covered_lost:
            self.event_log.feed_lost()
        elif self._covered_events:
            self.event_log.apply_batch(self._covered_events)
        self._covered_events = []
        self._covered_lost = False
        self.pictures.poll()  # what it missed while covered, now rather than at its next tick
        if self._stale_transcript:
            self._stale_transcript = False
            self.transcript.reload()
        self._catch_up()

    @property
    def on_top(self) -> bool:
        """Whether nothing covers this screen (`is_current` is also true under a modal)."""
        return self.is_attached and self.app.screen is self

    def _mark_all_workers_stale(self) -> None:
        if self.selected_runtime is not None:
            self._stale_workers.add((self.selected_runtime, "*"))

    def _catch_up(self) -> None:
        if self._stale_runtimes:
            self._stale_runtimes = False
            self._refresh_runtimes()
        rid = self.selected_runtime
        if rid is None or not self._stale_workers:
            return
        wait = self._last_workers_refresh + WORKERS_REFRESH_S - time.monotonic()
        if wait > 0:
            if not self._workers_timer_set:
                self._workers_timer_set = True
                self.set_timer(wait, self._workers_timer)
            return
        touched = {w for (r, w) in self._stale_workers if r == rid}
        self._stale_workers = {(r, w) for (r, w) in self._stale_workers if r != rid}
        if touched:
            self._last_workers_refresh = time.monotonic()
            self._refresh_workers(rid, touched)

    def _workers_timer(self) -> None:
        self._workers_timer_set = False
        if self.on_top:
            self._catch_up()

    def hosting_changed(self) -> None:
        """This console now hosts a runtime it only watched: redraw who hosts what."""
        self._refresh_runtimes()
        if self.selected_runtime is not None:
            self._show_runtime(self.selected_runtime)

    def _poll_hosts(self) -> None:
        if self.on_top:  # nobody sees it under a dialog or the worker view
            self._refresh_runtimes()

    class RuntimesRead(Message):
        """The runtimes (and who hosts each) were read again: what this console may do
        to each may have changed (a host appeared, died, or handed over)."""

    @work(exclusive=True, group="refresh-runtimes", exit_on_error=False)
    async def _refresh_runtimes(self) -> None:
        rows = await self.backend.runtimes()
        pane = self.runtimes_pane
        first = pane.row_count == 0
        pane.update(rows, self.clock.now())
        if first and self.selected_runtime is not None:
            pane.select_runtime(self.selected_runtime)  # start on the runtime hosted here
        if self.selected_runtime is not None and self.workers_table.runtime_id == self.selected_runtime:
            self._title_workers(self.selected_runtime)
        self.post_message(self.RuntimesRead())

    def _title_workers(self, runtime_id: str) -> None:
        access = self.backend.access(runtime_id)
        self.workers_table.border_title = f"Workers — {runtime_id}" + (
            "" if access.mode is AccessMode.HOSTED else f" ({access.summary})"
        )

    @work(group="refresh-workers", exit_on_error=False)
    async def _refresh_workers(self, runtime_id: str, worker_ids: set[str]) -> None:
        if "*" in worker_ids or len(worker_ids) > BULK_RELOAD:
            records = await self.backend.workers(runtime_id)
        else:
            found = [await self.backend.worker(runtime_id, w) for w in sorted(worker_ids)]
            records = sorted(
                (r for r in found if r is not None), key=lambda r: int(r.worker_id[2:])
            )
        if runtime_id == self.selected_runtime:
            self.workers_table.update(records)

    @work(exclusive=True, group="show-runtime", exit_on_error=False)
    async def _show_runtime(self, runtime_id: str) -> None:
        records = await self.backend.workers(runtime_id)
        if runtime_id != self.selected_runtime:
            return  # the operator moved on while this was read
        table = self.workers_table
        table.show(runtime_id, records)
        self._title_workers(runtime_id)
        if not records:
            self.transcript.border_title = "Transcript"
            can = self.backend.access(runtime_id).can_operate
            self.transcript.clear_view("no workers yet" + (": press n to create one" if can else ""))

    @on(RuntimesPane.RuntimeSelected)
    def _runtime_selected(self, message: RuntimesPane.RuntimeSelected) -> None:
        if message.runtime_id != self.selected_runtime:
            self.selected_runtime = message.runtime_id
            self._show_runtime(message.runtime_id)

    @on(WorkersTable.WorkerHighlighted)
    def _worker_highlighted(self, message: WorkersTable.WorkerHighlighted) -> None:
        if message.worker_id is None or self.selected_runtime is None:
            return
        ref = WorkerRef(runtime_id=self.selected_runtime, worker_id=message.worker_id)
        if ref != self.transcript.ref:
            self.transcript.border_title = f"Transcript — {ref.worker_id}"
            self.transcript.show_worker(ref)

    @on(DataTable.RowSelected, "#workers")
    def _worker_selected(self, _message: DataTable.RowSelected) -> None:
        self.action_open_worker()

    @on(FilterBar.Applied)
    def _filter_applied(self, message: FilterBar.Applied) -> None:
        self.event_log.set_filter(message.text)

    # -- what the keys act on ---------------------------------------------------

    @property
    def selected_ref(self) -> WorkerRef | None:
        worker_id = self.workers_table.selected_worker_id
        if worker_id is None or self.selected_runtime is None:
            return None
        return WorkerRef(runtime_id=self.selected_runtime, worker_id=worker_id)

    def selected_text(self) -> str | None:
        focused = self.focused
        if isinstance(focused, EventLog) and focused.selected_event is not None:
            event = focused.selected_event
            return f"{event.message}\n{event.payload}" if event.payload else event.message
        if isinstance(focused, TranscriptView) and focused.entries:
            return focused.entries[-1].content
        ref = self.selected_ref
        return f"{ref.runtime_id}/{ref.worker_id}" if ref else None

    # -- actions --------------------------------------------------------------

    @work(group="action")
    async def action_new_worker(self) -> None:
        record = await self.operations.new_worker(self.selected_runtime)
        if record is None:
            return
        rid = record.runtime_id
        if self.selected_runtime != rid:
            self.runtimes_pane.select_runtime(rid)
            self.call_after_refresh(self.workers_table.select_worker, record.worker_id)
            return
        # The record is in hand: its row goes in now, so selecting it cannot race a re-read.
        self.workers_table.update([record])
        self.workers_table.select_worker(record.worker_id)

    @work(group="action")
    async def action_send_input(self) -> None:
        await self.operations.send_input(self.selected_ref)

    @work(group="action")
    async def action_stop_worker(self) -> None:
        await self.operations.end_worker(self.selected_ref, "stop")

    @work(group="action")
    async def action_cancel_worker(self) -> None:
        await self.operations.end_worker(self.selected_ref, "cancel")

    @work(group="action")
    async def action_cancel_run(self) -> None:
        await self.operations.cancel_run(self.selected_ref)

    def action_filter(self) -> None:
        self.filter_bar.focus_input()

    def action_toggle_follow(self) -> None:
        self.event_log.action_toggle_follow()

    def action_toggle_pause(self) -> None:
        self.event_log.action_toggle_pause()
        self.pictures.poll()  # resumed: catch up now (paused: it reads nothing)

    class PicturesToggled(Message):
        """The pictures strip was shown or hidden (`v`): the app remembers it."""

        def __init__(self, shown: bool) -> None:
            self.shown = shown
            super().__init__()

    def action_toggle_pictures(self) -> None:
        strip = self.pictures
        strip.display = not strip.display
        self.set_class(strip.display, "-pictures")
        strip.poll()
        self.post_message(self.PicturesToggled(strip.display))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "open_worker":
            return self.focused is self.transcript or self.focused is self.workers_table
        return True

    def action_open_worker(self) -> None:
        ref = self.selected_ref
        if ref is None:
            return
        self.app.push_screen(WorkerScreen(self.backend, ref, self.clock, self.operations))

    def action_diagnostics(self) -> None:
        rid = self.selected_runtime
        if rid is None:
            return
        backend = self.backend
        self.app.push_screen(DiagnosticsScreen(rid, lambda: backend.diagnostics(rid)))

    @work(group="action")
    async def action_export(self) -> None:
        log = self.event_log
        stamp = self.clock.local(self.clock.now()).strftime("%Y%m%d-%H%M%S")
        default = Path.cwd() / f"agentdeck-events-{stamp}.jsonl"
        choice = await self.app.push_screen_wait(ExportScreen(default, log.filter_text))
        if choice is None:
            return
        path, named = choice
        fmt: ExportFormat = "csv" if named == "csv" else "jsonl"
        try:
            count = await log.export(path, fmt)
        except (OSError, StoreError) as exc:
            self.operations.say(f"export failed: {exc}", "error")
            return
        self.operations.say(f"exported {count} events to {path}")

    def action_time_travel(self) -> None:
        """The whole console as it was at the selected event (tui.screens.past), read-only."""
        from tui.screens.past import travel  # it subclasses this screen

        travel(self)

    def action_filter_preset(self, text: str) -> None:
        self.filter_bar.set_active(text)
        self.event_log.set_filter(text)

    def commands(self) -> Iterable[SystemCommand]:
        for title, help_text, action in (
            ("New worker", "Create a worker (n)", self.action_new_worker),
            ("Send input", "Send input to the selected worker (i)", self.action_send_input),
            ("Stop worker", "Stop the selected worker (s)", self.action_stop_worker),
            ("Cancel worker", "Cancel the selected worker (c)", self.action_cancel_worker),
            ("Cancel current run", "Cancel the selected worker's run (x)", self.action_cancel_run),
            ("Filter events", "Edit the event filter (/)", self.action_filter),
            ("Toggle follow", "Follow new events on/off (f)", self.action_toggle_follow),
            ("Toggle pause", "Pause live updates (p)", self.action_toggle_pause),
            (
                "Open worker",
                "Full-screen view of the selected worker (enter)",
                self.action_open_worker,
            ),
            ("Diagnostics", "Diagnostics of the selected runtime (d)", self.action_diagnostics),
            ("Toggle pictures", "Show or hide the fleet's pictures (v)", self.action_toggle_pictures),
            ("Export events", "Export the filtered events to JSONL or CSV (E)", self.action_export),
            (
                "The past",
                "The whole console as it was at the selected event, read-only (T)",
                self.action_time_travel,
            ),
        ):
            yield SystemCommand(title, help_text, action)
        for preset in PRESETS:
            yield SystemCommand(
                f"Filter: {preset.title}",
                f"Apply the filter {preset.text!r}" if preset.text else "Show every event",
                lambda p=preset.text: self.action_filter_preset(p),
            )
