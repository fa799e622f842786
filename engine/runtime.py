"""`Runtime`: the only way state changes.

Every operation validates first (in the seed's order of checks), then builds
its events and submits them to the store in one append (one transaction with
their projection changes), then answers. Appends are submitted synchronously
in call order with the runtime sequence each expects, so concurrent
operations pipeline into the store's group commit instead of waiting for each
other's fsync.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from engine.clock import Clock, IdSource, SystemClock, Uuid7Ids
from engine.drivers.base import DiagnosticSeverity, Driver, RunFailed, RunInput
from engine.errors import (
    EngineError,
    InvalidRequest,
    LimitTooLarge,
    ReadOnlyRuntime,
    RuntimeStopped,
    StorageUnavailable,
    StoreFault,
    WorkerNotFound,
    WorkerNotRunning,
    WrongRuntime,
    WrongRuntimeCursor,
)
from engine.hosting import HostLeaseHolder, ReplacedHost
from engine.leftovers import Leftover, end_leftovers, find_leftovers
from engine.profiles import (
    CommandProfile,
    ConfigError,
    ProfileSet,
    ProfileWatcher,
    UnknownProfile,
)
from engine.results import CreateWorkerRequest, EventBatch, EventCursor, InputAck, LifecycleAck
from engine.rooms import Room
from engine.run_context import RunCtx, WorkerCtx, make_driver, one_line
from engine.state import Profile, RunState, WorkerState, run_number
from engine.validation import validate_input, validate_worker_request
from store.errors import StoreError
from store.event_store import EventStore
from store.feed import Subscription
from store.filters import parse_filter
from store.models import (
    RUNTIME_ID_RE,
    Diagnostic,
    Event,
    Limits,
    NewEvent,
    RunRecord,
    RunStatus,
    RuntimeStatus,
    RuntimeSummary,
    TranscriptPage,
    WorkerRecord,
    WorkerRef,
    WorkerStatus,
)

HOST_EXITED = "host exited"
HOST_CLOSED = "host closed"
CANCEL_WAIT_S = 10.0
RECOVER_FIRST_S = 0.25  # first retry after the store refused a write; doubles up to:
RECOVER_MAX_S = 5.0
LEFTOVER_GRACE_S = 3.0  # for a leftover whose profile is no longer configured
MAX_RESULT_CHARS = 4000


class Runtime:
    """A hosted runtime. Make one with `await Runtime.host(store, name)`."""

    def __init__(
        self,
        store: EventStore,
        runtime_id: str,
        *,
        profiles: ProfileSet,
        clock: Clock,
        ids: IdSource,
        limits: Limits,
    ) -> None:
        self.store = store
        self.runtime_id = runtime_id
        self.profiles = profiles
        self.clock = clock
        self.ids = ids
        self.limits = limits
        self.status = RuntimeStatus.RUNNING
        self._stop_event_id: UUID | None = None
        self._last_seq = 0
        # Event times never run backwards within a runtime, even under a clock that
        # is behind the one that wrote the log (floored at the last persisted time).
        self._last_at = datetime.min.replace(tzinfo=UTC)
        self._workers: dict[str, WorkerState] = {}
        self._next_worker_no = 1
        self._lease: HostLeaseHolder | None = None
        # Writes on hold after a refused append (see _after_commit and _recover).
        self._fault: StoreFault | None = None
        self._fault_listeners: list[Callable[[StoreFault | None], None]] = []
        self._writable = asyncio.Event()
        self._writable.set()
        self._inflight = 0
        self._recovery: asyncio.Task[None] | None = None
        self._active: dict[str, RunState] = {}  # runs executing now, by id
        self._unrecorded: dict[str, RunState] = {}  # runs that lost events
        self._closed = False
        self._opened = False
        self._watcher: ProfileWatcher | None = None
        self._early_config_errors: list[ConfigError] = []
        # What hosting found and fixed, said as diagnostics once the log is open.
        self._open_notes: list[tuple[DiagnosticSeverity, str, str]] = []
        self._leftovers: list[Leftover] = []

    # -- hosting -----------------------------------------------------------

    @classmethod
    async def host(
        cls,
        store: EventStore,
        runtime_id: str = "local",
        *,
        profiles: ProfileSet | None = None,
        clock: Clock | None = None,
        ids: IdSource | None = None,
        limits: Limits | None = None,
        display_name: str | None = None,
        heartbeat_s: float = 2.0,
        stale_after_s: float = 10.0,
        config_path: Path | None = None,
    ) -> Runtime:
        """Open or create the runtime `runtime_id` and host it in this process.

        Raises RuntimeBusy if a live process hosts it already. A runtime whose
        previous host died has its unfinished runs failed ("host exited") and
        its queues resumed. With `config_path`, profiles come from that TOML
        file and follow its changes live; a bad file keeps the last good
        profiles and raises a `config.invalid` diagnostic naming the line.
        """
        if not RUNTIME_ID_RE.fullmatch(runtime_id):
            raise InvalidRequest(
                f"runtime name {runtime_id!r} is not valid: use lowercase letters, digits, '.', '_', '-'"
            )
        if store.read_only:
            raise ReadOnlyRuntime(runtime_id, "the database was opened read-only")
        clock = clock or SystemClock()
        runtime = cls(
            store,
            runtime_id,
            profiles=profiles or ProfileSet(profiles={}, default_profile=None, path=None),
            clock=clock,
            ids=ids or Uuid7Ids(),
            limits=limits or Limits(),
        )
        # The lease runs on wall time, not on the injected clock: heartbeats are
        # compared by other processes with their own clocks (a test clock far from
        # now made a live host look stale), and each beat would consume a reading
        # of the event clock, so event times would depend on scheduling.
        lease = HostLeaseHolder(store, runtime_id, SystemClock(), heartbeat_s, stale_after_s)
        await lease.acquire()
        runtime._lease = lease
        try:
            await runtime._end_leftovers_of(lease.replaced)
            await runtime._repair_projections()
            if config_path is not None:
                runtime._watcher = ProfileWatcher(
                    config_path, runtime._profiles_changed, runtime._profiles_invalid
                )
                runtime.profiles = await runtime._watcher.start()
            await runtime._open(display_name)
            runtime._opened = True
            for error in runtime._early_config_errors:
                await runtime._profiles_invalid(error)
        except BaseException:
            if runtime._watcher is not None:
                await runtime._watcher.stop()
            await lease.release()
            raise
        return runtime

    @property
    def host_mark(self) -> str:
        """The mark every program this host starts carries (see engine.leftovers)."""
        return self._lease.mark if self._lease is not None else ""

    async def _end_leftovers_of(self, replaced: ReplacedHost | None) -> None:
        """End what a previous host of this runtime left running on this machine."""
        if replaced is None or self._lease is None:
            return
        if replaced.lease.host_name != self._lease.host_name:
            self._note_on_open(
                "warning",
                "host.takeover",
                f"took over from pid {replaced.lease.pid} on {replaced.lease.host_name}, which "
                "stopped heartbeating; programs it started there were not ended from this machine"
            )
            return
        found = await asyncio.to_thread(find_leftovers, replaced.mark)
        if not found:
            return
        grace = max(self._grace_of(leftover) for leftover in found)
        await end_leftovers(found, grace)
        self._leftovers = found
        listed = "; ".join(leftover.describe() for leftover in found[:5])
        more = f"; and {len(found) - 5} more" if len(found) > 5 else ""
        self._note_on_open(
            "warning",
            "host.takeover",
            f"ended {len(found)} process{'es' if len(found) != 1 else ''} that the previous "
            f"host (pid {replaced.lease.pid}) left running: {listed}{more}"
        )

    async def _repair_projections(self) -> None:
        """Rebuild this runtime's projections from its log if they disagree with it.

        A cheap check (counts and heads, store.rebuild); a projection row lost
        or edited by hand would otherwise make this host drop a worker and
        reuse its id. Runs under the lease, before anything is read from them.
        """
        report = await self.store.repair_projections(self.runtime_id)
        if report is not None:
            self._note_on_open("warning", "store.projections_rebuilt", report.summary())

    def _note_on_open(self, severity: DiagnosticSeverity, code: str, message: str) -> None:
        self._open_notes.append((severity, code, message))

    def _open_diagnostics(self) -> list[NewEvent]:
        return [
            self._diagnostic_new(severity, code, message, None)
            for severity, code, message in self._open_notes
        ]

    def _grace_of(self, leftover: Leftover) -> float:
        profile = self._profile_or_none(leftover.profile or "") if leftover.profile else None
        grace = profile.grace if isinstance(profile, CommandProfile) else LEFTOVER_GRACE_S
        return min(grace, LEFTOVER_GRACE_S * 3)

    def _profiles_changed(self, profiles: ProfileSet) -> None:
        # New workers get the new profiles; running workers keep the one they have,
        # except those whose profile had vanished and is now back.
        self.profiles = profiles
        for worker in self._workers.values():
            if worker.profile is None:
                worker.profile = self._profile_or_none(worker.spec.profile)

    async def _profiles_invalid(self, error: ConfigError) -> None:
        if not self._opened:
            self._early_config_errors.append(error)
            return
        if self.status is RuntimeStatus.RUNNING and not self._closed:
            with contextlib.suppress(Exception):
                await self.raise_diagnostic("error", "config.invalid", str(error), None)

    async def _open(self, display_name: str | None) -> None:
        record = await self.store.runtime(self.runtime_id)
        self._last_seq = await self.store.last_seq(self.runtime_id)
        if self._last_seq:
            last = await self.store.read_runtime(self.runtime_id, self._last_seq - 1, 1)
            if last:
                self._last_at = last[0].at
        if record is None:
            payload = {"limits": self.limits.model_dump(), "display_name": display_name}
            await self._append(
                [
                    self._new(
                        "runtime.started", f"runtime {self.runtime_id} started", payload=payload
                    )
                ]
            )
            return
        self.limits = record.limits
        if record.status is RuntimeStatus.STOPPED:
            self.status = RuntimeStatus.STOPPED
            found = await self.store.read_after(
                0, 1, parse_filter(f"runtime:{self.runtime_id} kind:runtime.stopped")
            )
            self._stop_event_id = found.events[0].event_id if found.events else None
        newest_runs = await self.store.newest_run_ids(self.runtime_id)
        for rec in await self.store.workers(self.runtime_id):
            newest = newest_runs.get(rec.worker_id)
            state = WorkerState(
                worker_id=rec.worker_id,
                status=rec.status,
                spec=rec.spec,
                profile=self._profile_or_none(rec.spec.profile),
                transcript_len=rec.transcript_len,
                runs_made=run_number(newest) if newest else 0,
                terminal_event_id=rec.terminal_event_id,
            )
            self._workers[rec.worker_id] = state
            self._next_worker_no = max(self._next_worker_no, int(rec.worker_id[2:]) + 1)
        if self.status is RuntimeStatus.STOPPED:
            if self._open_notes:
                await self._append(self._open_diagnostics())
            return
        events = [
            self._new(
                "runtime.restored",
                f"runtime {self.runtime_id} restored",
                payload={"pid": self._lease.pid if self._lease else None},
            )
        ]
        for run in await self.store.open_runs(self.runtime_id):
            worker = self._workers.get(run.worker_id)
            if run.status is RunStatus.CREATED and worker and worker.status is WorkerStatus.RUNNING:
                worker.queue.append(await self._queued_run(run))
                continue
            run_state = RunState(
                run.run_id, run.worker_id, run.prompt, "user", run.status, run.last_run_seq
            )
            # The previous host died mid-run: nothing can resume it, so say so.
            failure: dict[str, Any] = {"error": HOST_EXITED}
            ended = [lo.as_payload() for lo in self._leftovers if lo.run_id == run.run_id]
            if ended:
                failure["ended_processes"] = ended
            events.append(
                self._run_event_new(
                    run_state, "run.failed", f"run {run.run_id} failed: {HOST_EXITED}", failure
                )
            )
            run_state.status = RunStatus.FAILED
        events.extend(self._open_diagnostics())
        await self._append(events)
        for worker in self._workers.values():
            if worker.status is WorkerStatus.RUNNING:
                self._start_loop(worker)

    async def close(self) -> None:
        """Stop hosting: unfinished runs fail ("host closed"), queues stay for the next host."""
        if self._closed:
            return
        self._closed = True
        self._writable.set()  # release loops waiting out a store fault: they end now
        if self._recovery is not None:
            self._recovery.cancel()
            with contextlib.suppress(BaseException):
                await self._recovery
        if self._watcher is not None:
            await self._watcher.stop()
        events: list[NewEvent] = []
        for worker in self._workers.values():
            run = worker.current
            if run is not None and not run.status.terminal:
                events.append(
                    self._run_event_new(
                        run,
                        "run.failed",
                        f"run {run.run_id} failed: {HOST_CLOSED}",
                        {"error": HOST_CLOSED},
                    )
                )
                run.status = RunStatus.FAILED
        if events:
            with contextlib.suppress(Exception):
                await self._append(events)
        for worker in self._workers.values():
            if worker.loop_task is not None:
                worker.loop_task.cancel()
        for worker in self._workers.values():
            if worker.loop_task is not None:
                with contextlib.suppress(BaseException):
                    await worker.loop_task
            await self._close_driver(worker)
        if self._lease is not None:
            await self._lease.release()

    # -- appending -------------------------------------------------------------

    def _new(
        self,
        kind: str,
        message: str,
        *,
        worker_id: str | None = None,
        run_id: str | None = None,
        run_seq: int | None = None,
        payload: dict[str, Any] | None = None,
    ) -> NewEvent:
        at = self.clock.now()
        if at < self._last_at:
            at = self._last_at
        else:
            self._last_at = at
        return NewEvent(
            event_id=self.ids.event_id(),
            kind=kind,
            worker_id=worker_id,
            run_id=run_id,
            run_seq=run_seq,
            message=message,
            payload=payload or {},
            at=at,
        )

    def _run_event_new(
        self, run: RunState, kind: str, message: str, payload: dict[str, Any] | None = None
    ) -> NewEvent:
        return self._new(
            kind,
            message,
            worker_id=run.worker_id,
            run_id=run.run_id,
            run_seq=run.next_seq(),
            payload=payload,
        )

    def _submit(self, events: Sequence[NewEvent]) -> asyncio.Future[list[Event]]:
        if self._fault is not None:
            # One refused append puts every later one behind it on hold: the log
            # and this host's counters are brought back in line first (_recover).
            raise StorageUnavailable(self.runtime_id, self._fault)
        expected = self._last_seq
        future = self.store.submit(self.runtime_id, expected, events)
        self._last_seq += len(events)
        self._inflight += 1
        by = asyncio.current_task()
        future.add_done_callback(lambda done: self._after_commit(done, events, by))
        return future

    async def _append(self, events: Sequence[NewEvent]) -> list[Event]:
        return await self._submit(events)

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
        # A run that lost an event cannot be told truthfully any more: it ends now
        # (its program too) and its failure is recorded once writing works again.
        # A run that submitted the event itself sees the error and ends on its own;
        # any other (output sent by a helper task, a cancel asked by the operator)
        # is cancelled.
        for event in events:
            run = self._active.get(event.run_id or "")
            if run is not None:
                self._lose(run, cancel=run.task is not by)
        if self._fault is None:
            self._fault = StoreFault(str(error), datetime.now(UTC))
            self._writable.clear()
            self._recovery = asyncio.get_running_loop().create_task(
                self._recover(), name=f"agentdeck-{self.runtime_id}-recover"
            )
            self._tell_fault()

    def _lose(self, run: RunState, *, cancel: bool = False) -> None:
        """Mark `run` as having lost events: it ends now and fails on recovery."""
        self._unrecorded[run.run_id] = run
        run.status = RunStatus.FAILED  # nothing more of it reaches the log
        if cancel and run.task is not None and not run.task.done():
            run.task.cancel()

    def work_in_progress(self) -> tuple[list[str], int]:
        """Runs in progress here (closing fails them) and how many are queued (they stay)."""
        running = [
            w.current.run_id
            for w in self._workers.values()
            if w.current is not None and not w.current.status.terminal
        ]
        return running, sum(len(w.queue) for w in self._workers.values())

    @property
    def fault(self) -> StoreFault | None:
        """Why this runtime cannot record anything right now (None when it can)."""
        return self._fault

    def add_fault_listener(self, listener: Callable[[StoreFault | None], None]) -> None:
        """Call `listener(fault)` when the store stops taking writes, and `(None)` when it does again."""
        self._fault_listeners.append(listener)

    def _tell_fault(self) -> None:
        for listener in list(self._fault_listeners):
            with contextlib.suppress(Exception):
                listener(self._fault)

    async def _recover(self) -> None:
        """Wait out the failed appends, re-read the log's truth, record what was lost, resume."""
        delay = RECOVER_FIRST_S
        while not self._closed:
            while self._inflight:
                await asyncio.sleep(0.01)
            try:
                if self._lease is not None and not await self._lease.beat():
                    return  # another host owns the runtime now: stay read-only (_ensure_running)
                await self._resync_from_store()
                events = await self._recovery_events()
                expected = self._last_seq
                await self.store.submit(self.runtime_id, expected, events)
                self._last_seq = expected + len(events)
            except (StoreError, EngineError):
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECOVER_MAX_S)
                continue
            for run in self._unrecorded.values():
                self._active.pop(run.run_id, None)
            self._unrecorded.clear()
            self._fault = None
            self._writable.set()
            for worker in self._workers.values():
                worker.wake.set()
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
            events.append(
                self._run_event_new(
                    run, "run.failed", f"run {run.run_id} failed: {one_line(reason)}",
                    {"error": reason},
                )
            )
        lasted = datetime.now(UTC) - fault.since
        runs = f"{len(failed)} run{'s' if len(failed) != 1 else ''}"
        listed = f" ({', '.join(failed[:10])}{', …' if len(failed) > 10 else ''})" if failed else ""
        message = (
            f"the database could not be written for {lasted.total_seconds():.1f}s from "
            f"{fault.since:%H:%M:%S} UTC ({fault.reason}); {runs} that lost events "
            f"{'were' if len(failed) != 1 else 'was'} failed{listed}, and changes asked for "
            "meanwhile were refused"
        )
        events.append(self._diagnostic_new("error", "store.write_failed", message, None))
        return events

    async def _resync_from_store(self) -> None:
        """Re-read what refused appends left this host's picture ahead of."""
        self._last_seq = await self.store.last_seq(self.runtime_id)
        records = {r.worker_id: r for r in await self.store.workers(self.runtime_id)}
        newest = await self.store.newest_run_ids(self.runtime_id)
        queued: dict[str, list[RunRecord]] = {}
        for open_run in await self.store.open_runs(self.runtime_id):
            if open_run.status is RunStatus.CREATED:
                queued.setdefault(open_run.worker_id, []).append(open_run)
        for worker_id, worker in list(self._workers.items()):
            record = records.get(worker_id)
            if record is None:
                # Its creation never reached the log.
                del self._workers[worker_id]
                if worker.loop_task is not None:
                    worker.loop_task.cancel()
                continue
            worker.transcript_len = record.transcript_len
            worker.status = record.status
            worker.terminal_event_id = record.terminal_event_id
            newest_run = newest.get(worker_id)
            worker.runs_made = run_number(newest_run) if newest_run else 0
            # The queue is what the log says is queued (a refused stop may have
            # emptied it here; a refused input never joined it).
            known = {run.run_id: run for run in worker.queue}
            worker.queue.clear()
            for record_run in queued.get(worker_id, []):
                run = known.get(record_run.run_id) or await self._queued_run(record_run)
                run.status = RunStatus.CREATED
                run.run_seq = record_run.last_run_seq
                worker.queue.append(run)
        self._next_worker_no = 1 + max((int(w[2:]) for w in records), default=0)

    async def _queued_run(self, record: RunRecord) -> RunState:
        run = RunState(
            record.run_id, record.worker_id, record.prompt, "user", record.status,
            record.last_run_seq,
        )
        created = await self.store.read_run(self.runtime_id, record.run_id, 1, 1)
        if created:
            run.role = str(created[0].payload.get("role", "user"))
        return run

    # -- checks ----------------------------------------------------------------

    def _ensure_running(self) -> None:
        if self._lease is not None and self._lease.lost:
            raise ReadOnlyRuntime(self.runtime_id, "another process took over hosting it")
        if self.status is RuntimeStatus.STOPPED or self._closed:
            raise RuntimeStopped(self.runtime_id)
        if self._fault is not None:
            raise StorageUnavailable(self.runtime_id, self._fault)

    def _check_ref(self, ref: WorkerRef) -> None:
        if ref.runtime_id != self.runtime_id:
            raise WrongRuntime(self.runtime_id, ref.runtime_id)

    def _worker(self, ref: WorkerRef) -> WorkerState:
        self._check_ref(ref)
        worker = self._workers.get(ref.worker_id)
        if worker is None:
            raise WorkerNotFound(self.runtime_id, ref.worker_id)
        return worker

    def _profile_or_none(self, name: str) -> Profile | None:
        try:
            return self.profiles.resolve(name)
        except UnknownProfile:
            return None

    # -- runtime operations ------------------------------------------------------

    async def summary(self) -> RuntimeSummary:
        record = await self.store.runtime(self.runtime_id)
        assert record is not None
        hosts = await self.store.hosts()
        return RuntimeSummary(
            runtime=record,
            workers_by_status=await self.store.workers_by_status(self.runtime_id),
            diagnostic_count=await self.store.diagnostic_count(self.runtime_id),
            host=hosts.get(self.runtime_id),
        )

    async def stop_runtime(self) -> UUID:
        """Stop the runtime (idempotent): running workers stop, runs are cancelled."""
        if self.status is RuntimeStatus.STOPPED and self._stop_event_id is not None:
            return self._stop_event_id
        self._ensure_running()
        events: list[NewEvent] = []
        tasks: list[asyncio.Task[None]] = []
        for worker in self._workers.values():
            # Every worker, not only running ones: a stopped worker may still be
            # finishing its last run, which kept emitting after runtime.stopped.
            events.extend(
                self._cancel_runs(worker, "runtime stopped", include_current=True, tasks=tasks)
            )
        stop = self._new("runtime.stopped", f"runtime {self.runtime_id} stopped")
        events.append(stop)
        self.status = RuntimeStatus.STOPPED
        for worker in self._workers.values():
            if worker.status is WorkerStatus.RUNNING:
                worker.status = WorkerStatus.STOPPED
                worker.terminal_event_id = stop.event_id
                worker.wake.set()
        # Known before the commit: a concurrent repeat (while this one awaits its
        # commit) must answer with this event, not fail with RuntimeStopped.
        self._stop_event_id = stop.event_id
        await self._append(events)
        await self._await_cancelled(tasks)
        return stop.event_id

    # -- workers ---------------------------------------------------------------

    async def create_worker(self, request: CreateWorkerRequest) -> WorkerRecord:
        self._ensure_running()
        profile = validate_worker_request(request, self.profiles)
        if len(self._workers) >= self.limits.max_workers:
            raise LimitTooLarge("worker count", len(self._workers) + 1, self.limits.max_workers)
        worker_id = f"w-{self._next_worker_no}"
        self._next_worker_no += 1
        spec = request.model_copy(update={"profile": profile.name})
        created = self._new(
            "worker.created",
            f"worker {worker_id} created ({_intent_text(spec)}, {profile.name})",
            worker_id=worker_id,
            payload={"spec": spec.model_dump(mode="json")},
        )
        events = [created]
        if spec.config_bundle is None:
            events.append(
                self._diagnostic_new(
                    "info",
                    "runtime.local_default_resources",
                    "worker created without a config bundle; runtime-local defaults are assumed",
                    worker_id,
                )
            )
        if not spec.capabilities:
            events.append(
                self._diagnostic_new(
                    "info",
                    "worker.tools_less",
                    "worker created without requested tool capabilities",
                    worker_id,
                )
            )
        worker = WorkerState(
            worker_id=worker_id, status=WorkerStatus.RUNNING, spec=spec, profile=profile
        )
        self._workers[worker_id] = worker
        committed = await self._append(events)
        self._start_loop(worker)
        at = committed[0].at
        return WorkerRecord(
            runtime_id=self.runtime_id,
            worker_id=worker_id,
            status=WorkerStatus.RUNNING,
            spec=spec,
            transcript_len=0,
            queued=0,
            current_run_id=None,
            current_run_status=None,
            terminal_event_id=None,
            last_seq=committed[-1].seq,
            created_at=at,
            updated_at=at,
        )

    def _diagnostic_new(
        self, severity: DiagnosticSeverity, code: str, message: str, worker_id: str | None
    ) -> NewEvent:
        return self._new(
            "diagnostic.raised",
            f"{severity}: {code}: {message}",
            worker_id=worker_id,
            payload={"severity": severity, "code": code, "message": message},
        )

    async def list_workers(self) -> list[WorkerRecord]:
        return await self.store.workers(self.runtime_id)

    async def worker_detail(self, ref: WorkerRef) -> WorkerRecord:
        self._check_ref(ref)
        record = await self.store.worker(self.runtime_id, ref.worker_id)
        if record is None:
            raise WorkerNotFound(self.runtime_id, ref.worker_id)
        return record

    async def transcript_page(self, ref: WorkerRef, start: int, limit: int) -> TranscriptPage:
        maximum = self.limits.max_transcript_projection_items
        if limit > maximum:
            raise LimitTooLarge("transcript page", limit, maximum)
        self._check_ref(ref)
        if ref.worker_id not in self._workers:
            raise WorkerNotFound(self.runtime_id, ref.worker_id)
        if start < 0 or limit < 1:
            raise InvalidRequest("transcript pages need start >= 0 and limit >= 1")
        return await self.store.transcript(ref, start, limit)

    def cursor_from_start(self) -> EventCursor:
        return EventCursor(runtime_id=self.runtime_id, next_seq=1)

    async def cursor_now(self) -> EventCursor:
        return EventCursor(
            runtime_id=self.runtime_id, next_seq=await self.store.last_seq(self.runtime_id) + 1
        )

    async def read_events(self, cursor: EventCursor, limit: int) -> EventBatch:
        if cursor.runtime_id != self.runtime_id:
            raise WrongRuntimeCursor(self.runtime_id, cursor.runtime_id)
        maximum = self.limits.max_event_batch_items
        if limit > maximum:
            raise LimitTooLarge("event batch", limit, maximum)
        if limit < 1:
            raise InvalidRequest("event batches need limit >= 1")
        # Read exactly `limit`, then look one event further only if the batch is full:
        # asking the store for limit + 1 broke a batch of exactly the maximum (the
        # store refuses more than its own maximum, which is the default limit).
        events = await self.store.read_runtime(self.runtime_id, cursor.next_seq - 1, limit)
        next_seq = events[-1].seq + 1 if events else cursor.next_seq
        has_more = len(events) == limit and bool(
            await self.store.read_runtime(self.runtime_id, next_seq - 1, 1)
        )
        return EventBatch(
            runtime_id=self.runtime_id,
            events=events,
            cursor=EventCursor(runtime_id=self.runtime_id, next_seq=next_seq),
            has_more=has_more,
        )

    async def diagnostics(self, limit: int = 1000) -> list[Diagnostic]:
        return await self.store.diagnostics(self.runtime_id, limit)

    async def runs(self, ref: WorkerRef, limit: int = 100) -> list[RunRecord]:
        self._worker(ref)
        return await self.store.runs(self.runtime_id, ref.worker_id, limit)

    # -- input and runs ----------------------------------------------------------

    async def send_input(self, ref: WorkerRef, content: str, role: str = "user") -> InputAck:
        """Put `content` in the worker's transcript and queue a run for it."""
        self._ensure_running()
        validate_input(content, role, self.limits)
        worker = self._worker(ref)
        if worker.status is not WorkerStatus.RUNNING:
            raise WorkerNotRunning(ref.worker_id, worker.status.value)
        run = RunState(worker.next_run_id(), worker.worker_id, content, role)
        sequence = worker.next_transcript_sequence()
        accepted = self._run_event_new(
            run,
            "worker.input.accepted",
            f"{role} input #{sequence}: {one_line(content)}",
            {"role": role, "content": content, "sequence": sequence},
        )
        created = self._run_event_new(
            run,
            "run.created",
            f"run {run.run_id} queued",
            {"prompt": content, "input_sequence": sequence, "role": role},
        )
        committed = self._submit([accepted, created])
        try:
            await asyncio.shield(committed)
        except asyncio.CancelledError:
            # The caller gave up, but the input may still commit: queue its run
            # when it does rather than strand a committed input.
            committed.add_done_callback(lambda done: self._queue_committed_run(done, worker, run))
            raise
        self._queue_committed_run(committed, worker, run)
        return InputAck(
            ref=ref,
            status=worker.status,
            transcript_sequence=sequence,
            event_id=accepted.event_id,
            run_id=run.run_id,
        )

    def _queue_committed_run(
        self, done: asyncio.Future[list[Event]], worker: WorkerState, run: RunState
    ) -> None:
        if done.cancelled() or done.exception() is not None:
            return
        if _is_running(worker):
            worker.queue.append(run)
            worker.wake.set()
            return
        # Stopped while the input was being committed: the run never starts.
        run_cancelled = self._run_event_new(
            run,
            "run.cancelled",
            f"run {run.run_id} cancelled",
            {"reason": f"worker {worker.status.value}"},
        )
        run.status = RunStatus.CANCELLED
        # Not recorded if the store refuses it: the run stays queued in the log,
        # and a worker that is not running has its queued runs failed at restore.
        with contextlib.suppress(EngineError, StoreError):
            self._submit([run_cancelled])

    async def stop_worker(self, ref: WorkerRef, reason: str | None = None) -> LifecycleAck:
        """Stop: the current run finishes, the queue is dropped. Idempotent."""
        return await self._end_worker(ref, WorkerStatus.STOPPED, reason)

    async def cancel_worker(self, ref: WorkerRef, reason: str | None = None) -> LifecycleAck:
        """Cancel: the current run and the queue are cancelled at once. Idempotent."""
        return await self._end_worker(ref, WorkerStatus.CANCELLED, reason)

    async def _end_worker(
        self, ref: WorkerRef, status: WorkerStatus, reason: str | None
    ) -> LifecycleAck:
        self._ensure_running()
        worker = self._worker(ref)
        if worker.status is not WorkerStatus.RUNNING:
            # The first terminal state sticks; a repeat answers with the earlier event.
            assert worker.terminal_event_id is not None
            return LifecycleAck(
                ref=ref, status=worker.status, event_id=worker.terminal_event_id, changed=False
            )
        verb = status.value
        why = reason or f"worker {verb}"
        end = self._new(
            f"worker.{verb}",
            f"worker {worker.worker_id} {verb}: {one_line(why)}",
            worker_id=worker.worker_id,
            payload={"reason": why},
        )
        tasks: list[asyncio.Task[None]] = []
        events = [
            end,
            *self._cancel_runs(
                worker, why, include_current=status is WorkerStatus.CANCELLED, tasks=tasks
            ),
        ]
        worker.status = status
        worker.terminal_event_id = end.event_id
        worker.wake.set()
        await self._append(events)
        await self._await_cancelled(tasks)
        return LifecycleAck(ref=ref, status=status, event_id=end.event_id, changed=True)

    def _cancel_runs(
        self,
        worker: WorkerState,
        reason: str,
        *,
        include_current: bool,
        tasks: list[asyncio.Task[None]],
    ) -> list[NewEvent]:
        """Events cancelling the worker's queue (and current run); marks them cancelled now."""
        runs = list(worker.queue)
        worker.queue.clear()
        if include_current and worker.current is not None and not worker.current.status.terminal:
            runs.insert(0, worker.current)
            if worker.current.task is not None:
                tasks.append(worker.current.task)
        events = []
        for run in runs:
            events.append(
                self._run_event_new(
                    run,
                    "run.cancelled",
                    f"run {run.run_id} cancelled: {one_line(reason)}",
                    {"reason": reason},
                )
            )
            run.status = RunStatus.CANCELLED
        return events

    async def _await_cancelled(self, tasks: list[asyncio.Task[None]]) -> None:
        """Cancel run tasks and wait until their drivers have cleaned up (processes gone)."""
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=CANCEL_WAIT_S)

    async def cancel_run(self, ref: WorkerRef, run_id: str, reason: str | None = None) -> bool:
        """Cancel `run_id` if it is the worker's current run; otherwise change nothing, return False."""
        self._ensure_running()
        worker = self._worker(ref)
        run = worker.current
        if run is None or run.run_id != run_id or run.status.terminal:
            return False
        why = reason or "cancelled by operator"
        event = self._run_event_new(
            run, "run.cancelled", f"run {run_id} cancelled: {one_line(why)}", {"reason": why}
        )
        run.status = RunStatus.CANCELLED
        await self._append([event])
        if run.task is not None:
            await self._await_cancelled([run.task])
        return True

    # -- the worker loop -----------------------------------------------------------

    def _start_loop(self, worker: WorkerState) -> None:
        worker.loop_task = asyncio.create_task(
            self._worker_loop(worker), name=f"agentdeck-{self.runtime_id}-{worker.worker_id}"
        )

    async def _next_run(self, worker: WorkerState) -> RunState | None:
        """The worker's next queued run, once it may start; None when the loop is over."""
        while True:
            if self._closed:
                return None  # closing starts nothing: queued runs wait for the next host
            if self._fault is not None:
                await self._writable.wait()  # nothing starts that could not be recorded
                continue
            if worker.queue:
                run = worker.queue.popleft()
                if not run.status.terminal:
                    return run
                continue
            if worker.status is not WorkerStatus.RUNNING:
                return None
            worker.wake.clear()
            await worker.wake.wait()

    async def _worker_loop(self, worker: WorkerState) -> None:
        try:
            while True:
                run = await self._next_run(worker)
                if run is None:
                    return
                worker.current = run
                self._active[run.run_id] = run
                run.task = asyncio.create_task(self._execute(worker, run))
                try:
                    await asyncio.shield(run.task)
                except asyncio.CancelledError:
                    # A done run task alone does not mean the run was what got cancelled:
                    # if this loop was cancelled (close) in the step in which the run
                    # ended, swallowing that left the loop waiting forever and close hung.
                    this = asyncio.current_task()
                    if run.task.done() and not (this is not None and this.cancelling()):
                        pass  # the run was cancelled, not this loop
                    else:
                        run.task.cancel()
                        with contextlib.suppress(BaseException):
                            await run.task
                        raise
                finally:
                    worker.current = None
                    if run.run_id not in self._unrecorded:
                        self._active.pop(run.run_id, None)
        finally:
            if worker.status is not WorkerStatus.RUNNING:
                await self._close_driver(worker)

    def _driver(self, worker: WorkerState) -> Driver:
        if worker.driver is None:
            if worker.profile is None:
                raise RunFailed(f"profile {worker.spec.profile!r} is no longer in the config")
            worker.driver = make_driver(worker.profile, WorkerCtx(self, worker))
        return worker.driver

    async def _close_driver(self, worker: WorkerState) -> None:
        driver, worker.driver = worker.driver, None
        if driver is not None:
            with contextlib.suppress(Exception):
                await driver.close()

    async def _execute(self, worker: WorkerState, run: RunState) -> None:
        try:
            try:
                result = await self._drive(worker, run)
            except RunFailed as exc:
                final = (
                    "run.failed",
                    f"run {run.run_id} failed: {one_line(exc.reason)}",
                    {"error": exc.reason, **exc.payload},
                )
            except (StoreError, StorageUnavailable):
                raise
            except Exception as exc:  # a driver bug fails its run, never the host
                final = (
                    "run.failed",
                    f"run {run.run_id} failed: driver error",
                    {"error": f"driver error: {exc!r}"},
                )
            else:
                final = (
                    "run.completed",
                    f"run {run.run_id} completed",
                    {"result": result[:MAX_RESULT_CHARS]},
                )
            await self.run_event(run, *final)
        except asyncio.CancelledError:
            return  # whoever cancelled has already recorded why (or will: _recover)
        except (StoreError, StorageUnavailable):
            # Its events could not be recorded; the driver has ended its program.
            self._lose(run)

    async def _drive(self, worker: WorkerState, run: RunState) -> str:
        await self.run_event(run, "run.planning", f"run {run.run_id} planning")
        driver = self._driver(worker)
        ctx = RunCtx(
            self,
            worker,
            run,
            RunInput(
                run.run_id,
                worker.worker_id,
                "system" if run.role == "system" else "user",
                run.prompt,
            ),
        )
        result = await driver.run(ctx)
        if run.status is RunStatus.EXECUTING:
            # Every completed run passes through verifying (DESIGN.md section 3);
            # a driver that does not report that phase (command profiles) gets it
            # here, so a run's lifecycle reads the same whatever its driver.
            await self.run_event(run, "run.verifying", f"run {run.run_id} verifying")
        return result

    async def run_event(
        self, run: RunState, kind: str, message: str, payload: dict[str, Any] | None = None
    ) -> None:
        """Emit an event of a run; nothing once the run is terminal (cancelled is sticky)."""
        if run.status.terminal:
            return
        status = _STATUS_OF.get(kind)
        event = self._run_event_new(run, kind, message, payload)
        if status is not None:
            run.status = status
        await self._append([event])

    async def worker_output(
        self, worker: WorkerState, run: RunState | None, role: str, content: str
    ) -> None:
        if run is not None and run.status.terminal:
            return
        sequence = worker.next_transcript_sequence()
        payload = {"role": role, "content": content, "sequence": sequence}
        message = f"{role}: {one_line(content)}"
        if run is not None:
            event = self._run_event_new(run, "worker.output", message, payload)
        else:
            event = self._new("worker.output", message, worker_id=worker.worker_id, payload=payload)
        await self._append([event])

    async def worker_event(
        self, worker: WorkerState, kind: str, message: str, payload: dict[str, Any] | None = None
    ) -> None:
        await self._append([self._new(kind, message, worker_id=worker.worker_id, payload=payload)])

    async def raise_diagnostic(
        self, severity: DiagnosticSeverity, code: str, message: str, worker_id: str | None
    ) -> None:
        await self._append([self._diagnostic_new(severity, code, message, worker_id)])

    # -- following -----------------------------------------------------------------

    def subscribe(self, room: Room | None = None, after_position: int = 0) -> Subscription:
        """This runtime's events (or a room's), replayed after a position, then live."""
        room = room or Room(self.runtime_id)
        if room.runtime_id != self.runtime_id:
            raise WrongRuntime(self.runtime_id, room.runtime_id)
        return self.store.subscribe(after_position, room.filter())

    async def subscribe_cursor(self, cursor: EventCursor, room: Room | None = None) -> Subscription:
        """Resume at a runtime cursor (next seq)."""
        if cursor.runtime_id != self.runtime_id:
            raise WrongRuntimeCursor(self.runtime_id, cursor.runtime_id)
        return self.subscribe(room, await self._position_before_seq(cursor.next_seq))

    async def subscribe_run(self, run_id: str, after_run_seq: int = 0) -> Subscription:
        """Resume a run's stream at `run_id` + `run_seq`."""
        position = 0
        if after_run_seq > 0:
            found = await self.store.read_run(self.runtime_id, run_id, after_run_seq - 1, 1)
            position = found[0].position if found else 0
        run = await self.store.run(self.runtime_id, run_id)
        worker_id = run.worker_id if run else None
        return self.subscribe(Room(self.runtime_id, worker_id, run_id), position)

    async def _position_before_seq(self, next_seq: int) -> int:
        if next_seq <= 1:
            return 0
        found = await self.store.read_runtime(self.runtime_id, next_seq - 2, 1)
        return found[0].position if found else 0


_STATUS_OF = {
    "run.planning": RunStatus.PLANNING,
    "run.executing": RunStatus.EXECUTING,
    "run.verifying": RunStatus.VERIFYING,
    "run.completed": RunStatus.COMPLETED,
    "run.failed": RunStatus.FAILED,
    "run.cancelled": RunStatus.CANCELLED,
}


def _is_running(worker: WorkerState) -> bool:
    # A function, not an inline test: the status may have changed during an await.
    return worker.status is WorkerStatus.RUNNING


def _intent_text(spec: CreateWorkerRequest) -> str:
    intent = spec.intent
    if intent.type == "task":
        return f"task: {one_line(intent.objective, 60)}"
    if intent.type == "role":
        return f"role: {intent.role}"
    return "assistant" + (f": {one_line(intent.purpose, 60)}" if intent.purpose else "")
