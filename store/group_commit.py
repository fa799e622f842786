"""Group commit, whatever the back end: one queue, one task, one thread, one connection.

Producers enqueue appends (and writer jobs, such as host leases) and await
their own future. The writer task takes everything that has gathered and
hands it to the back end's `_commit` as one batch, in a dedicated thread, so
one commit (one fsync) serves a burst and a batch of dozens of statements
costs one thread hop, not one per statement. Each append gets its own answer
(`Outcome`). What a batch does inside its transaction (the fence, the
expected seq, numbering, the rows and their fold, one bad append failing
alone) is `_apply`, here, once. A back end (store.writer for SQLite,
store.postgres.writer) says only how to open, begin and commit a batch, run a
job, write rows, tell its errors apart, idle and close.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from store import catalog, records
from store.catalog import Payload
from store.codec import dump_payload, holds_nul, us_from_dt
from store.errors import (
    AppendRejected,
    DuplicateEvent,
    HostFenced,
    InvalidEvent,
    ReadOnlyDatabase,
    SequenceConflict,
    StoreClosed,
    StoreError,
)
from store.models import Event, NewEvent
from store.projector import Connection, Row

T = TypeVar("T")
C = TypeVar("C")  # what a job is given: the back end's connection

MAX_BATCH_EVENTS = 5000
GATHER_TURNS = 3


@dataclass
class Append:
    """One producer's append, waiting in the queue."""

    runtime_id: str
    expected_seq: int | None
    events: Sequence[NewEvent]
    typed: list[Payload]  # each event's payload as its catalog model (checked at submit)
    future: asyncio.Future[list[Event]]
    fence: str | None = None  # the appending host's lease token, checked at commit


@dataclass
class Job(Generic[C]):
    fn: Callable[[C], Any]
    future: asyncio.Future[Any]


@dataclass
class Outcome:
    """What became of one append: its stored rows, or why it was refused."""

    rows: list[Row] = field(default_factory=list)
    error: BaseException | None = None


