"""The single writer: one connection, one thread, group commit.

Producers enqueue appends and await their own future. The writer task takes
everything that has gathered and commits it as one `BEGIN IMMEDIATE`
transaction in its thread, so one fsync serves a burst. Each append gets its
own answer: a stale expected sequence or a lost host lease (`fence`) fails
only that append, and if the optimistic batch hits a constraint or a fold
refuses an event the batch is replayed append by append under savepoints so
one bad append cannot fail its neighbours.

The commit runs as a single call into a dedicated thread (not one aiosqlite
call per statement): a batch is dozens of statements, and a thread hop per
statement would cost more than the statements.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from store import catalog, records
from store.catalog import Payload
from store.codec import dump_payload, us_from_dt
from store.database import OpenOptions, close_quietly, open_writer, translate
from store.errors import (
    AppendRejected,
    DuplicateEvent,
    HostFenced,
    SequenceConflict,
    StoreClosed,
    StoreError,
)
from store.models import Event, NewEvent
from store.projector import INSERT_EVENT, Row, project

T = TypeVar("T")

MAX_BATCH_EVENTS = 5000
GATHER_TURNS = 3
CHECKPOINT_EVERY_S = 5.0
CHECKPOINT_BUSY_MS = 200


@dataclass
class _Append:
    runtime_id: str
    expected_seq: int | None
    events: Sequence[NewEvent]
    typed: list[Payload]  # each event's payload as its catalog model (checked at submit)
    future: asyncio.Future[list[Event]]
    fence: str | None = None  # the appending host's lease token, checked at commit


@dataclass
class _Job:
    fn: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]


@dataclass
class _Outcome:
    rows: list[Row] = field(default_factory=list)
    error: StoreError | None = None


class Writer:
    """Owns the write connection. Start with `await start()`, end with `await close()`."""

    def __init__(
        self,
        path: Path,
        options: OpenOptions,
        on_commit: Callable[[list[Event]], None],
        max_batch_events: int = MAX_BATCH_EVENTS,
    ) -> None:
        self._path = path
        self._options = options
        self._on_commit = on_commit
        self._max_batch = max_batch_events
        self._pending: deque[_Append | _Job] = deque()
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agentdeck-writer")
        self._conn: sqlite3.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._last_checkpoint = time.monotonic()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._conn = await loop.run_in_executor(
            self._executor, open_writer, self._path, self._options
        )
        self._task = asyncio.create_task(self._run(), name="agentdeck-writer")

    async def append(
        self,
        runtime_id: str,
        expected_seq: int | None,
        events: Sequence[NewEvent],
        *,
        fence: str | None = None,
    ) -> list[Event]:
        """Append `events` to `runtime_id`'s log if its last seq is `expected_seq`.

        `expected_seq=None` appends at the end whatever it is. `fence`, a host's
        lease token, makes the append fail with HostFenced unless the `hosts`
        row of the runtime still holds that token when it commits: how a host
        writes once other processes (issuing consoles) append to its runtime
        too and it can no longer predict the seq. Returns the committed
        events, durable.
        """
        return await self.submit(runtime_id, expected_seq, events, fence=fence)

    def submit(
        self,
        runtime_id: str,
        expected_seq: int | None,
        events: Sequence[NewEvent],
        *,
        fence: str | None = None,
    ) -> asyncio.Future[list[Event]]:
        """Queue an append now (synchronously, so callers fix their order); await the future.

        Raises InvalidEvent at once, queuing nothing, if any of `events` is not
        in the event catalog or its payload does not fit its kind.
        """
        if self._closing or self._task is None:
            raise StoreClosed()
        typed = [catalog.check(ev.kind, ev.payload) for ev in events]
        future: asyncio.Future[list[Event]] = asyncio.get_running_loop().create_future()
        self._pending.append(_Append(runtime_id, expected_seq, events, typed, future, fence))
        self._wake.set()
        return future

    async def run_job(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` in the writer's thread, in its own transaction, in queue order."""
        if self._closing or self._task is None:
            raise StoreClosed()
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append(_Job(fn, future))
        self._wake.set()
        return await future

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        loop = asyncio.get_running_loop()
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await loop.run_in_executor(self._executor, self._final_checkpoint, conn)
        self._executor.shutdown(wait=True)

    # -- the writer task ---------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wake.clear()
                if not self._pending:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), CHECKPOINT_EVERY_S)
                    if not self._pending:
                        await loop.run_in_executor(self._executor, self._maybe_checkpoint)
                        continue
                # Woken by the first append of a burst: give producers that are a
                # few loop turns behind it (a task finishing, the next one starting)
                # the chance to join this commit instead of waiting for the next fsync.
                for _ in range(GATHER_TURNS):
                    await asyncio.sleep(0)
            head = self._pending[0]
            if isinstance(head, _Job):
                self._pending.popleft()
                await self._do_job(loop, head)
                continue
            batch: list[_Append] = []
            count = 0
            while (
                self._pending and isinstance(self._pending[0], _Append) and count < self._max_batch
            ):
                item = self._pending.popleft()
                assert isinstance(item, _Append)
                batch.append(item)
                count += len(item.events)
            outcomes = await loop.run_in_executor(self._executor, self._commit, batch)
            committed: list[Event] = []
            for item, outcome in zip(batch, outcomes, strict=True):
                if outcome.error is not None:
                    _settle(item.future, error=outcome.error)
                else:
                    events = records.events_from_rows(r.column_values() for r in outcome.rows)
                    committed.extend(events)
                    _settle(item.future, result=events)
            if committed:
                self._on_commit(committed)

    async def _do_job(self, loop: asyncio.AbstractEventLoop, job: _Job) -> None:
        try:
            result = await loop.run_in_executor(self._executor, self._job, job.fn)
        except StoreError as exc:
            _settle(job.future, error=exc)
        except Exception as exc:  # a job's own bug must not kill the writer
            _settle(job.future, error=exc)
        else:
            _settle(job.future, result=result)

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

    def _commit(self, batch: list[_Append]) -> list[_Outcome]:
        conn = self._require_conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            error = translate(exc, self._path, self._options.busy_timeout_s)
            return [_Outcome(error=error) for _ in batch]
        try:
            try:
                outcomes = self._apply(conn, batch, isolate=False)
            except Exception as exc:
                # Not only a constraint but any append the projection cannot fold (one
                # the catalog accepts but the fold cannot place, such as a worker.created
                # without a worker id) is found by replaying append by append, so it
                # fails alone instead of killing the writer task and leaving every
                # caller waiting.
                if isinstance(exc, sqlite3.Error) and not isinstance(exc, sqlite3.IntegrityError):
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
            return [_Outcome(error=error) for _ in batch]

    def _apply(
        self, conn: sqlite3.Connection, batch: list[_Append], isolate: bool
    ) -> list[_Outcome]:
        next_position = (
            conn.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()[0] + 1
        )
        last_seq: dict[str, int] = {}
        tokens: dict[str, str | None] = {}  # each fenced runtime's lease token, read once
        outcomes: list[_Outcome] = []
        accepted: list[Row] = []
        for item in batch:
            if item.fence is not None and _lease_token(conn, tokens, item.runtime_id) != item.fence:
                outcomes.append(_Outcome(error=HostFenced(item.runtime_id)))
                continue
            current = last_seq.get(item.runtime_id)
            if current is None:
                current = conn.execute(
                    "SELECT coalesce(max(seq), 0) FROM events WHERE runtime_id = ?",
                    (item.runtime_id,),
                ).fetchone()[0]
                last_seq[item.runtime_id] = current
            if item.expected_seq is not None and item.expected_seq != current:
                outcomes.append(
                    _Outcome(error=SequenceConflict(item.runtime_id, item.expected_seq, current))
                )
                continue
            try:
                rows = _rows(item, next_position, current)
            except (TypeError, ValueError) as exc:
                # A payload JSON cannot encode (a datetime, a set) is this append's
                # error, not one that kills the writer task.
                outcomes.append(_Outcome(error=AppendRejected(f"append rejected: {exc}")))
                continue
            if isolate:
                conn.execute("SAVEPOINT one_append")
                try:
                    conn.executemany(INSERT_EVENT, [r.column_values() for r in rows])
                    project(conn, rows)
                except Exception as exc:
                    if isinstance(exc, sqlite3.Error) and not isinstance(
                        exc, sqlite3.IntegrityError
                    ):
                        raise
                    conn.execute("ROLLBACK TO one_append")
                    conn.execute("RELEASE one_append")
                    outcomes.append(_Outcome(error=_rejection(exc, rows)))
                    continue
                conn.execute("RELEASE one_append")
            else:
                accepted.extend(rows)
            next_position += len(rows)
            last_seq[item.runtime_id] = current + len(rows)
            outcomes.append(_Outcome(rows=rows))
        if not isolate and accepted:
            conn.executemany(INSERT_EVENT, [r.column_values() for r in accepted])
            project(conn, accepted)
        return outcomes

    def _maybe_checkpoint(self) -> None:
        if time.monotonic() - self._last_checkpoint < CHECKPOINT_EVERY_S or self._conn is None:
            return
        self._checkpoint(self._conn)

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

    def _final_checkpoint(self, conn: sqlite3.Connection) -> None:
        self._checkpoint(conn)
        close_quietly(conn)

    def _require_conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreClosed()
        return self._conn


