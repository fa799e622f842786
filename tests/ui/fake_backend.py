"""A small in-memory `ConsoleBackend`: the console driven with no store and no engine.

One runtime, workers that answer `echo: ...` at once, every change an event
published to subscribers. Enough to show the UI depends on the protocol only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from engine.errors import InvalidRequest, StoreFault, WorkerNotFound
from engine.results import InputAck, LifecycleAck
from engine.validation import Refusal, worker_request_refusal
from store.filters import Filter
from store.models import (
    Batch,
    Cursor,
    Diagnostic,
    Event,
    Lag,
    Limits,
    Role,
    RunRecord,
    RuntimeRecord,
    RuntimeStatus,
    TranscriptEntry,
    TranscriptPage,
    WorkerRecord,
    WorkerRef,
    WorkerSpec,
    WorkerStatus,
)
from store.pictures import (
    ERROR_WINDOW_MIN,
    RATE_WINDOW_S,
    FleetPicture,
    LevelCounts,
    WorkerPicture,
)
from tui.backend import Access, AccessMode, HandOver, LiveEvents, RuntimeRow

BASE = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


class FakeSubscription:
    def __init__(self, backend: FakeBackend, after: int) -> None:
        self._backend = backend
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        for event in backend.events:
            if event.position > after:
                self._queue.put_nowait(event)
        self.closed = False

    async def next_batch(self, limit: int = 1000) -> list[Event | Lag]:
        if self.closed:
            raise StopAsyncIteration
        out: list[Event | Lag] = [await self._queue.get()]
        while not self._queue.empty() and len(out) < limit:
            out.append(self._queue.get_nowait())
        return out

    def offer(self, event: Event) -> None:
        self._queue.put_nowait(event)

    def close(self) -> None:
        self.closed = True


class FakeBackend:
    """One runtime `mem`, operable, everything in lists."""

    label = "memory"
    default_runtime_id = "mem"
    hosted_runtime_id = "mem"
    fault: StoreFault | None = None

    def __init__(self) -> None:
        self.notices: list[str] = []
        self.events: list[Event] = []
        self.records: dict[str, WorkerRecord] = {}
        self.entries: dict[str, list[TranscriptEntry]] = {}
        self.subs: list[FakeSubscription] = []
        self.commands: list[str] = []

    def _now(self) -> datetime:
        return BASE + timedelta(seconds=len(self.events))

    def _emit(self, kind: str, worker_id: str | None, message: str, **payload: Any) -> Event:
        position = len(self.events) + 1
        event = Event(
            position=position,
            runtime_id="mem",
            seq=position,
            event_id=UUID(int=position),
            kind=kind,
            worker_id=worker_id,
            message=message,
            payload=payload,
            at=self._now(),
        )
        self.events.append(event)
        for sub in self.subs:
            sub.offer(event)
        return event

    def add_fault_listener(self, listener: Callable[[StoreFault | None], None]) -> None:
        pass

    async def hosted(self) -> None:
        return None

    async def take_over(self) -> str | None:
        return None  # this backend always operates its one runtime

    def access(self, runtime_id: str) -> Access:
        return Access(AccessMode.HOSTED, True)

    def work_in_progress(self) -> tuple[list[str], int]:
        return [], 0

    async def hand_over(self) -> HandOver | None:
        return None  # nothing runs in another process here: there is nothing to hand over

    # -- queries --------------------------------------------------------------

    async def last_position(self) -> int:
        return len(self.events)

    def _matching(self, flt: Filter | None) -> list[Event]:
        return [e for e in self.events if flt is None or flt.is_empty or flt.matches(e)]

    async def read_after(self, position: int, limit: int, flt: Filter | None = None) -> Batch:
        found = [e for e in self._matching(flt) if e.position > position]
        page = found[:limit]
        end = page[-1].position if page else max(position, len(self.events))
        return Batch(events=page, cursor=Cursor(position=end), has_more=len(found) > limit)

    async def read_before(
        self, position: int, limit: int, flt: Filter | None = None
    ) -> list[Event]:
        found = [e for e in self._matching(flt) if e.position < position]
        return list(reversed(found[-limit:]))

    async def transcript(self, ref: WorkerRef, start: int, limit: int) -> TranscriptPage:
        items = self.entries.get(ref.worker_id, [])
        page = items[start : start + limit]
        nxt = start + limit if start + limit < len(items) else None
        return TranscriptPage(
            ref=ref, start=start, limit=limit, items=page, total_items=len(items), next_start=nxt
        )

    async def runtimes(self) -> list[RuntimeRow]:
        record = RuntimeRecord(
            runtime_id="mem",
            status=RuntimeStatus.RUNNING,
            last_seq=len(self.events),
            created_at=BASE,
            updated_at=self._now(),
        )
        counts = {WorkerStatus.RUNNING: len(self.records)}
        access = Access(AccessMode.HOSTED, True)
        return [RuntimeRow(record=record, counts=counts, host=None, access=access)]

    async def workers(self, runtime_id: str) -> list[WorkerRecord]:
        return list(self.records.values())

    async def worker(self, runtime_id: str, worker_id: str) -> WorkerRecord | None:
        return self.records.get(worker_id)

    async def runs(self, ref: WorkerRef, limit: int = 100) -> list[RunRecord]:
        return []

    async def diagnostics(self, runtime_id: str) -> list[Diagnostic]:
        return []

    async def profile_names(self, runtime_id: str) -> list[str]:
        return ["default"]

    async def fleet_picture(self, now_us: int) -> FleetPicture:
        """Events per second and level from the list; this backend keeps no runs."""
        slots = [[0, 0, 0] for _ in range(RATE_WINDOW_S)]
        newest = now_us // 1_000_000
        for event in self.events:
            ago = newest - int(event.at.timestamp())
            if 0 <= ago < RATE_WINDOW_S:
                slots[RATE_WINDOW_S - 1 - ago][event.level.rank] += 1
        return FleetPicture(
            now_us=now_us,
            per_second=tuple(LevelCounts(*slot) for slot in slots),
            errors_per_minute=(0,) * ERROR_WINDOW_MIN,
            runs_open={},
            runs_ended={},
            durations=(),
        )

    async def worker_picture(self, ref: WorkerRef, now_us: int, limit: int = 60) -> WorkerPicture:
        return WorkerPicture(now_us=now_us, runs=())

    async def input_limits(self, runtime_id: str) -> Limits:
        return Limits()

    def subscribe(self, after: int) -> LiveEvents:
        sub = FakeSubscription(self, after)
        self.subs.append(sub)
        return sub

    # -- commands -------------------------------------------------------------

    async def validate_worker(self, runtime_id: str, spec: WorkerSpec) -> Refusal | None:
        return worker_request_refusal(spec)

    async def create_worker(self, runtime_id: str, spec: WorkerSpec) -> WorkerRecord:
        self.commands.append("create")
        refusal = worker_request_refusal(spec)
        if refusal is not None:
            raise InvalidRequest(refusal.message)
        worker_id = f"w-{len(self.records) + 1}"
        event = self._emit("worker.created", worker_id, f"created {worker_id}")
        record = WorkerRecord(
            runtime_id="mem",
            worker_id=worker_id,
            status=WorkerStatus.RUNNING,
            spec=spec,
            transcript_len=0,
            queued=0,
            current_run_id=None,
            current_run_status=None,
            terminal_event_id=None,
            last_seq=event.seq,
            created_at=event.at,
            updated_at=event.at,
        )
        self.records[worker_id] = record
        self.entries[worker_id] = []
        return record

    def _entry(self, worker_id: str, role: Role, content: str) -> None:
        entries = self.entries[worker_id]
        sequence = len(entries) + 1
        kind = "worker.input.accepted" if role is Role.USER else "worker.output"
        event = self._emit(
            kind, worker_id, content, sequence=sequence, role=role.value, content=content
        )
        entries.append(
            TranscriptEntry(
                runtime_id="mem",
                worker_id=worker_id,
                sequence=sequence,
                role=role,
                content=content,
                event_id=event.event_id,
                run_id=None,
                at=event.at,
            )
        )
        record = self.records[worker_id]
        self.records[worker_id] = record.model_copy(
            update={"transcript_len": sequence, "last_seq": event.seq, "updated_at": event.at}
        )

    async def send_input(self, ref: WorkerRef, content: str, role: str = "user") -> InputAck:
        self.commands.append(f"input {content}")
        if ref.worker_id not in self.records:
            raise WorkerNotFound(ref.runtime_id, ref.worker_id)
        self._entry(ref.worker_id, Role.USER, content)
        sequence = len(self.entries[ref.worker_id])
        self._entry(ref.worker_id, Role.ASSISTANT, f"echo: {content}")
        return InputAck(
            ref=ref,
            status=WorkerStatus.RUNNING,
            transcript_sequence=sequence,
            event_id=self.events[-1].event_id,
            run_id=f"{ref.worker_id}.r{sequence}",
        )

    async def _end(self, ref: WorkerRef, status: WorkerStatus) -> LifecycleAck:
        record = self.records[ref.worker_id]
        changed = record.status is WorkerStatus.RUNNING
        if changed:
            kind = "worker.stopped" if status is WorkerStatus.STOPPED else "worker.cancelled"
            self._emit(kind, ref.worker_id, f"{ref.worker_id} {status.value}")
            self.records[ref.worker_id] = record.model_copy(update={"status": status})
        return LifecycleAck(
            ref=ref,
            status=self.records[ref.worker_id].status,
            event_id=self.events[-1].event_id,
            changed=changed,
        )

    async def stop_worker(self, ref: WorkerRef) -> LifecycleAck:
        self.commands.append("stop")
        return await self._end(ref, WorkerStatus.STOPPED)

    async def cancel_worker(self, ref: WorkerRef) -> LifecycleAck:
        self.commands.append("cancel")
        return await self._end(ref, WorkerStatus.CANCELLED)

    async def cancel_run(self, ref: WorkerRef, run_id: str) -> bool:
        return False

    async def close(self) -> None:
        for sub in self.subs:
            sub.close()
