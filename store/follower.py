"""`Follower`: a task that follows the log off the write path (the free-text indexer, the
checkpoint writer).

Appenders never wait for it: every commit only nudges it. It makes one pass
over what is new, then rests `interval_s`, so a burst of commits costs one
pass rather than one each.
"""

from __future__ import annotations

import asyncio
import contextlib


class Follower:
    """Runs `_pass` once per nudge (at most once per interval) until stopped."""

    TASK_NAME = "agentdeck-follower"

    def __init__(self, interval_s: float) -> None:
        self._interval = interval_s
        self._nudge = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._nudge.set()  # catch up on whatever the last session left behind
        self._task = asyncio.create_task(self._run(), name=self.TASK_NAME)

    def nudge(self, _events: object = None) -> None:
        self._nudge.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _pass(self) -> None:
        """One pass over what is new; must not raise but for a cancel."""
        raise NotImplementedError

    async def _run(self) -> None:
        while True:
            await self._nudge.wait()
            self._nudge.clear()
            await self._pass()
            await asyncio.sleep(self._interval)
