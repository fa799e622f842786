"""The PostgreSQL writer: one connection, one thread, group commit, gap-free positions.

Like store.writer (SQLite): producers `submit` appends and await their own
future; the writer task takes everything that has gathered and commits it as
one transaction, and each append gets its own answer (SequenceConflict,
HostFenced, a fold's refusal, DuplicateEvent fail that append alone, replayed
one by one under savepoints when the optimistic batch fails).

No holes in the position order. Several processes (on several machines)
append to one database; a reader reading `position > N` must never see N+2
committed while N+1 is still to come, or a cursor would skip N+1 for good.
A sequence cannot give that: numbers are handed out in call order but
transactions commit in any order. So appenders take turns: each append
transaction first takes `pg_advisory_xact_lock(APPEND_LOCK_KEY)`, then reads
`max(position)`, assigns the next positions, inserts, folds the projections
and queues `NOTIFY agentdeck, '<last position>'`, and commits. The lock is
released only after the commit is visible to new snapshots (PostgreSQL ends
the transaction in the proc array before it releases its locks), so the next
holder's `max(position)` sees it, and commit order equals position order: any
snapshot that sees position N+1 committed sees N too. The cost is that
appends from all processes are serial, one transaction at a time, for the
length of a transaction (a few round trips plus the commit's WAL flush);
group commit amortizes it over everything a process has queued.

Lease jobs (store.hosts) take the same lock, so a fence checked in an append
transaction cannot race a claim committing between check and rows, as with
SQLite's single write lock.

Sync psycopg in a dedicated thread rather than the async driver: the fold
(store.projector) is synchronous DB-API code shared with SQLite, and a batch
is dozens of statements, so one thread hop per batch beats an await per
statement.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors

from store.errors import (
    StoreClosed,
)
from store.group_commit import MAX_BATCH_EVENTS, Append, GroupCommitWriter, Outcome
from store.models import Event
from store.postgres import search
from store.postgres.adapter import PgConnection
from store.postgres.errors import translate
from store.postgres.schema import APPEND_LOCK_KEY, migrate
from store.projector import Connection, Row, project

T = TypeVar("T")

CHANNEL = "agentdeck"
"""The LISTEN/NOTIFY channel; each append transaction notifies its last position."""

LOCK_TIMEOUT_S = 30.0  # longest wait for the append lock before an append fails
IDLE_IN_TXN_S = 15.0  # the server ends a writer session idle this long inside a transaction
INSERT_CHUNK = 1000  # rows per INSERT: 13,000 parameters, under PostgreSQL's 65,535


def connect(url: str, lock_timeout_s: float = LOCK_TIMEOUT_S) -> psycopg.Connection[Any]:
    """A writer connection (autocommit: transactions are explicit), migrated to the latest schema.

    Its session settings bound how long one stalled process can hold up every
    appender: `lock_timeout` fails an append that waited that long for the
    append lock (AppendLockTimeout), and `idle_in_transaction_session_timeout`
    lets the server end the session of a writer that stopped mid-transaction
    (a process paused with SIGSTOP, a hung thread), which releases the lock.
    """
    try:
        conn = psycopg.connect(url, autocommit=True, application_name="agentdeck-writer")
    except psycopg.Error as exc:
        raise translate(exc, url) from None
    try:
        conn.execute(f"SET lock_timeout = {int(lock_timeout_s * 1000)}")
        conn.execute(f"SET idle_in_transaction_session_timeout = {int(IDLE_IN_TXN_S * 1000)}")
        migrate(conn, url)
    except psycopg.Error as exc:
        conn.close()
        raise translate(exc, url) from None
    except BaseException:
        conn.close()
        raise
    return conn


class PgWriter(GroupCommitWriter[PgConnection]):
    """Owns the write connection. Start with `await start()`, end with `await close()`.

    A job (`run_job`, e.g. the lease jobs of store.hosts, unchanged) runs in its
    own transaction holding the append lock.
    """

    THREAD_NAME = "agentdeck-pg-writer"

    def __init__(
        self,
        url: str,
        on_commit: Callable[[list[Event]], None] = lambda events: None,
        max_batch_events: int = MAX_BATCH_EVENTS,
        lock_timeout_s: float = LOCK_TIMEOUT_S,
    ) -> None:
        super().__init__(on_commit, max_batch_events)
        self._url = url
        self._lock_timeout_s = lock_timeout_s
        self._conn: psycopg.Connection[Any] | None = None

    def _open(self) -> None:
        self._conn = connect(self._url, self._lock_timeout_s)

    def _close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()

    # -- in the writer thread ---------------------------------------------

    def _connection(self) -> psycopg.Connection[Any]:
        """The connection, opened again if the last one broke (server restart, network)."""
        if self._conn is None:
            raise StoreClosed()
        if self._conn.broken or self._conn.closed:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = connect(self._url, self._lock_timeout_s)
        return self._conn

    def _begin(self, conn: psycopg.Connection[Any]) -> None:
        # READ COMMITTED whatever the server's default: each statement then reads a
        # snapshot taken after the lock was granted (REPEATABLE READ would keep the
        # one taken before the wait, and assign positions already used).
        conn.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
        # Held to COMMIT/ROLLBACK: every appender in every process takes its turn here.
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (APPEND_LOCK_KEY,))

    def _rollback(self, conn: psycopg.Connection[Any]) -> None:
        if not conn.broken and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            with contextlib.suppress(psycopg.Error):
                conn.execute("ROLLBACK")

    def _job(self, fn: Callable[[PgConnection], T]) -> T:
        try:
            conn = self._connection()
            try:
                self._begin(conn)
                result = fn(PgConnection(conn))
                conn.execute("COMMIT")
                return result
            except BaseException:
                self._rollback(conn)
                raise
        except psycopg.Error as exc:
            raise translate(exc, self._url) from None

    def _commit(self, batch: list[Append]) -> list[Outcome]:
        try:
            conn = self._connection()
        except Exception as exc:
            error = translate(exc, self._url)
            return [Outcome(error=error) for _ in batch]
        try:
            self._begin(conn)
            try:
                outcomes = self._apply(PgConnection(conn), batch, isolate=False)
            except Exception as exc:
                # A constraint, bad data or a fold's refusal somewhere in the batch:
                # replay append by append so it fails alone. A server or connection
                # error fails the batch (below).
                if not self._own_fault(exc):
                    raise
                conn.execute("ROLLBACK")
                self._begin(conn)
                outcomes = self._apply(PgConnection(conn), batch, isolate=True)
            last = max((o.rows[-1].position for o in outcomes if o.rows), default=None)
            if last is not None:
                # Delivered at COMMIT, in commit order (= position order), to LISTENers.
                conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(last)))
            conn.execute("COMMIT")
            return outcomes
        except Exception as exc:
            # Whatever went wrong (the server, the network, a bug in a fold), this
            # batch fails as a whole and the writer lives on: callers get their answer.
            # (A COMMIT lost with the connection leaves the outcome unknown: the
            # caller sees ConnectionLost and must re-read before retrying.)
            self._rollback(conn)
            error = translate(exc, self._url)
            return [Outcome(error=error) for _ in batch]

    DB_ERRORS = (psycopg.Error,)
    APPEND_ERRORS = (psycopg.IntegrityError, psycopg.DataError)

    def _write(self, conn: Connection, rows: list[Row], *, batch: bool) -> None:
        if not batch:
            _insert_events(conn, rows)
            project(conn, rows)
            return
        # A whole batch in pipeline mode: the fold's writes go out without waiting
        # for each answer (a read, or a rowcount, waits for what was sent before it).
        assert isinstance(conn, PgConnection)
        with conn.raw.pipeline() as pipeline:
            pipelined = PgConnection(conn.raw, pipeline)
            _insert_events(pipelined, rows)
            project(pipelined, rows)

    def _is_duplicate_event(self, exc: Exception) -> bool:
        return (
            isinstance(exc, pg_errors.UniqueViolation)
            and exc.diag.constraint_name == "events_event_id_key"
        )


def _insert_events(conn: Connection, rows: list[Row]) -> None:
    """INSERT the rows as multi-row statements: one round trip per INSERT_CHUNK rows.

    Not executemany: psycopg pipelines that, and a duplicate event id then
    aborts the pipeline with a logged warning on top of the error we handle.
    """
    for start in range(0, len(rows), INSERT_CHUNK):
        chunk = rows[start : start + INSERT_CHUNK]
        # Each row with its search vector (store.postgres.search: FTS5's tokens and
        # their positions, so PostgreSQL's search answers as SQLite's): one more value.
        values = ", ".join([search.INSERT_VALUES_ROW] * len(chunk))
        params = [v for r in chunk for v in search.insert_values(r)]
        conn.execute(f"INSERT INTO events ({search.INSERT_COLUMNS}) VALUES {values}", params)