def _rows(item: _Append, first_position: int, last_seq: int) -> list[Row]:
    rows = []
    for i, (ev, typed) in enumerate(zip(item.events, item.typed, strict=True)):
        payload_json = dump_payload(ev.payload)
        rows.append(
            Row(
                first_position + i,
                item.runtime_id,
                last_seq + 1 + i,
                str(ev.event_id),
                ev.kind,
                catalog.level_of(ev.kind, ev.payload).rank,
                ev.worker_id,
                ev.run_id,
                ev.run_seq,
                ev.message,
                payload_json,
                us_from_dt(ev.at),
                # No decoded payload: the folds use `typed`, and the Event the
                # appender and live subscribers get decodes the stored JSON when
                # read, so it equals the one replay reads later (a tuple becomes a
                # list either way) and no one shares the producer's mutable dict.
                None,
                typed,
            )
        )
    return rows


def _lease_token(
    conn: sqlite3.Connection, tokens: dict[str, str | None], runtime_id: str
) -> str | None:
    """The token of `runtime_id`'s host lease (None: no host), read once per batch.

    Read inside the commit's write transaction, so no claim can slip between
    the check and the rows; nothing in a batch changes `hosts` (leases are
    writer jobs, committed between batches), so one read serves the batch.
    """
    if runtime_id not in tokens:
        row = conn.execute("SELECT token FROM hosts WHERE runtime_id = ?", (runtime_id,)).fetchone()
        tokens[runtime_id] = None if row is None else str(row[0])
    return tokens[runtime_id]


def _rejection(exc: Exception, rows: list[Row]) -> StoreError:
    if isinstance(exc, AppendRejected):
        # A fold's own refusal (a command settled twice, an id that does not fit)
        # already says what happened: the appender matches on its class.
        return exc
    if isinstance(exc, sqlite3.IntegrityError) and "events.event_id" in str(exc):
        seen = {r.event_id for r in rows}
        return DuplicateEvent(next(iter(seen)) if len(seen) == 1 else ", ".join(sorted(seen)))
    if not isinstance(exc, sqlite3.Error):
        kinds = ", ".join(sorted({r.kind for r in rows}))
        return AppendRejected(f"append rejected: its {kinds} event(s) cannot be stored ({exc!r})")
    return AppendRejected(f"append rejected by the store: {exc}")


def _settle(
    future: asyncio.Future[Any], *, result: Any = None, error: BaseException | None = None
) -> None:
    if future.done():
        return  # the caller gave up (cancelled); the commit stands regardless
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
