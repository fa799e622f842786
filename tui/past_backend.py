"""`PastBackend`: the console's reads answered by the store as it was at a past position.

Time travel reuses the console's panes (tui.screens.past): they ask a
`ConsoleBackend` their usual questions, and this one answers them from a
`PastView` (store.past), the fold of the log up to one position. Nothing can
be changed in the past: every command raises `ReadOnlyRuntime` with one reason,
`PAST_READ_ONLY`, and `access` says so, so the keys that would change a worker
are refused with that line wherever they are pressed.

Which store to open the past of is the live backend's: `past_log` finds it (a
`HostedBackend`'s store), or says why this console cannot travel.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import datetime

from engine.errors import ReadOnlyRuntime, StoreFault
from engine.results import InputAck, LifecycleAck
from engine.validation import Refusal
from store.codec import us_from_dt
from store.filters import Filter
from store.interface import EventLog
from store.models import (
    Batch,
    Diagnostic,
    Event,
    Lag,
    Limits,
    RunRecord,
    TranscriptPage,
    WorkerRecord,
    WorkerRef,
    WorkerSpec,
    WorkerStatus,
)
from store.past import PastView, Step
from store.pictures import FleetPicture, RunPoint, WorkerPicture
from tui.backend import Access, AccessMode, ConsoleBackend, HandOver, HostedBackend, RuntimeRow

__all__ = ["PAST_READ_ONLY", "PastBackend", "Step", "past_log"]

PAST_READ_ONLY = "the past is read-only: esc returns to live"


def past_log(backend: ConsoleBackend) -> EventLog | None:
    """The store whose past `backend` can show (None: this backend has no log to fold)."""
    if isinstance(backend, HostedBackend):
        return backend.store
    return None


class _NoEvents:
    """The past has no live feed: a subscription that waits until it is closed."""

    def __init__(self) -> None:
        self._closed = asyncio.Event()

    async def next_batch(self, limit: int = 1000) -> list[Event | Lag]:
        await self._closed.wait()
        raise StopAsyncIteration

    def close(self) -> None:
        self._closed.set()


class PastBackend:
    """`ConsoleBackend` reads from `view`, every command refused. `live`: the console's own
    backend (its label and runtime, so the past opens where the operator was)."""

    def __init__(self, view: PastView, live: ConsoleBackend) -> None:
        self.view = view
        self.live = live
        self.notices: list[str] = []

    # -- what it is ---------------------------------------------------------------

    @property
    def label(self) -> str:
        return self.live.label

    @property
    def default_runtime_id(self) -> str:
        return self.live.default_runtime_id

    @property
    def hosted_runtime_id(self) -> str | None:
        return None

    @property
    def fault(self) -> StoreFault | None:
        return None

    def add_fault_listener(self, listener: Callable[[StoreFault | None], None]) -> None:
        return None  # nothing is written to the past

    async def hosted(self) -> None:
        return None

    async def take_over(self) -> str | None:
        return None

    def access(self, runtime_id: str) -> Access:
        return Access(AccessMode.READ_ONLY, False, PAST_READ_ONLY)

    def work_in_progress(self) -> tuple[list[str], int]:
        return [], 0

    async def hand_over(self) -> HandOver | None:
        return None

    # -- reads, as of the view's position ---------------------------------------------

    async def last_position(self) -> int:
        return await self.view.last_position()

    async def read_after(self, position: int, limit: int, flt: Filter | None = None) -> Batch:
        return await self.view.read_after(position, limit, flt)

    async def read_before(
        self, position: int, limit: int, flt: Filter | None = None
    ) -> list[Event]:
        return await self.view.read_before(position, limit, flt)

    async def transcript(self, ref: WorkerRef, start: int, limit: int) -> TranscriptPage:
        return await self.view.transcript(ref, start, limit)

    async def runtimes(self) -> list[RuntimeRow]:
        rows = []
        for record in await self.view.runtimes():
            # The past keeps no counts by status: the workers say (a past runtime is small
            # enough for this; the live pane reads `workers_by_status`).
            counts = Counter(w.status for w in await self.view.workers(record.runtime_id))
            statuses: dict[WorkerStatus, int] = dict(counts)
            rows.append(
                RuntimeRow(
                    record=record,
                    counts=statuses,
                    host=None,  # leases are not in the log: who hosted it then is not known
                    access=self.access(record.runtime_id),
                )
            )
        return rows

    async def workers(self, runtime_id: str) -> list[WorkerRecord]:
        return await self.view.workers(runtime_id)

    async def worker(self, runtime_id: str, worker_id: str) -> WorkerRecord | None:
        return await self.view.worker(runtime_id, worker_id)

    async def runs(self, ref: WorkerRef, limit: int = 100) -> list[RunRecord]:
        return await self.view.runs(ref.runtime_id, ref.worker_id, limit)

    async def diagnostics(self, runtime_id: str) -> list[Diagnostic]:
        return await self.view.diagnostics(runtime_id)

    async def fleet_picture(self, now_us: int) -> FleetPicture:
        # The past shows no pictures (its screen hides the strip): an empty one, never live data.
        return FleetPicture(
            now_us=now_us,
            per_second=(),
            errors_per_minute=(),
            runs_open={},
            runs_ended={},
            durations=(),
        )

    async def worker_picture(
        self, ref: WorkerRef, now_us: int, limit: int = 60
    ) -> WorkerPicture:
        # The worker view's picture of its runs, as they were: "now" is the past's moment
        # (an open run has lasted until then), and a run ended when it was last changed.
        at = self.view.at
        then = us_from_dt(at) if at is not None else now_us
        runs = await self.view.runs(ref.runtime_id, ref.worker_id, limit)
        points = tuple(
            RunPoint(
                run_id=run.run_id,
                status=run.status,
                created_at_us=us_from_dt(run.created_at),
                ended_at_us=us_from_dt(run.updated_at) if run.status.terminal else None,
            )
            for run in reversed(runs)  # oldest first
        )
        return WorkerPicture(now_us=then, runs=points)

    def subscribe(self, after: int) -> _NoEvents:
        return _NoEvents()

    # -- commands: none in the past -----------------------------------------------------

    def _refuse(self, runtime_id: str) -> ReadOnlyRuntime:
        return ReadOnlyRuntime(runtime_id, PAST_READ_ONLY)

    async def profile_names(self, runtime_id: str) -> list[str]:
        raise self._refuse(runtime_id)

    async def input_limits(self, runtime_id: str) -> Limits:
        raise self._refuse(runtime_id)

    async def validate_worker(self, runtime_id: str, spec: WorkerSpec) -> Refusal | None:
        raise self._refuse(runtime_id)

    async def create_worker(self, runtime_id: str, spec: WorkerSpec) -> WorkerRecord:
        raise self._refuse(runtime_id)

    async def send_input(self, ref: WorkerRef, content: str, role: str = "user") -> InputAck:
        raise self._refuse(ref.runtime_id)

    async def stop_worker(self, ref: WorkerRef) -> LifecycleAck:
        raise self._refuse(ref.runtime_id)

    async def cancel_worker(self, ref: WorkerRef) -> LifecycleAck:
        raise self._refuse(ref.runtime_id)

    async def cancel_run(self, ref: WorkerRef, run_id: str) -> bool:
        raise self._refuse(ref.runtime_id)

    async def close(self) -> None:
        await self.view.close()

    # -- where it is -----------------------------------------------------------------

    @property
    def position(self) -> int:
        return self.view.position

    @property
    def at(self) -> datetime | None:
        return self.view.at

    async def step(self, unit: Step, direction: int) -> bool:
        return await self.view.step(unit, direction)

    async def move_to(self, position: int) -> None:
        await self.view.move_to(position)


def _conforms(backend: PastBackend) -> ConsoleBackend:
    return backend  # mypy checks here that the past answers everything the console asks
