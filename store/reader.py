"""Reads: a read-only aiosqlite connection, autocommit, every result fetched whole.

Fetching whole keeps no read transaction open between calls (an open one
would starve WAL checkpoints), and every read is bounded by a limit that is
checked before anything is looked up.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import aiosqlite

from store.codec import dt_from_us
from store.database import OpenOptions, open_reader, translate
from store.errors import LimitTooLarge, StoreClosed, StoreError
from store.filters import Filter, register_sql_functions
from store.models import (
    Batch,
    CommandState,
    Cursor,
    Diagnostic,
    Event,
    HostLease,
    RunRecord,
    RuntimeRecord,
    TranscriptPage,
    WorkerRecord,
    WorkerRef,
    WorkerStatus,
)
from store.picture_reads import PictureReads
from store.records import (
    construct,
    diagnostics_from_rows,
    events_from_rows,
    host_from_row,
    run_from_row,
    runtime_from_row,
    transcript_from_rows,
    worker_from_row,
)


def event_columns(alias: str) -> str:
    """The `events` columns of table alias `alias` that store.records.events_from_rows reads."""
    return ", ".join(
        f"{alias}.{name}"
        for name in (
            "position", "runtime_id", "seq", "event_id", "kind", "level", "worker_id", "run_id",
            "run_seq", "message", "payload", "at",
        )
    )


EVENT_COLUMNS = event_columns("e")
"""The columns store.records.events_from_rows reads (the same order as store.projector.Row)."""
DEFAULT_MAX_BATCH = 10_000
DEFAULT_MAX_TRANSCRIPT = 500


def _connector(path: Path, options: OpenOptions) -> Any:
    def connect() -> sqlite3.Connection:
        conn = open_reader(path, options)
        register_sql_functions(conn)
        return conn

    return connect


class Fetches(Protocol):
    """Anything that runs a read and returns its rows (a reader, a store)."""

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]: ...


class Reader(PictureReads):
    """Bounded, indexed reads of the log and the projections (and the pictures:
    store.picture_reads)."""

    def __init__(
        self,
        path: Path,
        options: OpenOptions,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_transcript: int = DEFAULT_MAX_TRANSCRIPT,
    ) -> None:
        self.path = path
        self._options = options
        self.max_batch = max_batch
        self.max_transcript = max_transcript
        self._conn: aiosqlite.Connection | None = None
        self._has_commands = False  # the file has reached schema 2 (it never goes back)
        self._has_activity = False  # ... schema 3 (store.picture_reads)
        self._profiles: dict[tuple[str, str], str] = {}  # a worker's profile never changes

    async def start(self) -> None:
        try:
            self._conn = await aiosqlite.Connection(_connector(self.path, self._options), 64)
        except sqlite3.Error as exc:
            raise translate(exc, self.path, self._options.busy_timeout_s) from None

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.close()

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        if self._conn is None:
            raise StoreClosed()
        try:
            rows = await self._conn.execute_fetchall(sql, tuple(params))
        except sqlite3.Error as exc:
            raise translate(exc, self.path, self._options.busy_timeout_s) from None
        return [tuple(r) for r in rows]

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> tuple[Any, ...] | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    def _check(self, what: str, limit: int, maximum: int) -> None:
        if limit > maximum:
            raise LimitTooLarge(what, limit, maximum)
        if limit < 1:
            raise StoreError(f"{what} limit must be at least 1 (got {limit})")

    # -- the log -------------------------------------------------------------

    async def last_position(self) -> int:
        row = await self.fetchone("SELECT coalesce(max(position), 0) FROM events")
        return int(row[0]) if row else 0

    async def indexed_position(self) -> int:
        row = await self.fetchone("SELECT indexed_position FROM search_state WHERE id = 1")
        return int(row[0]) if row else 0

    async def _log_rows(
        self, position: int, limit: int, flt: Filter | None, *, newest_first: bool
    ) -> list[tuple[Any, ...]]:
        """Rows after (or before) `position` that match `flt`, in log order (or reversed)."""
        cmp, order = ("<", "DESC") if newest_first else (">", "ASC")
        if flt is None or flt.is_empty:
            return await self.fetchall(
                f"SELECT {EVENT_COLUMNS} FROM events e WHERE e.position {cmp} ?"
                f" ORDER BY e.position {order} LIMIT ?",
                (position, limit),
            )
        return await self._filtered_rows(position, limit, flt, newest_first=newest_first)

    async def _filtered_rows(
        self, position: int, limit: int, flt: Filter, *, newest_first: bool
    ) -> list[tuple[Any, ...]]:
        """`_log_rows` for a filter with terms (the back end's own way to search)."""
        cmp, order = ("<", "DESC") if newest_first else (">", "ASC")
        indexed = await self.indexed_position() if flt.has_words else 0
        match = flt.fts_match
        if match is None:
            where, params = flt.where(indexed)
            return await self.fetchall(
                f"SELECT {EVENT_COLUMNS} FROM events e WHERE e.position {cmp} ? AND ({where})"
                f" ORDER BY e.position {order} LIMIT ?",
                [position, *params, limit],
            )
        # Wanted words: drive the indexed part from the FTS index (a rare word
        # then costs its matches, not a walk over the log), and check the few
        # not yet indexed rows above it directly; the two ranges never overlap.
        rest, rest_params = flt.where(indexed, skip_wanted_words=True)
        indexed_rows = await self.fetchall(
            f"SELECT {EVENT_COLUMNS} FROM events_fts f JOIN events e ON e.position = f.rowid"
            f" WHERE events_fts MATCH ? AND f.rowid <= ? AND f.rowid {cmp} ? AND ({rest})"
            f" ORDER BY f.rowid {order} LIMIT ?",
            [match, indexed, position, *rest_params, limit],
        )
        where, params = flt.where(indexed)
        tail_rows = await self.fetchall(
            f"SELECT {EVENT_COLUMNS} FROM events e WHERE e.position > ? AND e.position {cmp} ?"
            f" AND ({where}) ORDER BY e.position {order} LIMIT ?",
            [indexed, position, *params, limit],
        )
        rows = tail_rows + indexed_rows if newest_first else indexed_rows + tail_rows
        return rows[:limit]

    async def read_after(self, position: int, limit: int, flt: Filter | None = None) -> Batch:
        """Events with position > `position`, oldest first, at most `limit`."""
        self._check("event batch", limit, self.max_batch)
        rows = await self._log_rows(position, limit + 1, flt, newest_first=False)
        has_more = len(rows) > limit
        events = events_from_rows(rows[:limit])
        last = events[-1].position if events else position
        cursor = construct(Cursor, {"position": last})
        return construct(Batch, {"events": events, "cursor": cursor, "has_more": has_more})

    async def read_before(
        self, position: int, limit: int, flt: Filter | None = None
    ) -> list[Event]:
        """Events with position < `position`, newest first (scrolling back through history)."""
        self._check("event batch", limit, self.max_batch)
        rows = await self._log_rows(position, limit, flt, newest_first=True)
        return events_from_rows(rows)

    async def read_runtime(self, runtime_id: str, after_seq: int, limit: int) -> list[Event]:
        self._check("event batch", limit, self.max_batch)
        rows = await self.fetchall(
            f"SELECT {EVENT_COLUMNS} FROM events e WHERE e.runtime_id = ? AND e.seq > ?"
            " ORDER BY e.seq LIMIT ?",
            (runtime_id, after_seq, limit),
        )
        return events_from_rows(rows)

    async def read_run(
        self, runtime_id: str, run_id: str, after_run_seq: int, limit: int
    ) -> list[Event]:
        self._check("event batch", limit, self.max_batch)
        rows = await self.fetchall(
            f"SELECT {EVENT_COLUMNS} FROM events e WHERE e.runtime_id = ? AND e.run_id = ?"
            " AND e.run_seq > ? ORDER BY e.run_seq LIMIT ?",
            (runtime_id, run_id, after_run_seq, limit),
        )
        return events_from_rows(rows)

    async def last_seq(self, runtime_id: str) -> int:
        row = await self.fetchone(
            "SELECT coalesce(max(seq), 0) FROM events WHERE runtime_id = ?", (runtime_id,)
        )
        return int(row[0]) if row else 0

    # -- projections ------------------------------------------------------------

    async def runtimes(self) -> list[RuntimeRecord]:
        rows = await self.fetchall(
            "SELECT runtime_id, status, last_seq, display_name, limits, created_at, updated_at"
            " FROM runtimes ORDER BY runtime_id"
        )
        return [runtime_from_row(r) for r in rows]

    async def runtime(self, runtime_id: str) -> RuntimeRecord | None:
        row = await self.fetchone(
            "SELECT runtime_id, status, last_seq, display_name, limits, created_at, updated_at"
            " FROM runtimes WHERE runtime_id = ?",
            (runtime_id,),
        )
        return runtime_from_row(row) if row else None

    async def workers_by_status(self, runtime_id: str) -> dict[WorkerStatus, int]:
        rows = await self.fetchall(
            "SELECT status, count(*) FROM workers WHERE runtime_id = ? GROUP BY status",
            (runtime_id,),
        )
        counts = {s: 0 for s in WorkerStatus}
        for status, n in rows:
            counts[WorkerStatus(status)] = n
        return counts

    async def workers(self, runtime_id: str) -> list[WorkerRecord]:
        rows = await self.fetchall(
            f"SELECT {WORKER_COLUMNS} FROM workers WHERE runtime_id = ? ORDER BY worker_no",
            (runtime_id,),
        )
        return [worker_from_row(r) for r in rows]

    async def worker(self, runtime_id: str, worker_id: str) -> WorkerRecord | None:
        row = await self.fetchone(
            f"SELECT {WORKER_COLUMNS} FROM workers WHERE runtime_id = ? AND worker_id = ?",
            (runtime_id, worker_id),
        )
        return worker_from_row(row) if row else None

    async def runs(self, runtime_id: str, worker_id: str, limit: int = 100) -> list[RunRecord]:
        """A worker's most recent runs, newest first."""
        self._check("run list", limit, self.max_batch)
        rows = await self.fetchall(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE runtime_id = ? AND worker_id = ?"
            " ORDER BY created_at DESC, run_id DESC LIMIT ?",
            (runtime_id, worker_id, limit),
        )
        return [run_from_row(r) for r in rows]

    async def run(self, runtime_id: str, run_id: str) -> RunRecord | None:
        row = await self.fetchone(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE runtime_id = ? AND run_id = ?",
            (runtime_id, run_id),
        )
        return run_from_row(row) if row else None

    async def newest_run_ids(self, runtime_id: str) -> dict[str, str]:
        """Each worker's most recent run id, in one indexed query (for a host's restore)."""
        rows = await self.fetchall(
            # SQLite's bare-column rule: run_id comes from the row holding the max.
            "SELECT worker_id, run_id, max(created_at) FROM runs WHERE runtime_id = ?"
            " GROUP BY worker_id",
            (runtime_id,),
        )
        return {str(r[0]): str(r[1]) for r in rows}

    async def open_runs(self, runtime_id: str) -> list[RunRecord]:
        """Runs not yet terminal (queued or active), oldest first."""
        rows = await self.fetchall(
            f"SELECT {RUN_COLUMNS} FROM runs WHERE runtime_id = ?"
            " AND status NOT IN ('completed', 'failed', 'cancelled') ORDER BY created_at, run_id",
            (runtime_id,),
        )
        return [run_from_row(r) for r in rows]

    async def transcript(self, ref: WorkerRef, start: int, limit: int) -> TranscriptPage:
        """Entries `start`.. (0-based) of a worker's transcript, at most `limit`."""
        return await self.transcript_of(self, ref, start, limit)

    async def transcript_of(
        self, entries: Fetches, ref: WorkerRef, start: int, limit: int
    ) -> TranscriptPage:
        """`transcript`, its length read here and its entries from `entries`, cut at that
        length (the past reads lengths from its fold and entries from the store)."""
        self._check("transcript page", limit, self.max_transcript)
        if start < 0:
            raise StoreError(f"transcript start must be 0 or more (got {start})")
        total_row = await self.fetchone(
            "SELECT transcript_len FROM workers WHERE runtime_id = ? AND worker_id = ?",
            (ref.runtime_id, ref.worker_id),
        )
        total = int(total_row[0]) if total_row else 0
        rows = await entries.fetchall(
            "SELECT runtime_id, worker_id, sequence, role, content, event_id, run_id, at"
            " FROM transcript WHERE runtime_id = ? AND worker_id = ? AND sequence > ?"
            " AND sequence <= ? ORDER BY sequence LIMIT ?",
            (ref.runtime_id, ref.worker_id, start, total, limit),
        )
        items = transcript_from_rows(rows)
        end = start + len(items)
        return construct(TranscriptPage, {
            "ref": ref, "start": start, "limit": limit, "items": items, "total_items": total,
            "next_start": end if end < total else None,
        })

    async def diagnostics(self, runtime_id: str, limit: int = 1000) -> list[Diagnostic]:
        self._check("diagnostic list", limit, self.max_batch)
        rows = await self.fetchall(
            "SELECT id, runtime_id, severity, code, message, worker_id, event_id, at"
            " FROM diagnostics WHERE runtime_id = ? ORDER BY id DESC LIMIT ?",
            (runtime_id, limit),
        )
        return diagnostics_from_rows(rows)

    async def diagnostic_count(self, runtime_id: str) -> int:
        row = await self.fetchone(
            "SELECT count(*) FROM diagnostics WHERE runtime_id = ?", (runtime_id,)
        )
        return int(row[0]) if row else 0

    # -- the command inbox ----------------------------------------------------

    async def pending_commands(self, runtime_id: str, limit: int | None = None) -> list[Event]:
        """The `command.issued` events of `runtime_id` still pending, oldest first.

        At most `limit` (default: the batch maximum); a host takes the next ones
        after settling these. Through the partial index of pending commands, so
        the cost is the backlog's, not the history's.
        """
        limit = self.max_batch if limit is None else limit
        self._check("pending command list", limit, self.max_batch)
        if not await self._commands_table():
            return []
        rows = await self.fetchall(
            f"SELECT {EVENT_COLUMNS} FROM commands c"
            " JOIN events e ON e.position = c.issued_position WHERE c.runtime_id = ? AND c.status = 'pending' ORDER BY c.issued_position LIMIT ?",
            (runtime_id, limit),
        )
        return events_from_rows(rows)

    async def command_state(self, command_id: str) -> CommandState | None:
        """Where the command stands (None: never issued), with its issue and outcome events."""
        if not await self._commands_table():
            return None
        row = await self.fetchone(
            "SELECT c.command_id, c.runtime_id, c.op, c.status, c.worker_id, c.expires_at,"
            f" {event_columns('i')}, {event_columns('o')} FROM commands c"
            " JOIN events i ON i.position = c.issued_position"
            " LEFT JOIN events o ON o.position = c.outcome_position WHERE c.command_id = ?",
            (command_id,),
        )
        if row is None:
            return None
        issued, outcome = row[6:18], row[18:30]
        [issued_event, *outcome_events] = events_from_rows(
            [issued, outcome] if outcome[0] is not None else [issued]
        )
        return CommandState(
            command_id=row[0], runtime_id=row[1], op=row[2], status=row[3], worker_id=row[4],
            issued=issued_event, outcome=outcome_events[0] if outcome_events else None,
            expires_at=dt_from_us(row[5]),
        )

    async def _commands_table(self) -> bool:
        """Whether the file has the `commands` table yet.

        A writer migrates on open, but an observer (read-only) may be watching a
        schema-1 file that an older agentdeck still writes: it has no commands,
        and saying so beats a "no such table" error.
        """
        if not self._has_commands:
            found = await self.fetchone(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'commands'"
            )
            self._has_commands = found is not None
        return self._has_commands

    async def _activity_table(self) -> bool:
        """Whether the file has the pictures' schema (3) yet: `activity`, `runs.ended_at`
        (an observer does not migrate a file an older agentdeck still writes)."""
        if not self._has_activity:
            found = await self.fetchone(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'activity'"
            )
            self._has_activity = found is not None
        return self._has_activity

    async def hosts(self) -> dict[str, HostLease]:
        rows = await self.fetchall(
            "SELECT runtime_id, pid, host_name, started_at, heartbeat_at FROM hosts"
        )
        return {r[0]: host_from_row(r) for r in rows}


WORKER_COLUMNS = (
    "runtime_id, worker_id, status, spec, transcript_len, queued, current_run_id,"
    " current_run_status, terminal_event_id, last_seq, created_at, updated_at"
)
RUN_COLUMNS = (
    "runtime_id, run_id, worker_id, status, prompt, input_sequence, result_text, error,"
    " last_run_seq, created_at, updated_at"
)
