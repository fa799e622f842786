"""The console feed: one subscription, one bounded buffer, one pacer, batches to the panes.

Every live fact on screen comes through here. A task pulls events from the
backend's subscription into a bounded `LiveBuffer`; a pacer hands what has
gathered to `deliver` as one `FeedBatch`, at once after a quiet spell (a lone
event is on screen immediately) and at most every `interval` while busy, so a
burst of ten thousand events costs one repaint, not ten thousand (one write or
message per event falls behind at 10k events/s; a bounded queue drained every
50-100 ms keeps pace).

Memory is bounded twice: the subscription's queue (past it the store says
`Lag`) and the buffer (past it the oldest are dropped). Either way the batch
says `reload`: the receiver re-reads what it shows from the store, which still
has everything.

Pure asyncio, no Textual: the app owns the receiver, this owns the policy.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from store.models import Event, Lag
from tui.backend import LiveEvents
from tui.live_buffer import LiveBuffer

FRAME_S = 0.08
"""At most one batch per this many seconds while events stream (12.5 Hz)."""
CAPACITY = 10_000
"""Events held between two batches; past this the oldest go and the batch says reload."""
PULL = 5_000
"""Events taken from the subscription at a time."""


@dataclass(frozen=True)
class FeedBatch:
    """What one frame brings: new events in position order, or a hole (`reload`)."""

    events: list[Event] = field(default_factory=list)
    reload: bool = False
    """Some events were lost on the way: re-read from the store what is shown."""
    problem: str | None = None
    """Live updates stopped, and why (the store could not be read)."""


class ConsoleFeed:
    """Subscribes once and delivers paced batches to `deliver` (on the event loop)."""

    def __init__(
        self,
        subscribe: Callable[[int], LiveEvents],
        deliver: Callable[[FeedBatch], None],
        *,
        interval: float = FRAME_S,
        capacity: int = CAPACITY,
    ) -> None:
        self._subscribe = subscribe
        self._deliver = deliver
        self._buffer: LiveBuffer[Event] = LiveBuffer(capacity, interval)
        self._lagged = False
        self._sub: LiveEvents | None = None
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self.position = 0
        """The newest position handed to the buffer."""
        self.batches = 0
        """Batches delivered so far."""

    @property
    def pending(self) -> int:
        """Events waiting for the next frame."""
        return len(self._buffer)

    @property
    def buffer(self) -> LiveBuffer[Event]:
        return self._buffer

    def start(self, after: int) -> None:
        """Follow every event after position `after`."""
        self.position = after
        self._sub = self._subscribe(after)
        self._task = asyncio.get_running_loop().create_task(
            self._pull(self._sub), name="agentdeck-console-feed"
        )

    async def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._sub is not None:
            self._sub.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _pull(self, sub: LiveEvents) -> None:
        try:
            while True:
                items = await sub.next_batch(PULL)
                events: list[Event] = []
                for item in items:
                    if isinstance(item, Lag):
                        self._lagged = True
                    else:
                        events.append(item)
                if events:
                    self.position = events[-1].position
                    self._buffer.push(events)
                if events or self._lagged:
                    self._schedule()
        except StopAsyncIteration:
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the store went away: say so, never crash the console
            if not self._closed:
                self._deliver(FeedBatch(problem=f"live updates stopped: {exc}"))

    def _schedule(self) -> None:
        if self._timer is not None or self._closed:
            return
        delay = self._buffer.delay()
        self._timer = asyncio.get_running_loop().call_later(delay, self._frame)

    def _frame(self) -> None:
        self._timer = None
        if self._closed:
            return
        drained = self._buffer.drain()
        reload = self._lagged or drained.dropped > 0
        self._lagged = False
        if drained.items or reload:
            self.batches += 1
            self._deliver(FeedBatch(drained.items, reload))
