"""The console: one screen of live panes, keys to act, everything read from the store.

The app keeps no state the event stream cannot rebuild. One subscription
feeds a bounded buffer that is drained into the panes a few times a second
(at once after a quiet spell): runtimes and workers are re-read from the
projections for what a batch touched and their cells updated in place;
transcript entries come straight from the events. While a modal or another
screen covers the main one, batches only mark what is stale, and the panes
catch up when the main screen is back.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Header

from engine.errors import EngineError, StoreFault
from engine.results import InputAck
from engine.validation import Refusal, validate_worker_request, worker_request_refusal
from store.errors import StoreError
from store.feed import Subscription
from store.models import (
    Event,
    Lag,
    Role,
    TranscriptEntry,
    WorkerRecord,
    WorkerRef,
    WorkerSpec,
    WorkerStatus,
)
from tui.backend import Backend
from tui.live_buffer import LiveBuffer
from tui.safe_text import clean
from tui.screens.confirm import ConfirmScreen
from tui.screens.create_worker import CreateWorkerScreen
from tui.screens.diagnostics import DiagnosticsScreen
from tui.screens.export import ExportScreen
from tui.screens.help import HelpScreen
from tui.screens.send_input import SendInputScreen
from tui.screens.worker import WorkerScreen
from tui.settings import load_settings, save_setting
from tui.shutdown import install as install_stop_signals
from tui.shutdown import signalled_status
from tui.widgets.event_log import EventLog
from tui.widgets.filter_bar import PRESETS, FilterBar
from tui.widgets.runtimes import RuntimesPane
from tui.widgets.transcript import TranscriptView
from tui.widgets.workers import WorkersTable

BackendFactory = Callable[[], Awaitable[Backend]]
TRANSCRIPT_KINDS = frozenset({"worker.input.accepted", "worker.output"})
_MAIN_SCREEN_ONLY = frozenset({"filter", "toggle_follow", "toggle_pause", "export"})
BULK_RELOAD = 64
WORKERS_REFRESH_S = 0.5  # past this many touched workers, one query for all beats one each


class AgentDeckApp(App[int]):
    """`agentdeck`: runtimes, workers, the selected worker's transcript, the event log."""

    CSS_PATH = "app.tcss"
    TITLE = "agentdeck"
    BINDINGS = [
        Binding("n", "new_worker", "New"),
        Binding("i", "send_input", "Input"),
        Binding("s", "stop_worker", "Stop"),
        Binding("c", "cancel_worker", "Cancel"),
        Binding("x", "cancel_run", "Cancel run"),
        Binding("slash", "filter", "Filter"),
        Binding("f", "toggle_follow", "Follow"),
        Binding("p", "toggle_pause", "Pause"),
        Binding("d", "diagnostics", "Diagnostics"),
        Binding("y", "copy", "Copy", show=False),
        Binding("E", "export", "Export", show=False),
        Binding("question_mark,f1", "help", "Help"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        open_backend: BackendFactory,
        *,
        settings_file: Path | None = None,
        now: Callable[[], datetime] | None = None,
        db_label: str | None = None,
    ) -> None:
        super().__init__()
        self._db_label = db_label
        self._open_backend = open_backend
        self._settings_file = settings_file
        self._now = now or (lambda: datetime.now(UTC))
        self.backend: Backend | None = None
        self.startup_error: str | None = None
        self.stop_signal: int | None = None  # the signal that ended the console, if one did
        self.crash: BaseException | None = None  # an unexpected error that ended it
        self._asking_to_quit = False
        self._sub: Subscription | None = None
        self._buffer: LiveBuffer[Event] = LiveBuffer()
        self._drain_timer: Any = None
        self._stale_workers: set[tuple[str, str]] = set()
        self._stale_runtimes = False
        self._last_workers_refresh = 0.0
        self._workers_timer_set = False
        self.selected_runtime: str | None = None
        self._panes: dict[str, Widget] = {}
        theme = load_settings(settings_file).get("theme")
        if isinstance(theme, str) and theme in self.available_themes:
            self.theme = theme

    # -- layout ---------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        with Horizontal(id="top"):
            yield RuntimesPane(id="runtimes")
            yield WorkersTable(id="workers")
        yield TranscriptView(id="transcript")
        with Vertical(id="log"):
            yield FilterBar(id="filter")
            yield EventLog(id="events")
        yield Footer()

    # The panes live on the default screen; `App.query_one` searches the *active*
    # screen, which is a dialog or the worker view half the time, so keep them.
    @property
    def workers_table(self) -> WorkersTable:
        return self._panes["workers"]  # type: ignore[return-value]

    @property
    def runtimes_pane(self) -> RuntimesPane:
        return self._panes["runtimes"]  # type: ignore[return-value]

    @property
    def transcript(self) -> TranscriptView:
        return self._panes["transcript"]  # type: ignore[return-value]

    @property
    def event_log(self) -> EventLog:
        return self._panes["events"]  # type: ignore[return-value]

    @property
    def filter_bar(self) -> FilterBar:
        return self._panes["filter"]  # type: ignore[return-value]

    async def on_mount(self) -> None:
        # First, so a hang-up or a kill during start-up still closes what it opened.
        install_stop_signals(asyncio.get_running_loop(), self._stop_signalled)
        for pane_id in ("runtimes", "workers", "transcript", "events", "filter"):
            self._panes[pane_id] = self.query_one(f"#{pane_id}")
        self.runtimes_pane.border_title = "Runtimes"
        self.workers_table.border_title = "Workers"
        self.transcript.border_title = "Transcript"
        try:
            self.backend = await self._open_backend()
        except (StoreError, EngineError) as exc:
            self.startup_error = str(exc)
            self.exit(2)
            return
        backend = self.backend
        # Events live about half a second in the panes: long enough to reach the
        # oldest GC generation and die there, which made full collections (up to
        # 250 ms each) frequent under load. Freeze what start-up built and collect
        # the old generations less often.
        gc.freeze()
        gc.set_threshold(20_000, 20, 50)
        self.sub_title = self._subtitle(backend)
        if backend.runtime is not None:
            backend.runtime.add_fault_listener(self._store_fault)
        for notice in backend.notices:
            self.notify(clean(notice), severity="warning", timeout=8, markup=False)
        self.selected_runtime = backend.runtime_id
        self.event_log.attach(backend.store)
        self._sub = backend.store.subscribe(backend.store.feed.last_position)
        self._consume(self._sub)
        self._refresh_runtimes()
        self._show_runtime(backend.runtime_id)
        self.set_interval(2.0, self._refresh_runtimes)  # host heartbeats are not events
        self.workers_table.focus()

    def _subtitle(self, backend: Backend) -> str:
        where = self._db_label or clean(str(backend.db_path), newlines=False)
        runtime = backend.runtime
        if runtime is not None:
            held = " — ⚠ cannot write: work on hold" if runtime.fault is not None else ""
            return f"{where} — hosting {runtime.runtime_id}{held}"
        return f"{where} — watching (read-only)"

    def _store_fault(self, fault: StoreFault | None) -> None:
        """The hosted runtime's store stopped (or resumed) taking writes: say so, and keep saying."""
        if self.backend is None or not self.is_running:
            return
        self.sub_title = self._subtitle(self.backend)
        if fault is not None:
            self._say(
                f"cannot write to the database: {fault.reason}. Work is on hold and nothing "
                "can be changed; agentdeck carries on by itself once it can write.",
                "error",
                timeout=60,
            )
        else:
            self.clear_notifications()  # the "cannot write" notice is no longer true
            self._say(
                "the database takes writes again; runs that lost events were failed "
                "(d shows what happened)",
                "warning",
            )

    # -- leaving -------------------------------------------------------------------

    def _stop_signalled(self, signum: int) -> None:
        """SIGHUP, SIGTERM or SIGINT: leave as `q` does, without asking (no one may be there)."""
        if self.stop_signal is None:
            self.stop_signal = signum
            self.exit(signalled_status(signum))

    @work(group="quit", exclusive=True)
    async def action_quit(self) -> None:
        """Quit; first ask if this console hosts runs that quitting would fail."""
        if self._asking_to_quit:
            return  # the question is on screen already
        runtime = self.backend.runtime if self.backend is not None else None
        running, queued = runtime.work_in_progress() if runtime is not None else ([], 0)
        if runtime is not None and running:
            self._asking_to_quit = True
            try:
                leave = await self.push_screen_wait(
                    ConfirmScreen(*_quit_question(runtime.runtime_id, running, queued))
                )
            finally:
                self._asking_to_quit = False
            if not leave:
                return
        self.exit(0)

    def _handle_exception(self, error: Exception) -> None:
        # Remembered for the command line, which prints one line and saves the
        # traceback to a file (tui.crash_log); Pilot tests still see it raised.
        self.crash = error
        super()._handle_exception(error)

    def _fatal_error(self) -> None:
        # Textual would print a traceback (with local variables, which can hold
        # worker text) on the operator's terminal after exiting: not here.
        self.bell()
        self._close_messages_no_wait()

    async def on_unmount(self) -> None:
        if self._sub is not None:
            self._sub.close()
        if self.backend is not None:
            await self.backend.close()

    def watch_theme(self, theme: str) -> None:
        save_setting(self._settings_file, "theme", theme)

    # -- live updates -------------------------------------------------------------

    @work(group="live-feed")
    async def _consume(self, sub: Subscription) -> None:
        while True:
            try:
                batch = await sub.next_batch(5000)
            except StopAsyncIteration:
                return
            events = [item for item in batch if isinstance(item, Event)]
            if any(isinstance(item, Lag) for item in batch):
                self._stale_runtimes = True
                self._mark_all_workers_stale()
            if events and self._buffer.push(events):
                delay = self._buffer.delay()
                self._drain_timer = self.set_timer(delay, self._drain) if delay else None
                if not delay:
                    self._drain()
            elif self._drain_timer is None and len(self._buffer):
                self._drain_timer = self.set_timer(self._buffer.delay(), self._drain)

    def _drain(self) -> None:
        self._drain_timer = None
        if not self.is_running:
            return
        drained = self._buffer.drain()
        if drained.dropped:
            self._mark_all_workers_stale()
            self._stale_runtimes = True
        self._note(drained.items)
        if self._main_visible():
            self._catch_up()

    def _main_visible(self) -> bool:
        return len(self.screen_stack) == 1

    def _mark_all_workers_stale(self) -> None:
        if self.selected_runtime is not None:
            self._stale_workers.add((self.selected_runtime, "*"))

    def _note(self, events: Iterable[Event]) -> None:
        """Record what a batch touched, and feed the transcript of the shown worker."""
        shown = self.transcript.ref
        entries: list[TranscriptEntry] = []
        for event in events:
            self._stale_runtimes = self._stale_runtimes or event.kind.startswith(
                ("runtime.", "worker.created", "worker.stopped", "worker.cancelled")
            )
            if event.worker_id is not None:
                self._stale_workers.add((event.runtime_id, event.worker_id))
            if (
                shown is not None
                and event.kind in TRANSCRIPT_KINDS
                and event.runtime_id == shown.runtime_id
                and event.worker_id == shown.worker_id
            ):
                entry = _entry_from_event(event)
                if entry is not None:
                    entries.append(entry)
        if entries:
            self.transcript.append_entries(entries)

    def _catch_up(self) -> None:
        if self._stale_runtimes:
            self._stale_runtimes = False
            self._refresh_runtimes()
        rid = self.selected_runtime
        if rid is None or not self._stale_workers:
            return
        wait = self._last_workers_refresh + WORKERS_REFRESH_S - time.monotonic()
        if wait > 0:
            # Under load every batch touches most workers: redraw the table a couple
            # of times a second, not on every drain; a timer picks up the rest.
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
        if self._main_visible():
            self._catch_up()

    def on_screen_resume(self) -> None:
        if self._main_visible():
            self._catch_up()

    @work(exclusive=True, group="refresh-runtimes")
    async def _refresh_runtimes(self) -> None:
        if self.backend is None:
            return
        store = self.backend.store
        runtimes = await store.runtimes()
        counts = {r.runtime_id: await store.workers_by_status(r.runtime_id) for r in runtimes}
        hosts = await store.hosts()
        hosted = self.backend.runtime.runtime_id if self.backend.runtime else None
        pane = self.runtimes_pane
        first = pane.row_count == 0
        pane.update(runtimes, counts, hosts, hosted, self._now())
        if first and self.selected_runtime is not None:
            pane.select_runtime(self.selected_runtime)  # start on the runtime hosted here

    @work(group="refresh-workers")
    async def _refresh_workers(self, runtime_id: str, worker_ids: set[str]) -> None:
        if self.backend is None:
            return
        store = self.backend.store
        if "*" in worker_ids or len(worker_ids) > BULK_RELOAD:
            records = await store.workers(runtime_id)
        else:
            found = [await store.worker(runtime_id, w) for w in sorted(worker_ids)]
            records = sorted(
                (r for r in found if r is not None), key=lambda r: int(r.worker_id[2:])
            )
        if runtime_id == self.selected_runtime:
            self.workers_table.update(records)

    @work(exclusive=True, group="show-runtime")
    async def _show_runtime(self, runtime_id: str) -> None:
        if self.backend is None:
            return
        records = await self.backend.store.workers(runtime_id)
        if runtime_id != self.selected_runtime:
            return  # the operator moved on while this was read
        table = self.workers_table
        table.show(runtime_id, records)
        reason = self.backend.readonly_reason(runtime_id)
        table.border_title = f"Workers — {runtime_id}" + (" (read-only)" if reason else "")
        if not records:
            self.transcript.clear_view("no workers yet: press n to create one")

    @on(RuntimesPane.RuntimeSelected)
    def _runtime_selected(self, message: RuntimesPane.RuntimeSelected) -> None:
        if message.runtime_id != self.selected_runtime:
            self.selected_runtime = message.runtime_id
            self._show_runtime(message.runtime_id)

    @on(WorkersTable.WorkerHighlighted)
    def _worker_highlighted(self, message: WorkersTable.WorkerHighlighted) -> None:
        if self.backend is None or message.worker_id is None or self.selected_runtime is None:
            return
        ref = WorkerRef(runtime_id=self.selected_runtime, worker_id=message.worker_id)
        if ref != self.transcript.ref:
            self.transcript.border_title = f"Transcript — {ref.worker_id}"
            self.transcript.show_worker(self.backend.store, ref)

    @on(DataTable.RowSelected, "#workers")
    def _worker_selected(self, _message: DataTable.RowSelected) -> None:
        self.action_open_worker()

    @on(FilterBar.Applied)
    def _filter_applied(self, message: FilterBar.Applied) -> None:
        self.event_log.set_filter(message.text)

    # -- what the keys act on -----------------------------------------------------------

    def _selected_ref(self) -> WorkerRef | None:
        if isinstance(self.screen, WorkerScreen):
            return self.screen.ref
        worker_id = self.workers_table.selected_worker_id
        if worker_id is None or self.selected_runtime is None:
            return None
        return WorkerRef(runtime_id=self.selected_runtime, worker_id=worker_id)

    def _say(self, text: str, severity: str = "information", timeout: float | None = None) -> None:
        # Engine messages can quote worker-supplied names: never parse them as markup.
        self.notify(clean(text), severity=severity, markup=False, timeout=timeout)  # type: ignore[arg-type]

    def _target(self) -> WorkerRef | None:
        """The selected worker if it may be changed from here; else say why not."""
        ref = self._selected_ref()
        if ref is None:
            self._say("select a worker first (arrows or j/k in the workers pane)", "warning")
            return None
        reason = self.backend.readonly_reason(ref.runtime_id) if self.backend else "starting up"
        if reason:
            self._say(f"not available: {reason}", "warning")
            return None
        return ref

    async def _engine_call(self, call: Awaitable[Any]) -> Any:
        try:
            return await call
        except (EngineError, StoreError) as exc:
            self._say(str(exc), "error")
            return None

    # -- actions --------------------------------------------------------------------------

    @work(group="action")
    async def action_new_worker(self) -> None:
        backend = self.backend
        if backend is None or backend.runtime is None:
            reason = backend.observer_reason if backend else "starting up"
            self._say(f"not available: {reason or 'this console hosts no runtime'}", "warning")
            return
        runtime = backend.runtime

        def validate(spec: WorkerSpec) -> str | Refusal | None:
            # The field check first, so the form can point at the field at fault;
            # the profile is only known to the full validator.
            refusal = worker_request_refusal(spec)
            if refusal is not None:
                return refusal
            try:
                validate_worker_request(spec, runtime.profiles)
            except EngineError as exc:
                return str(exc)
            return None

        created: list[WorkerRecord] = []

        async def create(spec: WorkerSpec) -> str | None:
            # Run by the form, so a refusal stays in the form with what was typed.
            try:
                created.append(await runtime.create_worker(spec))
            except (EngineError, StoreError) as exc:
                return str(exc)
            return None

        spec = await self.push_screen_wait(
            CreateWorkerScreen(runtime.profiles.names(), validate, create)
        )
        if spec is None or not created:
            return
        record = created[-1]
        self._say(f"created {record.worker_id} ({record.spec.profile})")
        if self.selected_runtime != runtime.runtime_id:
            self.runtimes_pane.select_runtime(runtime.runtime_id)
        self._refresh_workers(runtime.runtime_id, {record.worker_id})
        self.call_after_refresh(self.workers_table.select_worker, record.worker_id)

    @work(group="action")
    async def action_send_input(self) -> None:
        ref = self._target()
        if ref is None or self.backend is None or self.backend.runtime is None:
            return
        runtime = self.backend.runtime
        record = await self.backend.store.worker(ref.runtime_id, ref.worker_id)
        if record is not None and record.status is not WorkerStatus.RUNNING:
            self._say(
                f"{ref.worker_id} is {record.status.value} and takes no more input", "warning"
            )
            return
        acks: list[InputAck] = []

        async def send(role: str, content: str) -> str | None:
            # Run by the dialog: a refusal (stopped meanwhile, database locked...)
            # is shown there and the text stays; the dialog closes on success only.
            try:
                acks.append(await runtime.send_input(ref, content, role))
            except (EngineError, StoreError) as exc:
                return str(exc)
            return None

        result = await self.push_screen_wait(SendInputScreen(ref.worker_id, runtime.limits, send))
        if result is None or not acks:
            return
        ack = acks[-1]
        self._say(f"{ref.worker_id}: input #{ack.transcript_sequence} queued as run {ack.run_id}")

    @work(group="action")
    async def action_stop_worker(self) -> None:
        await self._end_worker("stop")

    @work(group="action")
    async def action_cancel_worker(self) -> None:
        await self._end_worker("cancel")

    async def _end_worker(self, verb: str) -> None:
        ref = self._target()
        if ref is None or self.backend is None or self.backend.runtime is None:
            return
        runtime = self.backend.runtime
        body = (
            "The current run finishes; queued inputs are dropped. The worker takes no more input."
            if verb == "stop"
            else "The current run and every queued input are cancelled now. The worker takes no more input."
        )
        if not await self.push_screen_wait(
            ConfirmScreen(f"{verb.capitalize()} worker {ref.worker_id}?", body, verb.capitalize())
        ):
            return
        call = runtime.stop_worker(ref) if verb == "stop" else runtime.cancel_worker(ref)
        ack = await self._engine_call(call)
        if ack is None:
            return
        if ack.changed:
            self._say(f"{ref.worker_id} {ack.status.value}")
        else:
            self._say(f"{ref.worker_id} was already {ack.status.value}; nothing changed", "warning")

    @work(group="action")
    async def action_cancel_run(self) -> None:
        ref = self._target()
        if ref is None or self.backend is None or self.backend.runtime is None:
            return
        record = await self.backend.store.worker(ref.runtime_id, ref.worker_id)
        run_id = record.current_run_id if record else None
        if run_id is None:
            self._say(f"{ref.worker_id} has no run in progress", "warning")
            return
        if not await self.push_screen_wait(
            ConfirmScreen(
                f"Cancel run {run_id}?",
                f"Only this run of {ref.worker_id} is cancelled; its queue goes on.",
                "Cancel run",
            )
        ):
            return
        done = await self._engine_call(self.backend.runtime.cancel_run(ref, run_id))
        if done:
            self._say(f"run {run_id} cancelled")
        elif done is not None:
            self._say(f"run {run_id} is no longer current; nothing was cancelled", "warning")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # The event-log keys mean nothing over the worker view or a dialog: hide them there.
        return action not in _MAIN_SCREEN_ONLY or self._main_visible()

    def action_filter(self) -> None:
        self.filter_bar.focus_input()

    def action_toggle_follow(self) -> None:
        self.event_log.action_toggle_follow()

    def action_toggle_pause(self) -> None:
        self.event_log.action_toggle_pause()

    def action_open_worker(self) -> None:
        ref = self._selected_ref()
        if ref is None or self.backend is None or isinstance(self.screen, WorkerScreen):
            return
        self.push_screen(
            WorkerScreen(self.backend.store, ref, self.backend.readonly_reason(ref.runtime_id))
        )

    def action_diagnostics(self) -> None:
        if self.backend is None or self.selected_runtime is None:
            return
        store, rid = self.backend.store, self.selected_runtime
        self.push_screen(DiagnosticsScreen(rid, lambda: store.diagnostics(rid)))

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_copy(self) -> None:
        text = self._copy_text()
        if not text:
            self._say("nothing selected to copy", "warning")
            return
        # Worker text leaves the program here: nothing that hides or reorders text
        # (bidi overrides, zero-width characters) or drives a terminal goes with it.
        text = clean(text)
        self.copy_to_clipboard(text)
        self._say(f"copied {len(text)} characters (OSC 52)")

    def _copy_text(self) -> str | None:
        focused = self.focused
        if isinstance(focused, EventLog) and focused.selected_event is not None:
            event = focused.selected_event
            return f"{event.message}\n{event.payload}" if event.payload else event.message
        if isinstance(focused, TranscriptView) and focused.entries:
            return focused.entries[-1].content
        ref = self._selected_ref()
        return f"{ref.runtime_id}/{ref.worker_id}" if ref else None

    @work(group="action")
    async def action_export(self) -> None:
        log = self.event_log
        stamp = self._now().strftime("%Y%m%d-%H%M%S")
        default = Path.cwd() / f"agentdeck-events-{stamp}.jsonl"
        choice = await self.push_screen_wait(ExportScreen(default, log.filter_text))
        if choice is None:
            return
        path, fmt = choice
        try:
            count = await log.export(path, fmt)  # type: ignore[arg-type]
        except (OSError, StoreError) as exc:
            self._say(f"export failed: {exc}", "error")
            return
        self._say(f"exported {count} events to {path}")

    def action_filter_preset(self, text: str) -> None:
        self.filter_bar.set_active(text)
        self.event_log.set_filter(text)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
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
            ("Copy", "Copy the selected text (y)", self.action_copy),
            ("Export events", "Export the filtered events to JSONL or CSV (E)", self.action_export),
            ("Help", "Every key (?)", self.action_help),
        ):
            yield SystemCommand(title, help_text, action)
        for preset in PRESETS:
            yield SystemCommand(
                f"Filter: {preset.title}",
                f"Apply the filter {preset.text!r}" if preset.text else "Show every event",
                lambda p=preset.text: self.action_filter_preset(p),
            )


def _quit_question(runtime_id: str, running: list[str], queued: int) -> tuple[str, str, str]:
    count = len(running)
    runs = f"{count} run{'s' if count != 1 else ''}"
    shown = ", ".join(running[:5]) + (f" and {count - 5} more" if count > 5 else "")
    body = (
        f"This console hosts runtime {runtime_id}: quitting fails {runs} in progress "
        f"({shown}) with \"host closed\" and ends "
        f"{'its program' if count == 1 else 'their programs'}."
    )
    if queued:
        inputs = "1 queued input stays" if queued == 1 else f"{queued} queued inputs stay"
        body += f" {inputs} queued for the next time the runtime is hosted."
    return f"Quit and fail {runs}?", body, "Quit"


def _entry_from_event(event: Event) -> TranscriptEntry | None:
    p = event.payload
    try:
        return TranscriptEntry(
            runtime_id=event.runtime_id,
            worker_id=event.worker_id or "",
            sequence=int(p["sequence"]),
            role=Role(p["role"]),
            content=str(p["content"]),
            event_id=event.event_id,
            run_id=event.run_id,
            at=event.at,
        )
    except (KeyError, ValueError, TypeError):
        return None
