"""`StorePast`: the PastView (store.past) of either back end.

The mutable projections (runtimes, workers, runs, commands) come from a scratch
in-memory SQLite database: the newest good checkpoint at or before the position
(store.checkpoints) plus a fold of the events after it. The rest needs no fold,
because the fold only ever appends to it: the log is the store's events up to
the position, the transcript of a worker is its entries up to the worker's
`transcript_len` at that position, and diagnostics are those with an id (their
event's position) up to it. Those are read from the store itself, so a past
view costs a checkpoint's rows in memory, not a copy of the history.

Moving is cheap: the checkpoint is loaded inside a transaction and marked with
a SAVEPOINT, and so is every MARK_EVERY-th position the fold passes, so moving
forward within the checkpoint's window folds only the new events and moving
back rolls back to the nearest mark and folds again from there (fewer than
MARK_EVERY events); only crossing into another checkpoint's window loads again.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

from store import catalog
from store.checkpoints import (
    TABLES,
    attach,
    columns,
    fold_events,
    load_attached,
    load_state,
    new_scratch,
    read_chain,
    snapshot,
)
from store.codec import dt_from_us, normal_row
from store.errors import StoreClosed, StoreError
from store.filters import Filter
from store.models import (
    Batch,
    Diagnostic,
    Event,
    RunRecord,
    RuntimeRecord,
    TranscriptPage,
    WorkerRecord,
    WorkerRef,
)
from store.past import Step
from store.projector import Connection
from store.reader import DEFAULT_MAX_BATCH, DEFAULT_MAX_TRANSCRIPT, Reader
from store.records import construct, diagnostics_from_rows
from store.schema import PROJECTIONS

T = TypeVar("T")

RUN_KINDS = tuple(
    sorted(
        kind for kind, spec in catalog.CATALOG.items()
        if spec.run_status is not None
        and (spec.run_status.value == "created" or spec.run_status.terminal)
    )
)
"""The kinds Step.RUN stops at: an event that creates or ends a run."""

MINUTE_US = 60_000_000
MARK_EVERY = 500  # positions between savepoints of a view's fold (a step back refolds < this)
OUT_OF_ORDER_WINDOW = 1_000  # positions after a time's crossing searched for a later `at` at or before it


class Source(Protocol):
    """What a view reads the store through: the store's own async reads."""

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]: ...

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> tuple[Any, ...] | None: ...

    async def last_position(self) -> int: ...

    async def read_after(self, position: int, limit: int, flt: Filter | None = None) -> Batch: ...

    async def read_before(
        self, position: int, limit: int, flt: Filter | None = None
    ) -> list[Event]: ...


async def position_at(store: Source, at_us: int) -> int:
    """The last position committed at or before `at_us` (0 if none).

    `at` has no index (store.schema): positions are gap-free and `at` follows them
    closely, so a binary search over positions finds where time crosses `at_us`
    in ~20 primary-key lookups; an event a little out of time order just after
    the crossing (producers' clocks) is then looked for in a short window.
    """
    last = await store.last_position()
    low, high = 0, last  # at(low) <= at_us (position 0: before everything); at(high+1) > at_us
    if last == 0:
        return 0
    if await _at(store, last) <= at_us:
        return last
    high = last - 1
    while low < high:
        middle = (low + high + 1) // 2
        if await _at(store, middle) <= at_us:
            low = middle
        else:
            high = middle - 1
    row = await store.fetchone(
        "SELECT max(position) FROM events WHERE position > ? AND position <= ? AND at <= ?",
        (low, low + OUT_OF_ORDER_WINDOW, at_us),
    )
    return int(row[0]) if row and row[0] is not None else low


async def _at(store: Source, position: int) -> int:
    row = await store.fetchone("SELECT at FROM events WHERE position = ?", (position,))
    if row is None:
        raise StoreError(f"the log has no event at position {position} (a hole in the log)")
    return int(row[0])


class _ScratchReads(Reader):
    """store.reader.Reader's projection queries, run on the view's scratch database."""

    def __init__(self, view: StorePast) -> None:  # not Reader.__init__: no file
        self.max_batch = DEFAULT_MAX_BATCH
        self.max_transcript = DEFAULT_MAX_TRANSCRIPT
        self._has_commands = True
        self._view = view

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        values = tuple(params)
        return await self._view._in_thread(
            lambda: [tuple(r) for r in self._view._require_scratch().execute(sql, values)]
        )