class GroupCommitWriter(Generic[C]):
    """The queue and the task; a back end implements the `_open` ... `_close` hooks."""

    THREAD_NAME = "agentdeck-writer"

    def __init__(
        self,
        on_commit: Callable[[list[Event]], None],
        max_batch_events: int = MAX_BATCH_EVENTS,
    ) -> None:
        self._on_commit = on_commit
        self._max_batch = max_batch_events
        self._pending: deque[Append | Job[C]] = deque()
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.THREAD_NAME)
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    # -- the back end's part (each runs in the writer thread) ---------------

    def _open(self) -> None:
        raise NotImplementedError

    def _commit(self, batch: list[Append]) -> list[Outcome]:
        """Commit `batch` in one transaction; one outcome per append, in order."""
        raise NotImplementedError

    def _job(self, fn: Callable[[C], T]) -> T:
        """Run `fn` on the connection in a transaction of its own."""
        raise NotImplementedError

    def _idle_after(self) -> float | None:
        """How long with nothing queued before `_idle` runs (None: never)."""
        return None

    def _idle(self) -> None:
        """Housekeeping when nothing was queued for a while (SQLite's checkpoint)."""

    def _close(self) -> None:
        raise NotImplementedError

    # The database driver's errors, and those of them that are one append's own
    # rows (a constraint, bad data) rather than the connection's or the disk's.
    DB_ERRORS: tuple[type[Exception], ...] = ()
    APPEND_ERRORS: tuple[type[Exception], ...] = ()

    def _write(self, conn: Connection, rows: list[Row], *, batch: bool) -> None:
        """INSERT `rows` and fold them into the projections (`batch`: a whole batch's)."""
        raise NotImplementedError

    def _is_duplicate_event(self, exc: Exception) -> bool:
        """Whether `exc` is the unique event id refusing a row."""
        raise NotImplementedError

    # -- a batch inside its transaction (in the writer thread) ----------------

    def _own_fault(self, exc: Exception) -> bool:
        """Whether `exc` may be one append's fault (replay the batch append by append),
        rather than the database's (the batch fails as a whole)."""
        return not isinstance(exc, self.DB_ERRORS) or isinstance(exc, self.APPEND_ERRORS)

    def _apply(self, conn: Connection, batch: list[Append], isolate: bool) -> list[Outcome]:
        """Number and write `batch` (in the caller's write transaction); one outcome each.

        `isolate`: each append in a savepoint of its own, so one that the database
        or the fold refuses fails alone (the replay after a batch failed).
        """
        # Read inside the write transaction: the previous commit is visible, no other.
        next_position = (
            conn.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()[0] + 1
        )
        last_seq: dict[str, int] = {}
        tokens: dict[str, str | None] = {}  # each fenced runtime's lease token, read once
        outcomes: list[Outcome] = []
        accepted: list[Row] = []
        for item in batch:
            if item.fence is not None and _lease_token(conn, tokens, item.runtime_id) != item.fence:
                outcomes.append(Outcome(error=HostFenced(item.runtime_id)))
                continue
            current = last_seq.get(item.runtime_id)
            if current is None:
                current = last_seq[item.runtime_id] = conn.execute(
                    "SELECT coalesce(max(seq), 0) FROM events WHERE runtime_id = ?",
                    (item.runtime_id,),
                ).fetchone()[0]
            if item.expected_seq is not None and item.expected_seq != current:
                outcomes.append(
                    Outcome(error=SequenceConflict(item.runtime_id, item.expected_seq, current))
                )
                continue
            try:
                rows = rows_of(item, next_position, current)
            except (TypeError, ValueError) as exc:
                # A payload JSON cannot encode (a datetime, a set) is this append's
                # error, not one that kills the writer task.
                outcomes.append(Outcome(error=AppendRejected(f"append rejected: {exc}")))
                continue
            if isolate:
                conn.execute("SAVEPOINT one_append")
                try:
                    self._write(conn, rows, batch=False)
                except Exception as exc:
                    if not self._own_fault(exc):
                        raise
                    conn.execute("ROLLBACK TO SAVEPOINT one_append")
                    conn.execute("RELEASE SAVEPOINT one_append")
                    outcomes.append(Outcome(error=self._rejection(exc, rows)))
                    continue
                conn.execute("RELEASE SAVEPOINT one_append")
            else:
                accepted.extend(rows)
            next_position += len(rows)
            last_seq[item.runtime_id] = current + len(rows)
            outcomes.append(Outcome(rows=rows))
        if not isolate and accepted:
            self._write(conn, accepted, batch=True)
        return outcomes

    def _rejection(self, exc: Exception, rows: list[Row]) -> StoreError:
        """What to tell the appender whose rows `exc` refused (in an isolated replay)."""
        if isinstance(exc, AppendRejected):
            # A fold's own refusal (a command settled twice, an id that does not fit)
            # already says what happened: the appender matches on its class.
            return exc
        if self._is_duplicate_event(exc):
            seen = {r.event_id for r in rows}
            return DuplicateEvent(next(iter(seen)) if len(seen) == 1 else ", ".join(sorted(seen)))
        if not isinstance(exc, self.DB_ERRORS):
            kinds = ", ".join(sorted({r.kind for r in rows}))
            return AppendRejected(
                f"append rejected: its {kinds} event(s) cannot be stored ({exc!r})"
            )
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return AppendRejected(f"append rejected by the store: {detail}")

    # -- producers ---------------------------------------------------------

    async def start(self) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._open)
        except BaseException:
            self._executor.shutdown(wait=False)
            raise
        self._task = asyncio.create_task(self._run(), name=self.THREAD_NAME)

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
        lease token, makes the append fail with HostFenced unless the runtime's
        lease still holds that token when it commits: how a host writes once
        other processes (issuing consoles) append to its runtime too and it can
        no longer predict the seq. Returns the committed events, durable.
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
        in the event catalog, its payload does not fit its kind, or it holds a
        NUL character (store.codec.holds_nul).
        """
        if self._closing or self._task is None:
            raise StoreClosed()
        typed = [catalog.check(ev.kind, ev.payload) for ev in events]
        for ev in events:
            if holds_nul(ev.message, ev.payload):  # ids: NewEvent's own pattern refuses one
                raise InvalidEvent(
                    ev.kind,
                    "it holds a NUL character, which PostgreSQL cannot store (refused on SQLite alike)",
                )
        future: asyncio.Future[list[Event]] = asyncio.get_running_loop().create_future()
        self._pending.append(Append(runtime_id, expected_seq, events, typed, future, fence))
        self._wake.set()
        return future

    async def run_job(self, fn: Callable[[C], T]) -> T:
        """Run `fn(conn)` in the writer's thread, in its own transaction, in queue order."""
        if self._closing or self._task is None:
            raise StoreClosed()
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append(Job(fn, future))
        self._wake.set()
        return await future

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
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
                        await asyncio.wait_for(self._wake.wait(), self._idle_after())
                    if not self._pending:
                        await loop.run_in_executor(self._executor, self._idle)
                        continue
                # Woken by the first append of a burst: give producers that are a
                # few loop turns behind it (a task finishing, the next one starting)
                # the chance to join this commit instead of waiting for the next one.
                for _ in range(GATHER_TURNS):
                    await asyncio.sleep(0)
            head = self._pending[0]
            if isinstance(head, Job):
                self._pending.popleft()
                await self._do_job(loop, head)
                continue
            batch: list[Append] = []
            count = 0
            while (
                self._pending and isinstance(self._pending[0], Append) and count < self._max_batch
            ):
                item = self._pending.popleft()
                assert isinstance(item, Append)
                batch.append(item)
                count += len(item.events)
            outcomes = await loop.run_in_executor(self._executor, self._commit, batch)
            committed: list[Event] = []
            for item, outcome in zip(batch, outcomes, strict=True):
                if outcome.error is not None:
                    settle(item.future, error=outcome.error)
                else:
                    events = records.events_from_rows(r.column_values() for r in outcome.rows)
                    committed.extend(events)
                    settle(item.future, result=events)
            if committed:
                self._on_commit(committed)

    async def _do_job(self, loop: asyncio.AbstractEventLoop, job: Job[C]) -> None:
        try:
            result = await loop.run_in_executor(self._executor, self._job, job.fn)
        except Exception as exc:  # a job's own bug must not kill the writer
            settle(job.future, error=exc)
        else:
            settle(job.future, result=result)


