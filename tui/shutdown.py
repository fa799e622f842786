"""Stop signals end a command the way `q` ends the console: cleanly, with a known status.

SIGHUP (the SSH connection dropped, `tmux kill-session`), SIGTERM (a supervisor,
`kill`) and SIGINT stop a command like its normal end does: whatever it hosts
is closed (in-flight runs fail "host closed", their process groups are ended),
its files are closed, and it exits with 128 + the signal number (129, 143,
130), the shell's convention, so a script can tell a stop from a failure.
Ctrl-C is the documented way to end `events --follow` and `demo`: for those,
SIGINT is a normal end (exit 0); for `agentdeck host`, a service, so are SIGINT
and SIGTERM.

No Textual here: the headless commands use it too.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine
from typing import Any

STOP_SIGNALS = (signal.SIGHUP, signal.SIGINT, signal.SIGTERM)


def signalled_status(signum: int) -> int:
    """The exit status of a command stopped by `signum` (128 + its number)."""
    return 128 + signum


class Stop:
    """Set by the first stop signal; remembers which one it was."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    async def wait(self) -> None:
        await self.event.wait()

    def request(self, signum: int) -> None:
        if self.signum is None:
            self.signum = signum
        self.event.set()


def install(loop: asyncio.AbstractEventLoop, on_signal: Callable[[int], None]) -> Callable[[], None]:
    """Route the stop signals to `on_signal(signum)` in `loop`; returns the undo."""
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)

    def remove() -> None:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)

    return remove


Main = Callable[[Stop], Coroutine[Any, Any, int]]


def run_command(
    main: Main, *, graceful: bool = False, interrupt_ends: bool = False, terminate_ends: bool = False
) -> int:
    """Run `main(stop)` to its end or to a stop signal; its exit status.

    With `graceful`, a signal only sets `stop` and `main` winds down by itself
    (the demo prints its summary); otherwise `main` is cancelled, and its
    `finally` blocks close what it opened. `interrupt_ends`: SIGINT is this
    command's normal end (exit 0 rather than 130); `terminate_ends`: so is
    SIGTERM (a service manager's stop; exit 0 rather than 143).
    """

    async def runner() -> int:
        stop = Stop()
        task = asyncio.create_task(main(stop))

        def on_signal(signum: int) -> None:
            first = not stop.requested
            stop.request(signum)
            if first and not graceful:
                task.cancel()

        remove = install(asyncio.get_running_loop(), on_signal)
        try:
            try:
                code = await task
            except asyncio.CancelledError:
                if not stop.requested:
                    raise
                code = 0
        finally:
            remove()
        normal = (interrupt_ends and stop.signum == signal.SIGINT) or (
            terminate_ends and stop.signum == signal.SIGTERM
        )
        if stop.signum is None or normal:
            return code
        return code or signalled_status(stop.signum)

    return asyncio.run(runner())
