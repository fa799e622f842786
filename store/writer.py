"""The SQLite writer: one connection, one thread, group commit (store.group_commit).

Each batch commits as one `BEGIN IMMEDIATE` transaction, so one fsync serves
a burst. Each append gets its own answer: a stale expected sequence or a lost
host lease (`fence`) fails only that append, and if the optimistic batch hits
a constraint or a fold refuses an event the batch is replayed append by
append under savepoints so one bad append cannot fail its neighbours. Idle
for CHECKPOINT_EVERY_S, it checkpoints the WAL.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from store.database import OpenOptions, close_quietly, open_writer, translate
from store.errors import (
    StoreClosed,
)
from store.group_commit import MAX_BATCH_EVENTS, Append, GroupCommitWriter, Outcome
from store.models import Event
from store.projector import INSERT_EVENT, Connection, Row, project

T = TypeVar("T")

CHECKPOINT_EVERY_S = 5.0
CHECKPOINT_BUSY_MS = 200


class Writer(GroupCommitWriter[sqlite3.Connection]):
    """Owns the write connection. Start with `await start()`, end with `await close()`."""

    THREAD_NAME = "agentdeck-writer"

    def __init__(
        self,
        path: Path,
        options: OpenOptions,
        on_commit: Callable[[list[Event]], None],
        max_batch_events: int = MAX_BATCH_EVENTS,
    ) -> None:
        super().__init__(on_commit, max_batch_events)
        self._path = path
        self._options = options
        self._conn: sqlite3.Connection | None = None
        self._last_checkpoint = time.monotonic()

    def _open(self) -> None:
        self._conn = open_writer(self._path, self._options)

    def _close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            self._checkpoint(conn)
            close_quietly(conn)

    def _idle_after(self) -> float:
        return CHECKPOINT_EVERY_S  # read when idle, so a test may shorten it

    def _idle(self) -> None:
        if (
            time.monotonic() - self._last_checkpoint >= CHECKPOINT_EVERY_S
            and self._conn is not None
        ):
            self._checkpoint(self._conn)

    # -- in the writer thread ---------------------------------------------

    def _job(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._require_conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
                conn.execute("COMMIT")
                return result
            except BaseException:
                # SQLite may have rolled back already (SQLITE_FULL does): a ROLLBACK
                # then fails, and its "no transaction is active" must not replace
                # the error that says what went wrong.
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise translate(exc, self._path, self._options.busy_timeout_s) from None

    def _commit(self, batch: list[Append]) -> list[Outcome]:
        conn = self._require_conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            error = translate(exc, self._path, self._options.busy_timeout_s)
            return [Outcome(error=error) for _ in batch]
        try:
            try:
                outcomes = self._apply(conn, batch, isolate=False)
            except Exception as exc:
                # Not only a constraint but any append the projection cannot fold (one
                # the catalog accepts but the fold cannot place, such as a worker.created
                # without a worker id) is found by replaying append by append, so it
                # fails alone instead of killing the writer task and leaving every
                # caller waiting.
                if not self._own_fault(exc):
                    raise
                conn.execute("ROLLBACK")
                conn.execute("BEGIN IMMEDIATE")
                outcomes = self._apply(conn, batch, isolate=True)
            conn.execute("COMMIT")
            return outcomes
        except Exception as exc:
            # Whatever went wrong (the disk, memory, a bug in a fold), this batch
            # fails as a whole and the writer lives on: callers get their answer.
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            error = translate(exc, self._path, self._options.busy_timeout_s)
            return [Outcome(error=error) for _ in batch]

    DB_ERRORS = (sqlite3.Error,)
    APPEND_ERRORS = (sqlite3.IntegrityError,)

    def _write(self, conn: Connection, rows: list[Row], *, batch: bool) -> None:
        conn.executemany(INSERT_EVENT, [r.column_values() for r in rows])
        project(conn, rows)

    def _is_duplicate_event(self, exc: Exception) -> bool:
        return isinstance(exc, sqlite3.IntegrityError) and "events.event_id" in str(exc)

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        # TRUNCATE waits for readers; an idle moment and a short wait keep it
        # from ever stalling appends, and a busy reader just means "next time".
        self._last_checkpoint = time.monotonic()
        busy_ms = int(self._options.busy_timeout_s * 1000)
        try:
            conn.execute(f"PRAGMA busy_timeout = {CHECKPOINT_BUSY_MS}")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error:
            pass
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.execute(f"PRAGMA busy_timeout = {busy_ms}")

    def _require_conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreClosed()
        return self._conn
