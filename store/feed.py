"""The one change feed: in-order publication, resumable subscriptions, cross-process wake-ups.

`Feed` publishes every committed event exactly once and in position order,
whether it was committed here (handed over by the writer) or by another
process (found by reading the log after a wake-up). Positions are contiguous,
so a local commit that does not start right after the last published position
means someone else committed in between: the feed reads the gap from the store
instead of publishing out of order.

A `Subscription` registers with the feed *before* it replays history, then
drops anything at or below the last position it handed out: no gap and no
duplicate at the seam. Its queue is bounded; when it overflows the subscriber
gets a `Lag` notice (never filtered out) and catches up from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from store.filters import Filter
from store.models import Event, Lag
from store.reader import Reader

REPLAY_PAGE = 1000
DEFAULT_QUEUE = 20_000
IDLE_HINT_S = 0.01

Item = Event | Lag


async def ended(task: asyncio.Task[Any]) -> None:
    """Wait for `task` (cancelled by the caller) to end, whatever it raises.

    Not `suppress(CancelledError): await task`: that would also swallow a cancel
    of the caller itself (a close given up on), which must go on up.
    """
    await asyncio.wait({task})
    if not task.cancelled():
        task.exception()  # retrieved: a failure while stopping is of no use now


class Subscription:
    """A cursor that keeps going: replay after `after`, then live, filtered."""

    def __init__(
        self,
        feed: Feed,
        reader: Reader,
        after: int,
        flt: Filter | None,
        max_queue: int,
    ) -> None:
        self._feed = feed
        self._reader = reader
        self._filter = flt if flt is not None and not flt.is_empty else None
        self._max_queue = max_queue
        self._queue: deque[Event] = deque()
        self._wake = asyncio.Event()
        self._replaying = True
        self._lagged = False
        self._dropped = 0
        self._closed = False
        self.position = after  # everything at or below has been handed out (or filtered away)

    def offer(self, events: list[Event]) -> None:
        """Called by the feed, in the loop thread, with new events in order."""
        if self._closed:
            return
        if self._lagged:
            self._dropped += len(events)
            return
        if len(self._queue) + len(events) > self._max_queue:
            self._lagged = True
            self._dropped += len(self._queue) + len(events)
            self._queue.clear()
        else:
            self._queue.extend(events)
        self._wake.set()

    async def next_batch(self, limit: int = REPLAY_PAGE) -> list[Item]:
        """Wait for at least one item, then return what is ready (at most `limit`)."""
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._lagged:
                self._lagged = False
                notice = Lag(position=self.position, dropped=self._dropped)
                self._dropped = 0
                self._replaying = True
                return [notice]
            if self._replaying:
                batch = await self._reader.read_after(self.position, limit, self._filter)
                if not batch.has_more:
                    self._replaying = False
                if batch.events:
                    self.position = batch.events[-1].position
                    return list(batch.events)
                continue
            out: list[Item] = []
            while self._queue and len(out) < limit:
                event = self._queue.popleft()
                if event.position <= self.position:
                    continue
                self.position = event.position
                if self._filter is None or self._filter.matches(event):
                    out.append(event)
            if out:
                return out
            self._wake.clear()
            if not self._queue and not self._lagged:
                await self._wake.wait()

    def __aiter__(self) -> AsyncIterator[Item]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Item]:
        with contextlib.suppress(StopAsyncIteration):
            while True:
                for item in await self.next_batch():
                    yield item

    def close(self) -> None:
        self._closed = True
        self._feed.unregister(self)
        self._wake.set()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Feed:
    """Publishes committed events in position order to every subscription."""

    def __init__(self, reader: Reader) -> None:
        self._reader = reader
        self._subs: set[Subscription] = set()
        self._listeners: list[Callable[[list[Event]], None]] = []
        self.last_position = 0
        self._dirty = asyncio.Event()
        self._rung = asyncio.Event()  # another process's doorbell: it did commit
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.last_position = await self._reader.last_position()
        self._task = asyncio.create_task(self._catch_up_loop(), name="agentdeck-feed")

    async def close(self) -> None:
        for sub in list(self._subs):
            sub.close()
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            await ended(task)

    def subscribe(
        self, after: int, flt: Filter | None = None, max_queue: int = DEFAULT_QUEUE
    ) -> Subscription:
        sub = Subscription(self, self._reader, after, flt, max_queue)
        self._subs.add(sub)  # registered before its replay starts: nothing falls in between
        return sub

    def unregister(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    def add_listener(self, listener: Callable[[list[Event]], None]) -> None:
        """A plain callback for every published batch (e.g. the search indexer's nudge)."""
        self._listeners.append(listener)

    def publish_local(self, events: list[Event]) -> None:
        """Hand over events committed by this process's writer."""
        fresh = [e for e in events if e.position > self.last_position]
        if not fresh:
            return
        if fresh[0].position == self.last_position + 1:
            self._deliver(fresh)
        else:
            self._dirty.set()  # another process committed in between: read the gap

    def hint(self) -> None:
        """Something may have been committed elsewhere: look after the last position."""
        self._dirty.set()

    def rung(self) -> None:
        """Another process committed (its doorbell, store.doorbell): look now, without
        waiting out the pause that coalesces the file watcher's hints."""
        self._rung.set()
        self._dirty.set()

    def _deliver(self, events: list[Event]) -> None:
        self.last_position = events[-1].position
        for sub in list(self._subs):
            sub.offer(events)
        for listener in self._listeners:
            listener(events)

    async def _catch_up_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            self._rung.clear()  # a ring from now on is about a commit this read may miss
            try:
                found = False
                while True:
                    batch = await self._reader.read_after(self.last_position, REPLAY_PAGE)
                    fresh = [e for e in batch.events if e.position > self.last_position]
                    if fresh:
                        found = True
                        self._deliver(fresh)
                    if not batch.has_more:
                        break
                if not found:
                    # Our own commits wake the file watcher too; a wake-up that found
                    # nothing was most likely one of those, so let a burst of them
                    # coalesce instead of reading once per commit; a doorbell
                    # (another process did commit) ends the pause.
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for drops a
                    # cancel (close) that lands as the ring does, and close then waits
                    # for this loop forever.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(IDLE_HINT_S):
                            await self._rung.wait()
            except Exception:
                # A transient read failure (locked, closing) only delays delivery:
                # the next hint or poll retries from the same position.
                await asyncio.sleep(0.1)
                self._dirty.set()


class ChangeWatcher:
    """Wakes the feed when another process may have committed to the same file.

    Two sources, both only hints: watchfiles on the database's folder (filtered
    to the database and its -wal file; watching the -wal itself breaks when
    SQLite deletes it) and `PRAGMA data_version` polling as the fallback.
    """

    def __init__(self, path: Path, feed: Feed, reader: Reader, poll_s: float = 0.25) -> None:
        self._path = path
        self._names = {path.name, path.name + "-wal"}
        self._feed = feed
        self._reader = reader
        self._poll_s = poll_s
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._watch(), name="agentdeck-watch"),
            asyncio.create_task(self._poll(), name="agentdeck-poll"),
        ]

    async def close(self) -> None:
        self._stop.set()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            await ended(task)

    async def _watch(self) -> None:
        from watchfiles import awatch

        names = self._names

        def wanted(_change: object, path: str) -> bool:
            return Path(path).name in names

        try:
            async for _changes in awatch(
                self._path.parent,
                watch_filter=wanted,
                stop_event=self._stop,
                recursive=False,
                step=5,
                debounce=20,
                rust_timeout=1000,
                yield_on_timeout=False,
            ):
                self._feed.hint()
        except Exception:
            return  # no inotify here: the data_version poll carries on alone

    async def _poll(self) -> None:
        last: int | None = None
        while not self._stop.is_set():
            try:
                row = await self._reader.fetchone("PRAGMA data_version")
                version = int(row[0]) if row else 0
                if last is not None and version != last:
                    self._feed.hint()
                last = version
            except Exception:
                pass
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._poll_s)
