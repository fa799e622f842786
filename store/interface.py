"""`EventLog`: what the engine and the console ask of a store, whatever its back end.

`EventStore` (SQLite, store.event_store) is the one implementation today; a
second back end (PostgreSQL) implements the same protocol. Everything here is
named for what it means (append, read after a position, claim a lease), never
for how a back end does it: no connection, no SQL, no file path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from store.feed import Subscription
from store.filters import Filter
from store.hosts import ClaimOutcome, LeaseClaim
from store.models import (
    Batch,
    CommandState,
    Diagnostic,
    Event,
    HostLease,
    NewEvent,
    RunRecord,
    RuntimeRecord,
    TranscriptPage,
    WorkerRecord,
    WorkerRef,
    WorkerStatus,
)
from store.past import PastView
from store.pictures import FleetPicture, WorkerPicture
from store.rebuild import RebuildReport

if TYPE_CHECKING:
    from store.event_store import EventStore


class EventLog(Protocol):
    """The durable log of every runtime, its projections, its change feed and its leases."""

    @property
    def read_only(self) -> bool: ...

    async def close(self) -> None: ...

    # -- writing ----------------------------------------------------------------

    async def append(
        self,
        runtime_id: str,
        expected_seq: int | None,
        events: Sequence[NewEvent],
        *,
        fence: str | None = None,
    ) -> list[Event]: ...

    def submit(
        self,
        runtime_id: str,
        expected_seq: int | None,
        events: Sequence[NewEvent],
        *,
        fence: str | None = None,
    ) -> asyncio.Future[list[Event]]: ...

    # -- the log ----------------------------------------------------------------

    async def last_position(self) -> int: ...

    async def last_seq(self, runtime_id: str) -> int: ...

    async def read_after(
        self, position: int, limit: int, flt: Filter | None = None
    ) -> Batch: ...

    async def read_before(
        self, position: int, limit: int, flt: Filter | None = None
    ) -> list[Event]: ...

    async def read_runtime(self, runtime_id: str, after_seq: int, limit: int) -> list[Event]: ...

    async def read_run(
        self, runtime_id: str, run_id: str, after_run_seq: int, limit: int
    ) -> list[Event]: ...

    def subscribe(
        self, after: int = 0, flt: Filter | None = None, max_queue: int = ...
    ) -> Subscription: ...

    # -- projections -------------------------------------------------------------

    async def runtimes(self) -> list[RuntimeRecord]: ...

    async def runtime(self, runtime_id: str) -> RuntimeRecord | None: ...

    async def workers(self, runtime_id: str) -> list[WorkerRecord]: ...

    async def worker(self, runtime_id: str, worker_id: str) -> WorkerRecord | None: ...

    async def workers_by_status(self, runtime_id: str) -> dict[WorkerStatus, int]: ...

    async def runs(self, runtime_id: str, worker_id: str, limit: int = 100) -> list[RunRecord]: ...

    async def run(self, runtime_id: str, run_id: str) -> RunRecord | None: ...

    async def open_runs(self, runtime_id: str) -> list[RunRecord]: ...

    async def newest_run_ids(self, runtime_id: str) -> dict[str, str]: ...

    async def transcript(self, ref: WorkerRef, start: int, limit: int) -> TranscriptPage: ...

    async def diagnostics(self, runtime_id: str, limit: int = 1000) -> list[Diagnostic]: ...

    async def diagnostic_count(self, runtime_id: str) -> int: ...

    async def pending_commands(
        self, runtime_id: str, limit: int | None = None
    ) -> list[Event]: ...

    async def command_state(self, command_id: str) -> CommandState | None: ...

    async def repair_projections(self, runtime_id: str) -> RebuildReport | None: ...

    # -- pictures (store.pictures) -------------------------------------------------

    async def fleet_picture(self, now_us: int) -> FleetPicture: ...

    async def worker_picture(
        self, ref: WorkerRef, now_us: int, limit: int = 60
    ) -> WorkerPicture: ...

    # -- the past (store.past, store.checkpoints) ------------------------------------

    async def open_past(self, position: int) -> PastView:
        """The state just after the event at `position` (clamped to the log)."""
        ...

    async def position_at(self, at_us: int) -> int:
        """The last position committed at or before `at_us` (0 if none)."""
        ...

    # -- host leases ----------------------------------------------------------------

    async def hosts(self) -> dict[str, HostLease]: ...

    async def claim_lease(
        self, claim: LeaseClaim, may_take_over: Callable[[HostLease, str], bool]
    ) -> ClaimOutcome: ...

    async def beat_lease(self, runtime_id: str, token: str, now_us: int) -> bool: ...

    async def release_lease(self, runtime_id: str, token: str) -> None: ...

    async def pass_lease(
        self, runtime_id: str, token: str, successor: str, now_us: int
    ) -> bool: ...


def _conforms(store: EventStore) -> EventLog:
    return store  # mypy checks here that the SQLite store has the whole protocol