class StorePast:
    """The projections and the log as they were just after the event at `position`."""

    def __init__(
        self,
        store: Source,
        connect: Callable[[], Connection],
        close: Callable[[Connection], None],
        attach_file: Path | None = None,
    ) -> None:
        self._store = store
        self._attach_file = attach_file  # the store's SQLite file: checkpoints load in SQL
        self._connect = connect
        self._close_source = close
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agentdeck-past")
        self._source: Connection | None = None
        self._scratch: sqlite3.Connection | None = None
        self._base = -1  # the checkpoint loaded (-1: none yet)
        self._folded = 0  # the scratch holds the state just after this position
        self._good: list[int] = []  # good checkpoints, as last read
        self._chain_limit = -1  # the position they were read up to
        self._marks: list[int] = []  # savepoints made while folding on (positions, ascending)
        self._position = 0
        self._at: datetime | None = None
        self._newest = 0
        self._reads = _ScratchReads(self)
        self._moving = asyncio.Lock()
        self.loads = 0  # checkpoint loads so far (tests, benchmarks)
        self.folded_events = 0  # events folded so far (tests, benchmarks)

    async def _in_thread(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    def _require_scratch(self) -> sqlite3.Connection:
        if self._scratch is None:
            raise StoreClosed()
        return self._scratch

    # -- where it is --------------------------------------------------------------

    @property
    def position(self) -> int:
        return self._position

    @property
    def at(self) -> datetime | None:
        return self._at

    @property
    def newest(self) -> int:
        return self._newest

    @property
    def base(self) -> int:
        """The checkpoint the state was loaded from (0: folded from the start)."""
        return self._base

    async def move_to(self, position: int) -> None:
        # One move at a time: keys pressed faster than a move finishes queue up, and
        # `position` always names the state the scratch holds once a move returns.
        async with self._moving:
            self._newest = await self._store.last_position()
            target = max(0, min(position, self._newest))
            await self._in_thread(lambda: self._move(target, self._newest))
            self._position = target
            self._at = None if target == 0 else dt_from_us(await _at(self._store, target))

    def _move(self, target: int, newest: int) -> None:
        for attempt in (1, 2):
            try:
                self._move_now(target, newest)
                return
            except Exception:
                # The scratch is in no known state, and the connection may be what failed
                # (a server that ended it): connect and load again, once.
                self._base = -1
                self._shut()
                if attempt == 2:
                    raise

    def _move_now(self, target: int, newest: int) -> None:
        if self._source is None:
            self._source = self._connect()
            self._scratch = new_scratch()
            if self._attach_file is not None:
                attach(self._scratch, self._attach_file)
        source, scratch = self._source, self._require_scratch()
        with snapshot(source):
            self._move_within(source, scratch, target, newest)

    def _move_within(
        self, source: Connection, scratch: sqlite3.Connection, target: int, newest: int
    ) -> None:
        if target > self._chain_limit:
            self._good = read_chain(source, newest).good
            self._chain_limit = newest
        base = max((p for p in self._good if p <= target), default=0)
        if self._base >= 0 and base == self._base and target >= self._folded:
            pass  # forward in the same window: fold on from where the scratch is
        elif self._base >= 0 and base == self._base:
            # Back in the same window: roll back to the nearest mark at or before it.
            self._marks = [m for m in self._marks if m <= target]
            if self._marks:
                scratch.execute(f"ROLLBACK TO mark_{self._marks[-1]}")
                self._folded = self._marks[-1]
            else:
                scratch.execute("ROLLBACK TO base")
                self._folded = self._base
        else:
            if scratch.in_transaction:
                scratch.execute("ROLLBACK")
            scratch.execute("BEGIN")
            if self._attach_file is not None:
                loaded = load_attached(scratch, target)
            else:
                loaded = load_state(source, scratch, target)
            if loaded != base:
                # A damaged checkpoint, found only now: never offer it again.
                self._good = [p for p in self._good if p <= loaded]
            self.loads += 1
            scratch.execute("SAVEPOINT base")
            self._base = self._folded = loaded
            self._marks = []
        while self._folded < target:
            # A savepoint every MARK_EVERY positions: a step back refolds at most that many.
            mark = (self._folded // MARK_EVERY + 1) * MARK_EVERY
            upto = min(target, mark)
            self.folded_events += fold_events(source, scratch, self._folded, upto)
            self._folded = upto
            if upto == mark:
                scratch.execute(f"SAVEPOINT mark_{mark}")
                self._marks.append(mark)

    async def step(self, unit: Step, direction: int) -> bool:
        forward = direction > 0
        newest = await self._store.last_position()
        here = self._position
        target: int | None
        if unit is Step.EVENT:
            target = here + 1 if forward else here - 1
        elif unit is Step.RUN:
            target = await self._run_event(here, forward)
        else:
            target = await self._minute(here, forward, newest)
        if target is None or target < 0 or target > newest or target == here:
            return False
        await self.move_to(target)
        return True

    async def _run_event(self, here: int, forward: bool) -> int | None:
        found: list[int] = []
        for kind in RUN_KINDS:  # one indexed probe per kind (events_by_kind)
            row = await self._store.fetchone(
                f"SELECT {'min' if forward else 'max'}(position) FROM events"
                f" WHERE kind = ? AND position {'>' if forward else '<'} ?",
                (kind, here),
            )
            if row and row[0] is not None:
                found.append(int(row[0]))
        if not found:
            return None
        return min(found) if forward else max(found)

    async def _minute(self, here: int, forward: bool, newest: int) -> int | None:
        if forward:
            if here >= newest:
                return None
            now = await _at(self._store, here) if here > 0 else await _at(self._store, 1)
            return max(here + 1, await position_at(self._store, now + MINUTE_US))
        if here == 0:
            return None
        target = await position_at(self._store, await _at(self._store, here) - MINUTE_US)
        return min(target, here - 1)

    # -- reads, as of `position` ---------------------------------------------------

    async def last_position(self) -> int:
        return self._position

    async def read_after(self, position: int, limit: int, flt: Filter | None = None) -> Batch:
        batch = await self._store.read_after(position, limit, flt)
        events = [e for e in batch.events if e.position <= self._position]
        if len(events) == len(batch.events):
            return batch
        last = events[-1].position if events else position
        cursor = batch.cursor.model_copy(update={"position": last})
        return construct(Batch, {"events": events, "cursor": cursor, "has_more": False})

    async def read_before(
        self, position: int, limit: int, flt: Filter | None = None
    ) -> list[Event]:
        return await self._store.read_before(min(position, self._position + 1), limit, flt)

    async def runtimes(self) -> list[RuntimeRecord]:
        return await self._reads.runtimes()

    async def runtime(self, runtime_id: str) -> RuntimeRecord | None:
        return await self._reads.runtime(runtime_id)

    async def workers(self, runtime_id: str) -> list[WorkerRecord]:
        return await self._reads.workers(runtime_id)

    async def worker(self, runtime_id: str, worker_id: str) -> WorkerRecord | None:
        return await self._reads.worker(runtime_id, worker_id)

    async def runs(self, runtime_id: str, worker_id: str, limit: int = 100) -> list[RunRecord]:
        return await self._reads.runs(runtime_id, worker_id, limit)

    async def transcript(self, ref: WorkerRef, start: int, limit: int) -> TranscriptPage:
        # Its length then (the fold), its entries from the store (append-only), cut there.
        return await self._reads.transcript_of(self._store, ref, start, limit)

    async def diagnostics(self, runtime_id: str, limit: int = 1000) -> list[Diagnostic]:
        self._reads._check("diagnostic list", limit, self._reads.max_batch)
        rows = await self._store.fetchall(
            "SELECT id, runtime_id, severity, code, message, worker_id, event_id, at"
            " FROM diagnostics WHERE runtime_id = ? AND id <= ? ORDER BY id DESC LIMIT ?",
            (runtime_id, self._position, limit),
        )
        return diagnostics_from_rows(rows)

    async def diagnostic_count(self, runtime_id: str) -> int:
        row = await self._store.fetchone(
            "SELECT count(*) FROM diagnostics WHERE runtime_id = ? AND id <= ?",
            (runtime_id, self._position),
        )
        return int(row[0]) if row else 0

    async def tables(self) -> dict[str, list[tuple[object, ...]]]:
        out: dict[str, list[tuple[object, ...]]] = {}
        scratch = self._require_scratch()
        for table, order in PROJECTIONS.items():
            if table == "activity":
                continue
            cols = ", ".join(await self._in_thread(partial(columns, scratch, table)))
            if table in TABLES:
                out[table] = await self._reads.fetchall(
                    f"SELECT {cols} FROM {table} ORDER BY {order}"
                )
            elif table == "diagnostics":
                rows = await self._store.fetchall(
                    f"SELECT {cols} FROM diagnostics WHERE id <= ? ORDER BY {order}",
                    (self._position,),
                )
                out[table] = [normal_row(r) for r in rows]
            else:  # transcript: each worker's entries up to its length at the position
                lengths = {
                    (str(r[0]), str(r[1])): int(r[2])
                    for r in await self._reads.fetchall(
                        "SELECT runtime_id, worker_id, transcript_len FROM workers"
                    )
                }
                rows = await self._store.fetchall(f"SELECT {cols} FROM {table} ORDER BY {order}")
                out[table] = [
                    normal_row(r) for r in rows if r[2] <= lengths.get((str(r[0]), str(r[1])), 0)
                ]
        return out

    def _shut(self) -> None:
        if self._scratch is not None:
            self._scratch.close()
            self._scratch = None
        if self._source is not None:
            with contextlib.suppress(Exception):
                self._close_source(self._source)
            self._source = None
        self._chain_limit = -1

    async def close(self) -> None:
        with contextlib.suppress(RuntimeError):  # the executor is gone already: closed twice
            await self._in_thread(self._shut)
        self._executor.shutdown(wait=False)


async def open_past(
    store: Source,
    connect: Callable[[], Connection],
    close: Callable[[Connection], None],
    position: int,
    attach_file: Path | None = None,
) -> StorePast:
    """A view at `position` (clamped to the log); close it when done. `attach_file`: the
    store's SQLite file, attached to the scratch so checkpoints load in SQL."""
    view = StorePast(store, connect, close, attach_file)
    try:
        await view.move_to(position)
    except BaseException:
        await view.close()
        raise
    return view

