"""The emitter: every event of a runtime is built, sequenced and submitted here.

Events are built through the store's catalog (`store.catalog.event`) from
typed payloads, so a kind and its payload cannot disagree; run events move
their run by the catalog's state machine (`next_run_status`), the only one.
Appends are submitted synchronously in call order with the runtime sequence
each expects, so concurrent operations pipeline into the store's group commit
instead of waiting for each other's fsync.

One refused append puts every later write on hold (`fault`): the runs that
lost an event end, and a recovery task waits for the log to take writes again,
re-reads the log's truth, records what was lost, and resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from engine.clock import Clock, IdSource
from engine.drivers.base import DiagnosticSeverity, OutputRole
from engine.errors import EngineError, ReadOnlyRuntime, StorageUnavailable, StoreFault
from engine.messages import one_line
from engine.state import RunState, WorkerState
from store import catalog
from store.catalog import DiagnosticRaised, Payload, RunFailed, TranscriptAppended
from store.errors import HostFenced, StoreError
from store.interface import EventLog
from store.models import Event, NewEvent, Role, RunStatus, Severity

RECOVER_FIRST_S = 0.25  # first retry after the store refused a write; doubles up to:
RECOVER_MAX_S = 5.0


class Emitter:
    """Builds this runtime's events through the catalog and submits them in order."""

    def __init__(self, store: EventLog, runtime_id: str, clock: Clock, ids: IdSource) -> None:
        self.store = store
        self.runtime_id = runtime_id
        self.clock = clock
        self.ids = ids
        self.last_seq = 0
        # The host's lease token: appends are fenced by it (the store refuses them
        # once another host holds the lease) instead of by an expected sequence,
        # because issuing consoles append their commands to this runtime's log too.
        self.fence: str | None = None
        self.fenced = False  # the store refused a write: another host holds the lease now
        self._on_fenced: Callable[[], None] | None = None
        # Event times never run backwards within a runtime, even under a clock that
        # is behind the one that wrote the log (floored at the last persisted time).
        self._last_at = datetime.min.replace(tzinfo=UTC)
        self._fault: StoreFault | None = None
        self._fault_listeners: list[Callable[[StoreFault | None], None]] = []
        self._writable = asyncio.Event()
        self._writable.set()
        self._inflight = 0
        self._recovery: asyncio.Task[None] | None = None
        self._still_hosting: Callable[[], Awaitable[bool]] | None = None
        self._resync: Callable[[], Awaitable[None]] | None = None
        self._resumed: Callable[[], None] | None = None
        self._active: dict[str, RunState] = {}  # runs executing now, by id
        self._unrecorded: dict[str, RunState] = {}  # runs that lost events
        self.closed = False

    async def resume_from_log(self) -> None:
        """Continue the runtime's sequence and its time floor where the log ends."""
        self.last_seq = await self.store.last_seq(self.runtime_id)
        if self.last_seq:
            last = await self.store.read_runtime(self.runtime_id, self.last_seq - 1, 1)
            if last:
                self._last_at = last[0].at

    def on_recovery(
        self,
        *,
        still_hosting: Callable[[], Awaitable[bool]],
        resync: Callable[[], Awaitable[None]],
        resumed: Callable[[], None],
    ) -> None:
        """What recovery asks of hosting (is the lease still ours?) and scheduling."""
        self._still_hosting = still_hosting
        self._resync = resync
        self._resumed = resumed

    # -- building ------------------------------------------------------------------

    def new(
        self,
        kind: str,
        message: str,
        payload: Payload,
        *,
        worker_id: str | None = None,
        run_id: str | None = None,
        run_seq: int | None = None,
    ) -> NewEvent:
        """An event of this runtime, stamped now (never before the last one) with a fresh id."""
        at = self.clock.now()
        if at < self._last_at:
            at = self._last_at
        else:
            self._last_at = at
        return catalog.event(
            kind,
            payload,
            event_id=self.ids.event_id(),
            at=at,
            message=message,
            worker_id=worker_id,
            run_id=run_id,
            run_seq=run_seq,
        )

    def for_run(self, run: RunState, kind: str, message: str, payload: Payload) -> NewEvent:
        """An event of `run` with its next run_seq; moves the run as the catalog says."""
        catalog.fit(kind, payload)  # before run_seq or status move
        event = self.new(
            kind,
            message,
            payload,
            worker_id=run.worker_id,
            run_id=run.run_id,
            run_seq=run.next_seq(),
        )
        moved = catalog.next_run_status(run.status, kind)
        if moved is not None:
            run.status = moved
        return event

    def run_failure(
        self, run: RunState, error: str, message: str | None = None, **facts: Any
    ) -> NewEvent:
        """A `run.failed` of `run` saying `error` (and what its program reported)."""
        text = message or f"run {run.run_id} failed: {one_line(error)}"
        return self.for_run(run, "run.failed", text, RunFailed(error=error, **facts))

    def diagnostic_new(
        self, severity: DiagnosticSeverity, code: str, message: str, worker_id: str | None
    ) -> NewEvent:
        return self.new(
            "diagnostic.raised",
            f"{severity}: {code}: {message}",
            DiagnosticRaised(severity=Severity(severity), code=code, message=message),
            worker_id=worker_id,
        )

    # -- submitting ----------------------------------------------------------------

    def submit(self, events: Sequence[NewEvent]) -> asyncio.Future[list[Event]]:
        """Queue `events` as one append now, in call order; the future settles at commit."""
        if self.fenced:
            raise self._taken_over()
        if self._fault is not None:
            # One refused append puts every later one behind it on hold: the log
            # and this host's counters are brought back in line first (_recover).
            raise StorageUnavailable(self.runtime_id, self._fault)
        future = self._store_submit(events)
        self._inflight += 1
        by = asyncio.current_task()
        future.add_done_callback(lambda done: self._after_commit(done, events, by))
        return future

    async def append(self, events: Sequence[NewEvent]) -> list[Event]:
        try:
            return await self.submit(events)
        except HostFenced:
            raise self._taken_over() from None

    def _taken_over(self) -> ReadOnlyRuntime:
        return ReadOnlyRuntime(self.runtime_id, "another process took over hosting it")

    def on_fenced(self, listener: Callable[[], None]) -> None:
        """What to do when the store refuses a write for the lease (hosting marks it lost)."""
        self._on_fenced = listener

    def _store_submit(self, events: Sequence[NewEvent]) -> asyncio.Future[list[Event]]:
        if self.fence is not None:
            return self.store.submit(self.runtime_id, None, events, fence=self.fence)
        # Unfenced (no lease): the sequence this emitter expects guards the log.
        expected = self.last_seq
        self.last_seq += len(events)
        return self.store.submit(self.runtime_id, expected, events)

    # -- on behalf of drivers (engine.emitting.Emitting) ------------------------------

    async def run_event(self, run: RunState, kind: str, message: str, payload: Payload) -> None:
        catalog.fit(kind, payload)  # a driver's mistake shows even after a cancel
        if run.status.terminal:
            return
        await self.append([self.for_run(run, kind, message, payload)])

    async def output(
        self, worker: WorkerState, run: RunState, role: OutputRole, content: str
    ) -> None:
        if run.status.terminal:
            return
        sequence = worker.next_transcript_sequence()
        entry = TranscriptAppended(role=Role(role), content=content, sequence=sequence)
        await self.append(
            [self.for_run(run, "worker.output", f"{role}: {one_line(content)}", entry)]
        )

    async def worker_event(
        self, worker: WorkerState, kind: str, message: str, payload: Payload
    ) -> None:
        await self.append([self.new(kind, message, payload, worker_id=worker.worker_id)])

    async def diagnostic(
        self, severity: DiagnosticSeverity, code: str, message: str, worker_id: str | None
    ) -> None:
        await self.append([self.diagnostic_new(severity, code, message, worker_id)])

    # -- the store-fault hold -------------------------------------------------------

    @property
    def fault(self) -> StoreFault | None:
        """Why nothing can be recorded right now (None when it can)."""
        return self._fault

    def add_fault_listener(self, listener: Callable[[StoreFault | None], None]) -> None:
        self._fault_listeners.append(listener)

    async def wait_writable(self) -> None:
        """Return once writes are no longer on hold (or the emitter is closed)."""
        await self._writable.wait()

    def track(self, run: RunState) -> None:
        """`run` is executing: an event of it that the store refuses ends it."""
        self._active[run.run_id] = run

    def untrack(self, run: RunState) -> None:
        """`run` is over (a run that lost events stays until recovery fails it)."""
        if run.run_id not in self._unrecorded:
            self._active.pop(run.run_id, None)

    def lose(self, run: RunState, *, cancel: bool = False) -> None:
        """Mark `run` as having lost events: it ends now and fails on recovery."""
        self._unrecorded[run.run_id] = run
        run.status = RunStatus.FAILED  # nothing more of it reaches the log
        if cancel and run.task is not None and not run.task.done():
            run.task.cancel()

    async def close(self) -> None:
        """Stop recovering; release whoever waits for writes to resume (they end now)."""
        self.closed = True
        self._writable.set()
        if self._recovery is not None:
            self._recovery.cancel()
            with contextlib.suppress(BaseException):
                await self._recovery

    def _after_commit(
        self,
        future: asyncio.Future[list[Event]],
        events: Sequence[NewEvent],
        by: asyncio.Task[Any] | None,
    ) -> None:
        self._inflight -= 1
        if future.cancelled() or future.exception() is None:
            return
        error = future.exception()
        if isinstance(error, HostFenced):
            # Not a store fault: another process hosts the runtime now. Nothing
            # more is written from here; the runs executing here end.
            self.fenced = True
            if self._on_fenced is not None:
                self._on_fenced()
            for active in list(self._active.values()):
                task = active.task
                if task is not None and task is not by and not task.done():
                    task.cancel()
            return
        # A run that lost an event cannot be told truthfully any more: it ends now
        # (its program too) and its failure is recorded once writing works again.
        # A run that submitted the event itself sees the error and ends on its own;
        # any other (output sent by a helper task, a cancel asked by the operator)
        # is cancelled.
        for event in events:
            run = self._active.get(event.run_id or "")
            if run is not None:
                self.lose(run, cancel=run.task is not by)
        if self._fault is None:
            self._fault = StoreFault(str(error), datetime.now(UTC))
            self._writable.clear()
            self._recovery = asyncio.get_running_loop().create_task(
                self._recover(), name=f"agentdeck-{self.runtime_id}-recover"
            )
            self._tell_fault()

    def _tell_fault(self) -> None:
        for listener in list(self._fault_listeners):
            with contextlib.suppress(Exception):
                listener(self._fault)

    async def _recover(self) -> None:
        """Wait out the failed appends, re-read the log's truth, record what was lost, resume."""
        delay = RECOVER_FIRST_S
        while not self.closed:
            while self._inflight:
                await asyncio.sleep(0.01)
            try:
                if self._still_hosting is not None and not await self._still_hosting():
                    return  # another host owns the runtime now: it stays read-only
                self.last_seq = await self.store.last_seq(self.runtime_id)
                if self._resync is not None:
                    await self._resync()
                events = await self._recovery_events()
                await self._store_submit(events)
            except (StoreError, EngineError):
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECOVER_MAX_S)
                continue
            for run in self._unrecorded.values():
                self._active.pop(run.run_id, None)
            self._unrecorded.clear()
            self._fault = None
            self._writable.set()
            if self._resumed is not None:
                self._resumed()
            self._tell_fault()
            return

    async def _recovery_events(self) -> list[NewEvent]:
        """Failures of the runs that lost events, and one diagnostic saying what happened."""
        assert self._fault is not None
        fault = self._fault
        reason = f"its events could not be recorded: {fault.reason}"
        events: list[NewEvent] = []
        failed: list[str] = []
        for run in self._unrecorded.values():
            record = await self.store.run(self.runtime_id, run.run_id)
            if record is None or record.status.terminal:
                continue
            run.run_seq = record.last_run_seq
            failed.append(run.run_id)
            events.append(self.run_failure(run, reason))
        lasted = datetime.now(UTC) - fault.since
        runs = f"{len(failed)} run{'s' if len(failed) != 1 else ''}"
        listed = f" ({', '.join(failed[:10])}{', …' if len(failed) > 10 else ''})" if failed else ""
        message = (
            f"the database could not be written for {lasted.total_seconds():.1f}s from "
            f"{fault.since:%H:%M:%S} UTC ({fault.reason}); {runs} that lost events "
            f"{'were' if len(failed) != 1 else 'was'} failed{listed}, and changes asked for "
            "meanwhile were refused"
        )
        events.append(self.diagnostic_new("error", "store.write_failed", message, None))
        return events
