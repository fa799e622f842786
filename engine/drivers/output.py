"""Turning a program's byte streams into a few transcript entries.

A program may print a hundred thousand lines a second. Forwarding each line as
its own transcript entry would flood the log and stall the program behind the
store, so lines are gathered for a short window (or up to a size) and sent as
one chunk. Bytes are decoded leniently (invalid UTF-8 is replaced, never
fatal; so is a NUL, which a PostgreSQL text column cannot hold, so a program's
output is recorded alike on both back ends) and the captured total per run is capped; past the cap the pipe is
still drained so the program never blocks on a full pipe.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable

READ_SIZE = 65536
FLUSH_INTERVAL = 0.05
MAX_CHUNK_CHARS = 65536
MAX_LINE_CHARS = 65536
TAIL_CHARS = 2000

Sink = Callable[[str], Awaitable[None]]


class LineSplitter:
    """Bytes in, complete decoded lines out; keeps the unfinished last line for later."""

    def __init__(self, max_line_chars: int = MAX_LINE_CHARS) -> None:
        # An incremental decoder keeps a character split across two reads whole.
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""
        self._max_line = max_line_chars

    def feed(self, data: bytes) -> list[str]:
        text = self._partial + _storable(self._decoder.decode(data))
        lines = text.split("\n")
        self._partial = lines.pop()
        if len(self._partial) > self._max_line:
            # A line with no end in sight is cut, so memory stays bounded.
            lines.append(self._partial)
            self._partial = ""
        return [line.removesuffix("\r") for line in lines]

    def finish(self) -> list[str]:
        """The last line at end of stream, if it did not end with a newline."""
        rest = self._partial + _storable(self._decoder.decode(b"", final=True))
        self._partial = ""
        return [rest.removesuffix("\r")] if rest else []


def _storable(text: str) -> str:
    return text.replace("\x00", "\ufffd")


class OutputBudget:
    """How many bytes of output one run may record; counts what was cut."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.dropped = 0

    @property
    def truncated(self) -> bool:
        return self.dropped > 0

    def admit(self, size: int) -> int:
        """How many of `size` new bytes may be recorded (the rest is counted as cut)."""
        allowed = max(0, min(size, self.limit - self.used)) if not self.truncated else 0
        self.used += allowed
        self.dropped += size - allowed
        return allowed

    def admit_line(self, line: str) -> bool:
        """Whether a whole line may be recorded; once anything is cut, nothing more is."""
        size = len(line.encode("utf-8", "replace")) + 1
        if self.truncated or self.used + size > self.limit:
            self.dropped += size
            return False
        self.used += size
        return True


class Coalescer:
    """Gathers lines and sends them to `sink` as one chunk per window or per size."""

    def __init__(
        self,
        sink: Sink,
        *,
        interval: float = FLUSH_INTERVAL,
        max_chunk_chars: int = MAX_CHUNK_CHARS,
        tail_chars: int = TAIL_CHARS,
    ) -> None:
        self._sink = sink
        self._interval = interval
        self._max_chunk = max_chunk_chars
        self._tail_chars = tail_chars
        self._pending: deque[str] = deque()
        self._pending_chars = 0
        self._window_start = 0.0
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._tail = ""
        self.chunks = 0
        self.lines = 0

    @property
    def tail(self) -> str:
        """The end of what was sent (whole lines, at most `tail_chars`)."""
        return self._tail

    @property
    def last_line(self) -> str:
        return self._tail.rsplit("\n", 1)[-1]

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="output-coalescer")

    def push(self, lines: list[str]) -> None:
        if not lines:
            return
        was_empty = not self._pending
        if was_empty:
            self._window_start = time.monotonic()
        self._pending.extend(lines)
        self._pending_chars += sum(len(line) + 1 for line in lines)
        if was_empty or self._pending_chars >= self._max_chunk:
            self._wake.set()

    async def aclose(self) -> None:
        """Send what is pending and stop; re-raises what the sink raised."""
        self._closing = True
        self._wake.set()
        if self._task is None:
            while self._pending:
                await self._send_one()
            return
        await self._task

    async def abort(self) -> None:
        """Stop at once, dropping what is pending (the run is being torn down)."""
        self._closing = True
        self._pending.clear()
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    async def _run(self) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            if not self._closing and self._pending_chars < self._max_chunk:
                delay = self._window_start + self._interval - time.monotonic()
                if delay > 0:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(delay):
                            await self._wake.wait()
                    continue
            await self._send_one()

    async def _send_one(self) -> None:
        taken: list[str] = []
        size = 0
        while self._pending and (not taken or size + len(self._pending[0]) < self._max_chunk):
            line = self._pending.popleft()
            taken.append(line)
            size += len(line) + 1
        self._pending_chars -= size
        self._window_start = time.monotonic()
        chunk = "\n".join(taken)
        self.chunks += 1
        self.lines += len(taken)
        self._remember(chunk)
        await self._sink(chunk)

    def _remember(self, chunk: str) -> None:
        tail = f"{self._tail}\n{chunk}" if self._tail else chunk
        if len(tail) > self._tail_chars:
            tail = tail[-self._tail_chars :]
            cut = tail.find("\n")
            if 0 <= cut < len(tail) - 1:
                tail = tail[cut + 1 :]
        self._tail = tail


async def pump(
    stream: asyncio.StreamReader,
    splitter: LineSplitter,
    budget: OutputBudget,
    into: Coalescer,
) -> None:
    """Drain `stream` to its end, recording lines within `budget` and counting the rest."""
    while data := await stream.read(READ_SIZE):
        allowed = budget.admit(len(data))
        if allowed:
            into.push(splitter.feed(data if allowed == len(data) else data[:allowed]))
    into.push(splitter.finish())
