"""`PgReader`: store.reader.Reader's queries on PostgreSQL, through an async connection pool.

The same methods, signatures and records as the SQLite reader; rows become
records through the same builders (store.records) so both back ends answer
field for field alike. Every read is one autocommit statement (or two, as in
SQLite's transcript): no transaction stays open between calls.

Why psycopg_pool's AsyncConnectionPool rather than a sync pool in threads:
the reads are single statements with no shared sync code to run (unlike the
writer's fold), so awaiting the async driver costs no thread hop per read,
cancelling a read cancels its query, and concurrency is bounded by the pool
rather than by the default executor shared with everything else.

The queries themselves are store.reader.Reader's: this class is a subclass
that only connects differently. Text orders alike on both back ends because
the PostgreSQL schema collates every text column "C" (SQLite's BINARY).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from store.errors import StoreClosed
from store.filters import Filter
from store.postgres.adapter import to_pyformat
from store.postgres.errors import translate
from store.postgres.search import UNINDEXED_COLUMN, WordSearch, word_search
from store.reader import (
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_TRANSCRIPT,
    EVENT_COLUMNS,
    Reader,
)

POOL_MIN = 1
POOL_MAX = 8
SCAN_PAGE = 1000  # most candidate rows read per step when words are rechecked in Python
OPEN_TIMEOUT_S = 30.0


class PgReader(Reader):
    """store.reader.Reader's queries on a PostgreSQL database, through an async pool.

    The queries are the SQLite reader's own (written with `?`, turned into
    psycopg's `%s` by `fetchall`); only connecting, filtering and the two
    queries whose SQL is not portable are this class's.
    """

    def __init__(
        self,
        url: str,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_transcript: int = DEFAULT_MAX_TRANSCRIPT,
        pool_max: int = POOL_MAX,
    ) -> None:
        # Not Reader.__init__: no file, no SQLite connection; the queries use
        # only these attributes and fetchall.
        self.url = url
        self.max_batch = max_batch
        self.max_transcript = max_transcript
        self._pool_max = pool_max
        self._pool: AsyncConnectionPool[Any] | None = None
        self._has_commands = False
        self._has_search = False  # events.search (schema 3) is there (it never goes away)
        self._has_activity = False  # ... activity and runs.ended_at (schema 4)
        self._profiles: dict[tuple[str, str], str] = {}  # a worker's profile never changes

    async def start(self) -> None:
        # Connect once first: a server that is down, a refused login or a missing database
        # fails at once with its reason, where the pool would retry until OPEN_TIMEOUT_S.
        try:
            probe = await psycopg.AsyncConnection.connect(self.url)
        except psycopg.Error as exc:
            raise translate(exc, self.url) from None
        await probe.close()
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            self.url,
            min_size=POOL_MIN,
            max_size=self._pool_max,
            kwargs={"autocommit": True, "application_name": "agentdeck-reader"},
            open=False,
            name="agentdeck-reader",
        )
        try:
            await pool.open(wait=True, timeout=OPEN_TIMEOUT_S)
        except Exception:
            await pool.close()
            # The pool hides why it could not connect: connect once to say why.
            try:
                conn = await psycopg.AsyncConnection.connect(self.url)
                await conn.close()
            except psycopg.Error as exc:
                raise translate(exc, self.url) from None
            raise
        self._pool = pool

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of `sql` written with `?` placeholders (as store.reader's queries are)."""
        return await self._fetch(to_pyformat(sql), tuple(params))

    async def _fetch(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        # Each pooled connection the server ended fails once; a fresh one then answers.
        attempts = self._pool_max + 1
        requests = _cancel_requests()
        for attempt in range(attempts):
            if self._pool is None:
                raise StoreClosed()
            try:
                async with self._pool.connection() as conn:
                    if _cancel_requests() > requests:
                        # Cancelled while waiting for the connection, and the pool's
                        # wait (asyncio.wait_for, which on Python 3.11 drops a cancel
                        # that lands as its result arrives) handed it over anyway.
                        raise asyncio.CancelledError()
                    try:
                        cur = await conn.execute(sql, params)
                        return list(await cur.fetchall())
                    except psycopg.OperationalError:
                        # A pooled connection the server ended (restart, idle cut):
                        # the pool drops it on return; a read is safe to try again.
                        if attempt < attempts - 1 and conn.broken and not _cancelling():
                            continue
                        raise
            except psycopg.Error as exc:
                if _cancelling():
                    # psycopg answers a cancelled task's query with QueryCanceled (or a
                    # dropped connection): the cancellation is what the caller must see.
                    raise asyncio.CancelledError() from None
                raise translate(exc, self.url) from None
        raise AssertionError("unreachable")  # the last attempt returns or raises

    async def _filtered_rows(
        self, position: int, limit: int, flt: Filter, *, newest_first: bool
    ) -> list[tuple[Any, ...]]:
        """store.reader's `_log_rows` for a filter with terms, in PostgreSQL's SQL."""
        cmp, order = ("<", "DESC") if newest_first else (">", "ASC")
        # Field terms in SQL (globs as LIKE), free words through the tsvector index
        # (store.postgres.search); where that index cannot say exactly, or for an
        # UNINDEXED row, `flt.matches_words` (SQLite's predicate) decides row by row.
        fields, params = flt.fields_where(postgres=True)
        where = to_pyformat(fields)
        if not flt.has_words:
            return await self._fetch(
                f"SELECT {EVENT_COLUMNS} FROM events e WHERE e.position {cmp} %s AND ({where})"
                f" ORDER BY e.position {order} LIMIT %s",
                (position, *params, limit),
            )
        if await self._search_column():
            words, unindexed = word_search(flt), UNINDEXED_COLUMN
        else:  # a database no writer has brought to schema 3 yet: every row checked
            words, unindexed = WordSearch("TRUE", exact=False), "TRUE"
        where = f"{where} AND {words.condition.replace('%', '%%')}"
        out: list[tuple[Any, ...]] = []
        cursor, page = position, limit
        while True:
            rows = await self._fetch(
                f"SELECT {EVENT_COLUMNS}, {unindexed} FROM events e"
                f" WHERE e.position {cmp} %s AND ({where}) ORDER BY e.position {order} LIMIT %s",
                (cursor, *params, page),
            )
            for *row, check in rows:
                # The field terms are exact in SQL: only the words need checking
                # (message and payload, columns 9 and 10 of EVENT_COLUMNS).
                if (words.exact and not check) or flt.matches_words(row[9], row[10]):
                    out.append(tuple(row))
            if len(out) >= limit or len(rows) < page:
                return out[:limit]
            # The recheck turned candidates down: read on, in growing pages.
            cursor, page = int(rows[-1][0]), max(page, min(page * 4, SCAN_PAGE))

    async def newest_run_ids(self, runtime_id: str) -> dict[str, str]:
        """Each worker's most recent run id, in one indexed query (for a host's restore)."""
        rows = await self.fetchall(
            # PostgreSQL has no bare-column rule: DISTINCT ON keeps each worker's newest row.
            "SELECT DISTINCT ON (worker_id) worker_id, run_id FROM runs WHERE runtime_id = ?"
            " ORDER BY worker_id, created_at DESC, run_id DESC",
            (runtime_id,),
        )
        return {str(r[0]): str(r[1]) for r in rows}

    async def _search_column(self) -> bool:
        """Whether `events.search` (schema 3) is there: an observer (which does not
        migrate) may watch a database an older agentdeck still writes."""
        if not self._has_search:
            found = await self.fetchone(
                "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('events')"
                " AND attname = 'search' AND NOT attisdropped"
            )
            self._has_search = found is not None
        return self._has_search

    async def _activity_table(self) -> bool:
        """Whether the database has the pictures' schema (4) yet: an observer may watch a
        database an older agentdeck still writes."""
        if not self._has_activity:
            found = await self.fetchone("SELECT to_regclass('activity') IS NOT NULL")
            self._has_activity = bool(found and found[0])
        return self._has_activity

    async def _commands_table(self) -> bool:
        """Whether the database has the `commands` table (schema 2) yet: an observer may
        watch a database an older agentdeck set up, which has no commands."""
        if not self._has_commands:
            found = await self.fetchone("SELECT to_regclass('commands') IS NOT NULL")
            self._has_commands = bool(found and found[0])
        return self._has_commands


def _cancel_requests() -> int:
    """How many cancellations of the running task are pending (0 outside a task)."""
    task = asyncio.current_task()
    return task.cancelling() if task is not None else 0


def _cancelling() -> bool:
    """Whether the running task is being cancelled (its query's error is then not news)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
