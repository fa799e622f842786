"""The store as it was at a past position: what time travel shows.

CONTRACT (issue 11). The projections are a fold over the log
(store.projector); the past at position P is that fold up to P. A store opens
one with `EventLog.open_past(position)`: it starts from the newest valid
checkpoint at or before P (store.checkpoints), folds the events after it up
to P into a scratch database, and answers the same reads the console asks
of the live store, as they would have been answered just after the event at
P was committed. It is read-only: nothing here writes to the store.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Protocol

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


class Step(Enum):
    """How far one time-travel key moves."""

    EVENT = "event"
    RUN = "run"  # to the previous / next event that starts or ends a run
    MINUTE = "minute"


class PastView(Protocol):
    """The projections and the log as they were just after the event at `position`."""

    @property
    def position(self) -> int:
        """The last event included (0: before the first event)."""

    @property
    def at(self) -> datetime | None:
        """When the event at `position` was committed (None at position 0)."""

    @property
    def newest(self) -> int:
        """The store's last position when this view last moved (where 'live' is)."""

    async def move_to(self, position: int) -> None:
        """Show the state at `position` instead (clamped to 0..the store's last position)."""

    async def step(self, unit: Step, direction: int) -> bool:
        """Move one `unit` back (direction -1) or forward (+1); False if there is nowhere to go."""

    # -- the same reads as store.interface.EventLog, as of `position` --------------

    async def last_position(self) -> int: ...

    async def read_after(self, position: int, limit: int, flt: Filter | None = None) -> Batch: ...

    async def read_before(
        self, position: int, limit: int, flt: Filter | None = None
    ) -> list[Event]: ...

    async def runtimes(self) -> list[RuntimeRecord]: ...

    async def runtime(self, runtime_id: str) -> RuntimeRecord | None: ...

    async def workers(self, runtime_id: str) -> list[WorkerRecord]: ...

    async def worker(self, runtime_id: str, worker_id: str) -> WorkerRecord | None: ...

    async def runs(self, runtime_id: str, worker_id: str, limit: int = 100) -> list[RunRecord]: ...

    async def transcript(self, ref: WorkerRef, start: int, limit: int) -> TranscriptPage: ...

    async def diagnostics(self, runtime_id: str, limit: int = 1000) -> list[Diagnostic]: ...

    async def diagnostic_count(self, runtime_id: str) -> int: ...

    async def tables(self) -> dict[str, list[tuple[object, ...]]]:
        """Every projection table as of `position` (store.schema.PROJECTIONS order and
        columns, `activity` excepted), rows sorted by the table's key: what tests
        compare with the live projections captured at that position."""

    async def close(self) -> None: ...
