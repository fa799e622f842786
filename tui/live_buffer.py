"""A bounded buffer between a fast producer (the store feed) and the screen.

Producers `push` as items arrive; the consumer `drain`s everything at once and
applies it as one batch, so a burst of ten thousand events costs one repaint,
not ten thousand. Drains are paced: at most one per `interval` while busy,
and at once after a quiet spell, so a lone event is on screen immediately.

Memory is bounded: past `capacity` the oldest items are dropped and counted.
A consumer that sees `dropped > 0` knows its view has a hole and re-reads
from the store, which still has everything.

Pure Python, no Textual: the widget owns the timer, this owns the policy.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

DEFAULT_CAPACITY = 10_000
DEFAULT_INTERVAL = 0.1


@dataclass(frozen=True)
class Drained(Generic[T]):
    """What one drain took: the items, oldest first, and how many were lost before them."""

    items: list[T] = field(default_factory=list)
    dropped: int = 0

    def __bool__(self) -> bool:
        return bool(self.items) or self.dropped > 0


class LiveBuffer(Generic[T]):
    """Bounded FIFO with drop-oldest overflow and drain pacing."""

    def __init__(
        self,
        capacity: int = DEFAULT_CAPACITY,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1 (got {capacity})")
        if interval < 0:
            raise ValueError(f"interval must be 0 or more (got {interval})")
        self.capacity = capacity
        self.interval = interval
        self._clock = clock
        self._items: deque[T] = deque(maxlen=capacity)
        self._dropped = 0
        self._last_drain = float("-inf")
        self.pushed_total = 0
        self.dropped_total = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def dropped(self) -> int:
        """Items lost to overflow since the last drain."""
        return self._dropped

    def push(self, items: Iterable[T]) -> bool:
        """Add items; True when the buffer was empty before (the consumer should schedule a drain).

        Later pushes before the drain return False: one drain is already due.
        """
        was_idle = not self._items and not self._dropped
        before = len(self._items)
        new = items if isinstance(items, list) else list(items)
        count = len(new)
        self._items.extend(new)  # a deque with maxlen drops its oldest when full
        overflow = before + count - self.capacity
        if overflow > 0:
            self._dropped += overflow
            self.dropped_total += overflow
        self.pushed_total += count
        return was_idle and count > 0

    def delay(self) -> float:
        """Seconds until a drain is due: 0 after a quiet spell, else what is left of `interval`."""
        return max(0.0, self._last_drain + self.interval - self._clock())

    def drain(self) -> Drained[T]:
        """Take everything pending (and the count of what was dropped before it)."""
        self._last_drain = self._clock()
        if not self._items and not self._dropped:
            return Drained()
        out = Drained(list(self._items), self._dropped)
        self._items.clear()
        self._dropped = 0
        return out

    def clear(self) -> None:
        """Forget everything pending (the consumer is about to re-read from the store)."""
        self._items.clear()
        self._dropped = 0
