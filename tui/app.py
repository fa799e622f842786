"""The console app: opens the backend, runs the one console feed, hosts the screens.

The app keeps no state the event stream cannot rebuild. It opens a
`ConsoleBackend` (given by the composition root, `tui.cli`), starts one
`ConsoleFeed` on it, and hands every paced batch to the live screens (the
`MainScreen` always, the worker view when it is open). The keys that mean the
same everywhere (help, copy, quit) are the app's; the rest belong to screens.
"""

from __future__ import annotations

import asyncio
import gc
import signal
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from engine.errors import EngineError, StoreFault
from store.errors import StoreError
from tui.backend import AccessMode, ConsoleBackend, HandOver
from tui.clock import ConsoleClock
from tui.feed import ConsoleFeed, FeedBatch
from tui.operations import Operations
from tui.safe_text import clean
from tui.screens.help import HelpScreen
from tui.screens.live import LiveScreen
from tui.screens.main import MainScreen
from tui.screens.quit import QuitScreen
from tui.settings import load_settings, save_setting
from tui.shutdown import install as install_stop_signals
from tui.shutdown import signalled_status

BackendFactory = Callable[[], Awaitable[ConsoleBackend]]


PICTURES_DEFAULT = False
"""The pictures strip starts hidden until the operator asks for it once (`v`, then
remembered): its four rows come out of every pane (at 80x24 the workers table keeps two
rows), and a layout that changes under an operator who did not ask is worse than one key."""

TAKE_OVER_CHECK_S = 2.0
"""How often a console watching a runtime hosted elsewhere checks whether that host is gone."""