def _lease_token(conn: Connection, tokens: dict[str, str | None], runtime_id: str) -> str | None:
    """The token of `runtime_id`'s host lease (None: no host), read once per batch.

    Read inside the batch's write transaction (SQLite's write lock, PostgreSQL's
    append lock, which lease jobs take too), so no claim can commit between this
    check and the rows; nothing in a batch changes `hosts`, so one read serves it.
    """
    if runtime_id not in tokens:
        row = conn.execute("SELECT token FROM hosts WHERE runtime_id = ?", (runtime_id,)).fetchone()
        tokens[runtime_id] = None if row is None else str(row[0])
    return tokens[runtime_id]


def rows_of(item: Append, first_position: int, last_seq: int) -> list[Row]:
    """The stored rows of `item`'s events, at `first_position` after seq `last_seq`."""
    rows = []
    for i, (ev, typed) in enumerate(zip(item.events, item.typed, strict=True)):
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
                dump_payload(ev.payload),
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


def settle(
    future: asyncio.Future[Any], *, result: Any = None, error: BaseException | None = None
) -> None:
    if future.done():
        return  # the caller gave up (cancelled); the commit stands regardless
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class WritesThrough(Generic[C]):
    """What a store (either back end) writes with: its group-commit writer, or none
    when it was opened read-only (an observer) or is closed."""

    _writer: GroupCommitWriter[C] | None
    read_only: bool

    @property
    def label(self) -> str:
        raise NotImplementedError

    def _require_writer(self) -> GroupCommitWriter[C]:
        if self._writer is None:
            if not self.read_only:
                raise StoreClosed()  # closed, not an observer: say so rather than "read-only"
            raise ReadOnlyDatabase(self.label, "it was opened read-only, as an observer")
        return self._writer

    async def append(
        self,
        runtime_id: str,
        expected_seq: int | None,
        events: Sequence[NewEvent],
        *,
        fence: str | None = None,
    ) -> list[Event]:
        """Append to a runtime's log if its last seq is `expected_seq` (None: at the end);
        with `fence`, only while that token holds the runtime's lease (else HostFenced)."""
        return await self._require_writer().append(runtime_id, expected_seq, events, fence=fence)

    def submit(
        self,
        runtime_id: str,
        expected_seq: int | None,
        events: Sequence[NewEvent],
        *,
        fence: str | None = None,
    ) -> asyncio.Future[list[Event]]:
        """Queue an append at once, in call order; the future settles at its commit."""
        return self._require_writer().submit(runtime_id, expected_seq, events, fence=fence)

    async def run_job(self, fn: Callable[[C], T]) -> T:
        """Run a write outside the log (host leases) in the writer's queue."""
        return await self._require_writer().run_job(fn)
