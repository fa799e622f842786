"""The free-text indexer: follows the global cursor, off the write path.

Appenders never wait for it. It runs as an occasional job on the writer's
queue that indexes everything new in one transaction, so it adds one commit
per interval rather than work to every append (a trigger-maintained FTS index
slows appends about six-fold, measured here). Queries cover the not yet
indexed tail themselves (store.filters), so results are exact meanwhile.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from store.codec import searchable_text
from store.follower import Follower
from store.writer import Writer

INDEX_CHUNK = 20_000
INDEX_INTERVAL_S = 0.5


def index_step(conn: sqlite3.Connection, chunk: int = INDEX_CHUNK) -> bool:
    """Index up to `chunk` events after the indexed position; True if more may remain.

    The rows stream from the read into the insert, one at a time: at 10k events/s
    a step holds 5,000 events, and a list of them and of their texts was a peak
    of several MB in the process of any console or host, every half second.
    """
    done = conn.execute("SELECT indexed_position FROM search_state WHERE id = 1").fetchone()[0]
    rows = conn.execute(
        "SELECT position, message, payload FROM events WHERE position > ? ORDER BY position LIMIT ?",
        (done, chunk),
    )
    last, count = done, 0

    def bodies() -> Iterator[tuple[int, str]]:
        nonlocal last, count
        for position, message, payload in rows:
            last, count = position, count + 1
            yield position, searchable_text(message, payload)

    conn.executemany("INSERT INTO events_fts (rowid, body) VALUES (?, ?)", bodies())
    if not count:
        return False
    conn.execute("UPDATE search_state SET indexed_position = ? WHERE id = 1", (last,))
    return count == chunk


class Indexer(Follower):
    """Keeps `events_fts` caught up with the log; catches up on open."""

    TASK_NAME = "agentdeck-indexer"

    def __init__(self, writer: Writer, interval_s: float = INDEX_INTERVAL_S) -> None:
        super().__init__(interval_s)  # the interval batches a burst into one transaction
        self._writer = writer

    async def close(self) -> None:
        await self.stop()

    async def catch_up(self) -> None:
        """Index everything committed so far (used by tests and benchmarks)."""
        while await self._writer.run_job(index_step):
            pass

    async def _pass(self) -> None:
        try:
            await self.catch_up()
        except Exception:
            pass  # indexing is an optimisation; queries still see the tail