class AgentDeckApp(App[int]):
    """`agentdeck`: runtimes, workers, the selected worker's transcript, the event log."""

    CSS_PATH = "app.tcss"
    TITLE = "agentdeck"
    BINDINGS = [
        Binding("y", "copy", "Copy", show=False),
        Binding("question_mark,f1", "help", "Help"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        open_backend: BackendFactory,
        *,
        settings_file: Path | None = None,
        now: Callable[[], datetime] | None = None,
        tz: tzinfo | None = None,
        db_label: str | None = None,
    ) -> None:
        super().__init__()
        self._db_label = db_label
        self._open_backend = open_backend
        self._settings_file = settings_file
        self.clock = ConsoleClock(tz, now)
        self.backend: ConsoleBackend | None = None
        self.feed: ConsoleFeed | None = None
        self.main_screen: MainScreen | None = None
        self.startup_error: str | None = None
        self.stop_signal: int | None = None  # the signal that ended the console, if one did
        self.crash: BaseException | None = None  # an unexpected error that ended it
        self.hand_over_on_exit = False
        """Leaving hands the hosted runtime over to `agentdeck host` rather than stop its work."""
        self.handed_over: HandOver | None = None
        """What the hand-over did (the command line tells the operator once the screen is gone)."""
        self._asking_to_quit = False
        settings = load_settings(settings_file)
        theme = settings.get("theme")
        if isinstance(theme, str) and theme in self.available_themes:
            self.theme = theme
        pictures = settings.get("pictures")
        self.show_pictures = pictures if isinstance(pictures, bool) else PICTURES_DEFAULT
        """Whether the main screen shows the pictures strip (`v`, remembered like the theme)."""

    @property
    def main(self) -> MainScreen:
        """The main screen (once the backend is open)."""
        if self.main_screen is None:
            raise RuntimeError("the console has not started")
        return self.main_screen

    async def on_mount(self) -> None:
        # First, so a hang-up or a kill during start-up still closes what it opened.
        install_stop_signals(asyncio.get_running_loop(), self._stop_signalled)
        try:
            backend = await self._open_backend()
        except (StoreError, EngineError) as exc:
            self.startup_error = str(exc)
            self.exit(2)
            return
        self.backend = backend
        # Events live about half a second in the panes: long enough to reach the
        # oldest GC generation and die there, which made full collections (up to
        # 250 ms each) frequent under load. Freeze what start-up built and collect
        # the old generations less often.
        gc.freeze()
        gc.set_threshold(20_000, 20, 50)
        self.sub_title = self._subtitle(backend)
        backend.add_fault_listener(self._store_fault)
        for notice in backend.notices:
            self.notify(clean(notice), severity="warning", timeout=8, markup=False)
        # Subscribed before the panes read their first pages: what commits in
        # between reaches them through the feed, and each drops what it has.
        after = await backend.last_position()
        self.feed = ConsoleFeed(backend.subscribe, self._deliver)
        self.feed.start(after)
        self.main_screen = MainScreen(
            backend, Operations(self, backend), self.clock, pictures=self.show_pictures
        )
        await self.push_screen(self.main_screen)
        self._await_hosting(backend, len(backend.notices))

    @work(group="hosting", exit_on_error=False)
    async def _await_hosting(self, backend: ConsoleBackend, shown: int) -> None:
        """Host the runtime once the first screen is drawn (on a big log restoring it
        takes longer than that paint), then say what hosting found."""
        assert self.main_screen is not None
        await self.main_screen.first_shown()
        try:
            await backend.hosted()
        except (StoreError, EngineError) as exc:
            self.startup_error = str(exc)
            self.exit(2)
            return
        if not self.is_running:
            return
        self.sub_title = self._subtitle(backend)
        for notice in backend.notices[shown:]:
            self.notify(clean(notice), severity="warning", timeout=8, markup=False)
        if backend.hosted_runtime_id is None:
            # Hosted by another process: take it over if that host goes away.
            self.set_interval(TAKE_OVER_CHECK_S, self._take_over)

    @work(exclusive=True, group="take-over", exit_on_error=False)
    async def _take_over(self) -> None:
        backend, main = self.backend, self.main_screen
        if backend is None or main is None or backend.hosted_runtime_id is not None:
            return
        try:
            told = await backend.take_over()
        except (StoreError, EngineError) as exc:
            self._say(f"could not take over hosting: {exc}", "error")
            return
        if told is None:
            return
        self.sub_title = self._subtitle(backend)
        self._say(told, "warning", timeout=15)
        main.hosting_changed()

    def _deliver(self, batch: FeedBatch) -> None:
        if not self.is_running:
            return
        for screen in self.screen_stack:
            if isinstance(screen, LiveScreen):
                screen.apply_batch(batch)

    def _subtitle(self, backend: ConsoleBackend) -> str:
        where = self._db_label or clean(backend.label, newlines=False)
        hosted = backend.hosted_runtime_id
        rid = backend.default_runtime_id
        access = backend.access(rid)
        if hosted is not None:
            held = " — ⚠ cannot write: work on hold" if backend.fault is not None else ""
            what = f"hosting {hosted}{held}"
        elif access.mode is AccessMode.READ_ONLY:
            what = "watching (read-only)"
        elif access.mode is AccessMode.REMOTE:
            what = f"operating {rid} through {access.host or 'its host'}"
        else:
            what = f"{rid}: {access.mode.value}"
        return f"{where} — {what} — times {self.clock.zone}"

    def on_main_screen_runtimes_read(self, _message: MainScreen.RuntimesRead) -> None:
        # Who hosts the console's own runtime may have changed (a hand-over, a host gone).
        if self.backend is not None:
            self.sub_title = self._subtitle(self.backend)

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

    def _say(self, text: str, severity: Any = "information", timeout: float | None = None) -> None:
        # Engine messages can quote worker-supplied names: never parse them as markup.
        self.notify(clean(text), severity=severity, markup=False, timeout=timeout)

    # -- leaving -------------------------------------------------------------------

    def _stop_signalled(self, signum: int) -> None:
        """SIGHUP, SIGTERM or SIGINT: leave without asking (no one may be there).

        SIGTERM and SIGINT are an order to stop: they end the way "stop" does.
        A hang-up is not: the terminal went away (the SSH connection dropped,
        tmux killed the session), so work running or queued here is handed
        over to a background `agentdeck host`, as "keep running" does.
        """
        if self.stop_signal is None:
            self.stop_signal = signum
            if signum == signal.SIGHUP and self._has_work():
                self.hand_over_on_exit = True
            self.exit(signalled_status(signum))

    def _has_work(self) -> bool:
        if self.backend is None or self.backend.hosted_runtime_id is None:
            return False
        running, queued = self.backend.work_in_progress()
        return bool(running or queued)

    async def action_quit(self) -> None:
        """Quit; first ask what becomes of the work this console hosts, if it hosts any."""
        self._ask_to_quit()

    @work(group="quit", exclusive=True)
    async def _ask_to_quit(self) -> None:
        if self._asking_to_quit:
            return  # the question is on screen already
        backend = self.backend
        running, queued = backend.work_in_progress() if backend is not None else ([], 0)
        hosted = backend.hosted_runtime_id if backend is not None else None
        if hosted is not None and (running or queued):
            self._asking_to_quit = True
            try:
                choice = await self.push_screen_wait(QuitScreen(hosted, running, queued))
            finally:
                self._asking_to_quit = False
            if choice is None:
                return
            self.hand_over_on_exit = choice == "keep"
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
        if self.feed is not None:
            await self.feed.close()
        if self.backend is not None:
            try:
                if self.hand_over_on_exit:
                    self.handed_over = await self.backend.hand_over()
            finally:
                await self.backend.close()

    def watch_theme(self, theme: str) -> None:
        save_setting(self._settings_file, "theme", theme)

    def on_main_screen_pictures_toggled(self, message: MainScreen.PicturesToggled) -> None:
        self.show_pictures = message.shown
        save_setting(self._settings_file, "pictures", message.shown)

    # -- keys everywhere ------------------------------------------------------------

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_copy(self) -> None:
        screen = self.screen
        text = screen.selected_text() if isinstance(screen, LiveScreen) else None
        if not text:
            self._say("nothing selected to copy", "warning")
            return
        # Worker text leaves the program here: nothing that hides or reorders text
        # (bidi overrides, zero-width characters) or drives a terminal goes with it.
        text = clean(text)
        self.copy_to_clipboard(text)
        self._say(f"copied {len(text)} characters (OSC 52)")

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if isinstance(screen, LiveScreen):
            yield from screen.commands()
        yield SystemCommand("Copy", "Copy the selected text (y)", self.action_copy)
        yield SystemCommand("Help", "Every key (?)", self.action_help)

