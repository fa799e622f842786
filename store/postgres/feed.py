"""The change feed on PostgreSQL: store.feed's `Feed`, woken by LISTEN instead of a file watcher.

Every append transaction (store.postgres.writer) queues `NOTIFY agentdeck,
'<last position>'`, delivered at its commit. `PgListener` holds one dedicated
async connection that LISTENs on that channel and rings the feed for each
notification: the feed then reads after its last published position, so the
payload is only a hint and a notification lost or coalesced costs nothing.
This process's own commits reach the feed through the writer's on_commit
(`Feed.publish_local`), as on SQLite; their notifications, at or below the
feed's last published position, are then skipped without a read.

A dropped connection (server restart, network) is reopened with a growing
pause; once LISTENing again the feed is rung, since commits made while no one
listened sent their notifications to no one.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import psycopg
from psycopg import sql

from store.feed import Feed, ended
from store.postgres.errors import translate
from store.postgres.writer import CHANNEL

RETRY_FIRST_S = 0.05
RETRY_MAX_S = 2.0


class PgListener:
    """LISTENs on `channel` and rings `feed` for every notification; reconnects on its own."""

    def __init__(self, url: str, feed: Feed, channel: str = CHANNEL) -> None:
        self._url = url
        self._feed = feed
        self._channel = channel
        self._task: asyncio.Task[None] | None = None
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self.reconnects = 0  # how many times the connection was opened again (tests)

    async def start(self) -> None:
        """Connect and LISTEN before returning: a commit from now on wakes the feed."""
        try:
            self._conn = await self._listen()
        except psycopg.Error as exc:
            raise translate(exc, self._url) from None
        self._task = asyncio.create_task(self._run(), name="agentdeck-pg-listen")

    async def close(self) -> None:
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            await ended(task)  # a cancel of the caller itself still goes on up
        await self._drop()

    async def _listen(self) -> psycopg.AsyncConnection[Any]:
        conn = await psycopg.AsyncConnection.connect(
            self._url, autocommit=True, application_name="agentdeck-listen"
        )
        try:
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _drop(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):
                await conn.close()

    async def _run(self) -> None:
        pause = RETRY_FIRST_S
        while True:
            if self._conn is None:
                try:
                    self._conn = await self._listen()
                except (psycopg.Error, OSError):
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, RETRY_MAX_S)
                    continue
                self.reconnects += 1
                pause = RETRY_FIRST_S
                # Listening again: whatever was committed while no one listened.
                self._feed.rung()
            try:
                async for note in self._conn.notifies():
                    if _news(note.payload, self._feed.last_position):
                        self._feed.rung()
            except (psycopg.Error, OSError):
                pass
            # The generator ended or failed: the connection is gone. Reopen it.
            await self._drop()


def _news(payload: str, published: int) -> bool:
    """Whether a notification may be about something the feed has not published.

    The payload is the last position of the notifying commit. Commits are in
    position order and the feed publishes without gaps, so a position at or
    below the last published one is old news (typically this process's own
    commit, already handed over by the writer): no read is needed for it.
    """
    try:
        return int(payload) > published
    except ValueError:
        return True  # not ours to parse: look anyway
