"""`PastScreen`: the whole console as it was at a past position, read-only.

`T` on the main screen (or `agentdeck --at`) opens it. It is the main
screen's panes (runtimes, workers, the selected worker's transcript, the
event log; the worker view with its runs on `enter`) over a `PastBackend`
(tui.past_backend): the store folded up to one position (store.past). It
takes no live feed, changes nothing (the keys that would are refused with
one line), and says everywhere that it is the past: a banner under the
header with the position and its time, and borders in the warning colour.

Keys move it: `[`/`]` one event, `{`/`}` to the previous/next event that
starts or ends a run, `<`/`>` one minute, `T` to a position or a time typed
in a small input; `esc` goes back to live. Each move is one store call in a
worker; the panes are read again once the moves typed ahead are done, so
holding a key never queues a redraw per step.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widget import Widget
from textual.widgets import Header, Input, Static
from textual.worker import WorkerCancelled, WorkerFailed, WorkerState

from store.interface import EventLog
from store.past import PastView, Step
from tui.app import AgentDeckApp, BackendFactory
from tui.backend import RuntimeRow
from tui.clock import ConsoleClock
from tui.feed import FeedBatch
from tui.operations import Operations
from tui.past_backend import PAST_READ_ONLY, PastBackend, past_log
from tui.past_moment import MomentError, find_moment, parse_moment
from tui.safe_text import one_line
from tui.screens.main import MainScreen
from tui.screens.worker import WorkerScreen

GROUP = "time-travel"
"""The worker group that opens the past (one at a time per main screen)."""

UNIT_WORDS = {Step.EVENT: "event", Step.RUN: "run start or end", Step.MINUTE: "minute"}

SAY_OPENING_AFTER_S = 0.3
"""An open that takes longer than this says so (a big log's fold, a slow server)."""

GoTo = Callable[[str], Awaitable[str | None]]
"""`go(text)`: moves there; returns why it could not, or None once it did."""


# -- opening -------------------------------------------------------------------------


def travel(main: MainScreen, position: int | None = None) -> None:
    """Open the past over `main` at `position` (None: the event selected in its event log,
    else the newest). Runs in a worker: the screen keeps drawing while the fold is read."""
    for worker in main.app.workers:
        if worker.node is main and worker.group == GROUP and worker.state in (
            WorkerState.PENDING,
            WorkerState.RUNNING,
        ):
            return  # already opening
    main.run_worker(_open(main, position), group=GROUP, exit_on_error=False)


async def _open(main: MainScreen, position: int | None) -> None:
    log = past_log(main.backend)
    if log is None:
        main.operations.say("this console has no log of its own: it cannot show the past", "error")
        return
    try:
        if position is None:
            selected = main.event_log.selected_event
            position = selected.position if selected is not None else await log.last_position()
        opening = asyncio.ensure_future(log.open_past(position))
        try:
            done, _ = await asyncio.wait({opening}, timeout=SAY_OPENING_AFTER_S)
            if not done:
                main.operations.say(f"opening the past at position {position:,}…", timeout=3)
            view = await asyncio.shield(opening)
        except asyncio.CancelledError:
            # The console is leaving: the view, if it opens, is closed rather than leaked.
            opening.add_done_callback(_close_opened)
            raise
    except Exception as exc:  # whatever the store raised, the live console carries on
        main.operations.say(f"cannot open the past: {exc}", "error")
        return
    past = PastBackend(view, main.backend)
    if not main.is_attached or main.app.screen is not main:
        await past.close()  # the operator moved on (quit, another screen) while it opened
        return
    screen = PastScreen(
        past,
        Operations(main.app, past),
        main.clock,
        log,
        runtime_id=main.selected_runtime,
        worker_id=main.workers_table.selected_worker_id,
        filter_text=main.event_log.filter_text,
    )
    await main.app.push_screen(screen)


_CLOSING: set[asyncio.Future[None]] = set()
"""Views opened for a console that left meanwhile, being closed (held so they finish)."""


def _close_opened(opening: asyncio.Future[PastView]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        closing = asyncio.ensure_future(opening.result().close())
        _CLOSING.add(closing)
        closing.add_done_callback(_CLOSING.discard)


# -- the screen ----------------------------------------------------------------------


def banner_text(past: PastBackend, clock: ConsoleClock, newest: int) -> Text:
    """`◆ PAST  position 12 of 40 · 2026-11-30 03:12:07 UTC · esc: back to live` (the header
    says read-only: this line must fit 80 columns)."""
    out = Text(end="")
    out.append(" ◆ PAST ", style="bold reverse")
    out.append("  ")
    out.append(f"position {past.position:,} of {newest:,}", style="bold")
    at = past.at
    out.append(" · ")
    if at is None:
        out.append("before the first event")
    else:
        out.append(f"{clock.date_time(at)} {clock.local(at).tzname() or ''}".rstrip(), style="bold")
    out.append(" · esc: back to live")
    return out


class PastScreen(MainScreen, inherit_bindings=False):
    """The main screen as it was at `past.position`: no live feed, nothing changes."""

    CSS_PATH = "past.tcss"

    # Only these keys (inherit_bindings=False): the main screen's operation keys are
    # refused below, and keys added to the live screen later (the pictures strip's `v`)
    # do not leak into the past.
    BINDINGS: ClassVar[list[BindingType]] = [
        *Screen.BINDINGS,
        Binding("escape", "live", "Live"),
        Binding("left_square_bracket", "step('event', -1)", "Event", key_display="[ ]"),
        Binding("right_square_bracket", "step('event', 1)", "Event", show=False),
        Binding("left_curly_bracket", "step('run', -1)", "Run", key_display="{ }"),
        Binding("right_curly_bracket", "step('run', 1)", "Run", show=False),
        Binding("less_than_sign", "step('minute', -1)", "Minute", key_display="< >"),
        Binding("greater_than_sign", "step('minute', 1)", "Minute", show=False),
        Binding("T", "go_to", "Go to"),
        Binding("slash", "filter", "Filter"),
        Binding("d", "diagnostics", "Diagnostics"),
        Binding("E", "export", "Export", show=False),
        Binding("enter", "open_worker", "Open", show=False),
        Binding("n,i,s,c,x", "refuse", "Read-only", show=False),
    ]

    def __init__(
        self,
        past: PastBackend,
        operations: Operations,
        clock: ConsoleClock,
        log: EventLog,
        *,
        runtime_id: str | None = None,
        worker_id: str | None = None,
        filter_text: str = "",
    ) -> None:
        self.past = past
        self.store_log = log
        self._want_worker = worker_id
        self._filter_text = filter_text
        self._moves = asyncio.Lock()
        self._queued = 0
        self._newest = past.view.newest
        self._closed = False
        self.banner = Static(id="past-banner")
        self.redraws = 0
        """Times the panes were read again for a new position (tests wait for it)."""
        self.shown_position: int | None = None
        """The position the runtimes and workers panes show (None until first drawn)."""
        super().__init__(past, operations, clock)
        self.selected_runtime = runtime_id or past.default_runtime_id

    # -- layout ------------------------------------------------------------------

    def under_header(self) -> Widget:
        """The main screen's layout with the banner saying it is the past, no strip."""
        return self.banner

    @on(events.Mount)
    def _mounted(self, event: events.Mount) -> None:
        # The live screen's own mount reads the live way and polls hosts: not here.
        event.prevent_default()
        Screen._on_mount(self, event)  # what the default handling would still have done
        self.runtimes_pane.border_title = "Runtimes (then)"
        self.workers_table.border_title = "Workers"
        self.transcript.border_title = "Transcript"
        self._show_banner()
        if self._filter_text:
            self.filter_bar.set_active(self._filter_text)
            self.event_log.set_filter(self._filter_text)
        self._redraw()
        self.workers_table.focus()

    def _show_banner(self) -> None:
        self.banner.update(banner_text(self.past, self.clock, max(self._newest, self.past.position)))
        self.sub_title = f"◆ PAST at position {self.past.position:,} — read-only"

    # -- no live feed ---------------------------------------------------------------

    def apply_batch(self, batch: FeedBatch) -> None:
        # The past does not change; only where live is (the banner's "of N") moves on.
        if batch.events:
            self._newest = max(self._newest, batch.events[-1].position)
            self._show_banner()

    def _poll_hosts(self) -> None:
        return None

    # -- moving ------------------------------------------------------------------------

    def action_step(self, unit: str, direction: int) -> None:
        self._queued += 1
        self._step(Step(unit), direction)

    @work(group="past-move", exit_on_error=False)
    async def _step(self, unit: Step, direction: int) -> None:
        async with self._moves:
            try:
                moved = await self.past.step(unit, direction)
            except Exception as exc:  # the store failed: say so and stay where the view is
                self._queued = 0
                self.operations.say(f"cannot move in the past: {exc}", "error")
                return
            self._queued -= 1
            if not moved:
                where = "earlier" if direction < 0 else "later"
                self.operations.say(f"no {where} {UNIT_WORDS[unit]} to go to", "warning", 3)
            if self._queued <= 0:
                self._queued = 0
                await self._read_panes()

    async def go_to(self, text: str) -> str | None:
        """Move to what `text` names (a position or a time); why not, or None once there."""
        try:
            moment = parse_moment(text, tz=self.clock.tz, now=self.clock.now())
            position = await find_moment(self.store_log, moment)
            async with self._moves:
                await self.past.move_to(position)
                await self._read_panes()
        except MomentError as exc:
            return str(exc)
        except Exception as exc:  # the store failed: the dialog says so, the view stays
            return f"cannot move in the past: {exc}"
        return None

    def action_go_to(self) -> None:
        self.app.push_screen(GoToScreen(self.go_to, self.past.position))

    # -- reading the panes at the view's position --------------------------------------

    @work(group="past-move", exit_on_error=False)
    async def _redraw(self) -> None:
        async with self._moves:
            await self._read_panes()

    async def _read_panes(self) -> None:
        try:
            rows = await self.past.runtimes()
            rid = self.selected_runtime
            records = await self.past.workers(rid) if rid is not None else []
        except Exception as exc:
            self.operations.say(f"cannot read the past: {exc}", "error")
            return
        self._show_runtimes(rows)
        if rid is not None:
            self._show_workers(rid, records)
        loading = self.event_log.reload()
        self._show_banner()
        with contextlib.suppress(WorkerCancelled, WorkerFailed):
            await loading.wait()  # so `shown_position` means every pane has read it
        self.shown_position = self.past.position
        self.redraws += 1

    def _show_runtimes(self, rows: list[RuntimeRow]) -> None:
        pane = self.runtimes_pane
        there = {row.record.runtime_id for row in rows}
        for rid in [r for r in pane._rows if r not in there]:
            # A runtime that had not started yet: the pane only ever adds rows live.
            pane.remove_row(rid)
            del pane._rows[rid]
        first = pane.row_count == 0
        pane.update(rows, self.clock.now())
        if first and self.selected_runtime is not None:
            pane.select_runtime(self.selected_runtime)

    def _show_workers(self, runtime_id: str, records: list[Any]) -> None:
        table = self.workers_table
        want = table.selected_worker_id or self._want_worker
        self._want_worker = None
        ids = [r.worker_id for r in records]
        self.workers_table.border_title = f"Workers — {runtime_id}"
        if not records:
            table.show(runtime_id, [])
            self.transcript.border_title = "Transcript"
            self.transcript.clear_view("no workers at this position")
            return
        if table.runtime_id == runtime_id and table.complete and [
            str(key.value) for key in table.rows
        ] == ids:
            table.update(records)  # the same workers: cells change in place, the cursor stays
        else:
            table.show(runtime_id, records)  # workers came or went: rows in their order then
            if want is not None and want in ids:
                table.select_worker(want)
        # The shown worker's transcript as it was (a change of worker reloads it anyway).
        self.transcript.reload()

    def _refresh_runtimes(self) -> None:  # type: ignore[override]
        self._redraw()

    def _show_runtime(self, runtime_id: str) -> None:  # type: ignore[override]
        self._redraw()

    def hosting_changed(self) -> None:
        return None

    # -- leaving, refusing --------------------------------------------------------------

    def action_live(self) -> None:
        self.dismiss(None)

    def action_refuse(self) -> None:
        self.operations.say(PAST_READ_ONLY, "warning")

    def action_open_worker(self) -> None:
        ref = self.selected_ref
        if ref is not None:
            self.app.push_screen(PastWorkerScreen(self.past, ref, self.clock))

    async def on_unmount(self) -> None:
        if not self._closed:
            self._closed = True
            await self.past.close()

    def commands(self) -> Iterable[SystemCommand]:
        for title, help_text, action in (
            ("Back to live", "Leave the past (esc)", self.action_live),
            ("Go to a position or time", "Move the past there (T)", self.action_go_to),
            ("Previous event", "One event back ([)", lambda: self.action_step("event", -1)),
            ("Next event", "One event on (])", lambda: self.action_step("event", 1)),
            ("Previous run start/end", "Back to a run starting or ending ({)",
             lambda: self.action_step("run", -1)),
            ("Next run start/end", "On to a run starting or ending (})",
             lambda: self.action_step("run", 1)),
            ("Minute back", "One minute back (<)", lambda: self.action_step("minute", -1)),
            ("Minute on", "One minute on (>)", lambda: self.action_step("minute", 1)),
            ("Filter events", "Edit the event filter (/)", self.action_filter),
            ("Open worker", "The selected worker as it was (enter)", self.action_open_worker),
            ("Diagnostics", "Diagnostics of the runtime then (d)", self.action_diagnostics),
            ("Export events", "Export the events up to here (E)", self.action_export),
        ):
            yield SystemCommand(title, help_text, action)


class PastWorkerScreen(WorkerScreen):
    """The worker view as it was: detail, runs and transcript at the past's position."""

    CSS_PATH: ClassVar[list[str]] = ["screens.tcss", "past.tcss"]  # type: ignore[assignment]

    def __init__(self, past: PastBackend, ref: Any, clock: ConsoleClock) -> None:
        super().__init__(past, ref, clock, operations=None)
        self.past = past
        self.add_class("past")  # past.tcss: its borders beat the worker view's own

    def on_mount(self) -> None:
        banner = Static(banner_text(self.past, self.clock, self.past.view.newest), id="past-banner")
        self.mount(banner, after=self.query_one(Header))
        # After the worker view's own mount, which names the runtime in the sub-title.
        self.call_after_refresh(self._mark_past)

    def _mark_past(self) -> None:
        self.title = f"Worker {self.ref.worker_id} — the past"
        self.sub_title = f"position {self.past.position:,} — read-only — esc: back"

    def apply_batch(self, batch: FeedBatch) -> None:
        return None  # the past does not change


# -- going to a position or a time -----------------------------------------------------


class GoToScreen(ModalScreen[None]):
    """One line: a position or a time; `enter` goes there (and closes), `esc` cancels."""

    CSS_PATH: ClassVar[list[str]] = ["screens.tcss", "past.tcss"]  # type: ignore[assignment]
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, go: GoTo, position: int) -> None:
        super().__init__()
        self._go = go
        self._position = position

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="goto"):
            yield Static("Go to a moment in the past", classes="dialog-title")
            yield Static(
                "A position (12345), a time in UTC (2026-11-30T03:12:00Z), "
                "or a time of day today (03:12 or 03:12:07, the console's zone).",
                classes="goto-hint",
            )
            yield Input(placeholder=f"now at position {self._position:,}", id="goto-input")
            yield Static(id="goto-error", classes="form-error")

    def on_mount(self) -> None:
        self.query_one("#goto-error").display = False
        self.query_one(Input).focus()

    @property
    def error(self) -> str | None:
        error = self.query_one("#goto-error", Static)
        return str(error.visual) if error.display else None

    def on_input_changed(self, _event: Input.Changed) -> None:
        self.query_one("#goto-error").display = False

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit(event.value)

    @work(exclusive=True, group="goto", exit_on_error=False)
    async def _submit(self, text: str) -> None:
        problem = await self._go(text)
        if problem is None:
            self.dismiss(None)
            return
        error = self.query_one("#goto-error", Static)
        error.update(one_line(problem))
        error.display = True

    def action_cancel(self) -> None:
        self.dismiss(None)


# -- `agentdeck --at`: the console opened in the past -----------------------------------


class PastApp(AgentDeckApp):
    """The console, opened in the past at `position` (`agentdeck --at`); esc goes to live."""

    # A relative CSS_PATH is read beside the class's module: the app's is beside tui/app.py.
    CSS_PATH = str(Path(inspect.getfile(AgentDeckApp)).with_name("app.tcss"))

    def __init__(self, open_backend: BackendFactory, position: int, **kwargs: Any) -> None:
        super().__init__(open_backend, **kwargs)
        self.start_position = position

    @on(events.Mount)
    def _travel_at_start(self) -> None:
        # Runs before the app's own mount handler (which opens the backend and pushes the
        # main screen): wait for that screen to draw, then open the past over it.
        self.run_worker(self._open_when_shown(), group="travel-at-start", exit_on_error=False)

    async def _open_when_shown(self) -> None:
        while self.main_screen is None or self.screen is not self.main_screen:
            if self.startup_error is not None or self.return_code is not None:
                return
            await asyncio.sleep(0.02)
        await self.main_screen.first_shown()
        travel(self.main_screen, self.start_position)
