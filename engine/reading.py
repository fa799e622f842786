"""Reads of one runtime: records, pages, batches and subscriptions, bounded by its limits.

Everything here comes from the store (the log and its projections), never
from the host's in-memory picture, except which workers exist, so a read
answers the same in any process that opens the database.
"""

from __future__ import annotations

from engine.errors import (
    InvalidRequest,
    LimitTooLarge,
    WorkerNotFound,
    WrongRuntime,
    WrongRuntimeCursor,
)
from engine.results import EventBatch, EventCursor
from engine.rooms import Room
from engine.scheduling import Scheduler
from store.feed import Subscription
from store.interface import EventLog
from store.models import (
    Diagnostic,
    Limits,
    RunRecord,
    RuntimeSummary,
    TranscriptPage,
    WorkerRecord,
    WorkerRef,
)


class Reading:
    """The read side of a hosted runtime (the `Runtime` methods of the same names)."""

    def __init__(self, store: EventLog, runtime_id: str, scheduler: Scheduler) -> None:
        self._store = store
        self._runtime_id = runtime_id
        self._scheduler = scheduler

    async def summary(self) -> RuntimeSummary:
        store = self._store
        record = await store.runtime(self._runtime_id)
        assert record is not None
        hosts = await store.hosts()
        return RuntimeSummary(
            runtime=record,
            workers_by_status=await store.workers_by_status(self._runtime_id),
            diagnostic_count=await store.diagnostic_count(self._runtime_id),
            host=hosts.get(self._runtime_id),
        )

    async def worker_detail(self, ref: WorkerRef) -> WorkerRecord:
        if ref.runtime_id != self._runtime_id:
            raise WrongRuntime(self._runtime_id, ref.runtime_id)
        record = await self._store.worker(self._runtime_id, ref.worker_id)
        if record is None:
            raise WorkerNotFound(self._runtime_id, ref.worker_id)
        return record

    async def transcript_page(
        self, ref: WorkerRef, start: int, limit: int, limits: Limits
    ) -> TranscriptPage:
        maximum = limits.max_transcript_projection_items
        if limit > maximum:
            raise LimitTooLarge("transcript page", limit, maximum)
        self._scheduler.worker(ref)
        if start < 0 or limit < 1:
            raise InvalidRequest("transcript pages need start >= 0 and limit >= 1")
        return await self._store.transcript(ref, start, limit)

    async def read_events(self, cursor: EventCursor, limit: int, limits: Limits) -> EventBatch:
        runtime_id = self._runtime_id
        if cursor.runtime_id != runtime_id:
            raise WrongRuntimeCursor(runtime_id, cursor.runtime_id)
        maximum = limits.max_event_batch_items
        if limit > maximum:
            raise LimitTooLarge("event batch", limit, maximum)
        if limit < 1:
            raise InvalidRequest("event batches need limit >= 1")
        # Read exactly `limit`, then look one event further only if the batch is full:
        # asking the store for limit + 1 broke a batch of exactly the maximum (the
        # store refuses more than its own maximum, which is the default limit).
        events = await self._store.read_runtime(runtime_id, cursor.next_seq - 1, limit)
        next_seq = events[-1].seq + 1 if events else cursor.next_seq
        has_more = len(events) == limit and bool(
            await self._store.read_runtime(runtime_id, next_seq - 1, 1)
        )
        return EventBatch(
            runtime_id=runtime_id,
            events=events,
            cursor=EventCursor(runtime_id=runtime_id, next_seq=next_seq),
            has_more=has_more,
        )

    async def diagnostics(self, limit: int) -> list[Diagnostic]:
        return await self._store.diagnostics(self._runtime_id, limit)

    async def runs(self, ref: WorkerRef, limit: int) -> list[RunRecord]:
        self._scheduler.worker(ref)
        return await self._store.runs(self._runtime_id, ref.worker_id, limit)

    # -- following -----------------------------------------------------------------

    def subscribe(self, room: Room | None, after_position: int) -> Subscription:
        room = room or Room(self._runtime_id)
        if room.runtime_id != self._runtime_id:
            raise WrongRuntime(self._runtime_id, room.runtime_id)
        return self._store.subscribe(after_position, room.filter())

    async def subscribe_cursor(self, cursor: EventCursor, room: Room | None) -> Subscription:
        if cursor.runtime_id != self._runtime_id:
            raise WrongRuntimeCursor(self._runtime_id, cursor.runtime_id)
        return self.subscribe(room, await self._position_before_seq(cursor.next_seq))

    async def subscribe_run(self, run_id: str, after_run_seq: int) -> Subscription:
        position = 0
        if after_run_seq > 0:
            found = await self._store.read_run(self._runtime_id, run_id, after_run_seq - 1, 1)
            position = found[0].position if found else 0
        run = await self._store.run(self._runtime_id, run_id)
        worker_id = run.worker_id if run else None
        return self.subscribe(Room(self._runtime_id, worker_id, run_id), position)

    async def _position_before_seq(self, next_seq: int) -> int:
        if next_seq <= 1:
            return 0
        found = await self._store.read_runtime(self._runtime_id, next_seq - 2, 1)
        return found[0].position if found else 0
