"""`Runtime`: the only way state changes.

A façade over three parts, each in its own module:

- hosting (engine.hosting: the lease; engine.opening: taking over from a
  dead host and opening or restoring the log),
- scheduling (engine.scheduling: workers, queues, loops, drivers, runs),
- the emitter (engine.emitter: events built through the catalog, sequenced,
  submitted; the hold and recovery when the store refuses a write),

with the operator's operations in engine.operations and reads in
engine.reading. Every operation checks the runtime first (`_ensure_running`),
then validates, then builds its events and submits them to the store in one
append (one transaction with their projection changes), then answers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from uuid import UUID

from engine.clock import Clock, IdSource, SystemClock, Uuid7Ids
from engine.commanding import CommandScope
from engine.emitter import Emitter
from engine.errors import (
    InvalidRequest,
    ReadOnlyRuntime,
    RuntimeStopped,
    StorageUnavailable,
    StoreFault,
)
from engine.hosting import HostLeaseHolder
from engine.inbox import Inbox
from engine.opening import Opening
from engine.operations import Operations
from engine.profiles import ConfigError, ProfileSet, ProfileWatcher
from engine.reading import Reading
from engine.results import CreateWorkerRequest, EventBatch, EventCursor, InputAck, LifecycleAck
from engine.rooms import Room
from engine.scheduling import Scheduler
from engine.validation import Refusal, worker_spec_refusal
from store.catalog import Empty
from store.feed import Subscription
from store.interface import EventLog
from store.models import (
    RUNTIME_ID_RE,
    Diagnostic,
    Limits,
    NewEvent,
    RunRecord,
    RuntimeStatus,
    RuntimeSummary,
    TranscriptPage,
    WorkerRecord,
    WorkerRef,
    WorkerStatus,
)

HOST_CLOSED = "host closed"


class Runtime:
    """A hosted runtime. Make one with `await Runtime.host(store, name)`."""

    def __init__(
        self,
        store: EventLog,
        runtime_id: str,
        *,
        profiles: ProfileSet,
        clock: Clock,
        ids: IdSource,
        limits: Limits,
    ) -> None:
        self.store = store
        self.runtime_id = runtime_id
        self.clock = clock
        self.ids = ids
        self.limits = limits
        self.status = RuntimeStatus.RUNNING
        self._stop_event_id: UUID | None = None
        self._emitter = Emitter(store, runtime_id, clock, ids)
        self._scheduler = Scheduler(store, runtime_id, self._emitter, profiles)
        self._operations = Operations(runtime_id, self._emitter, self._scheduler)
        self._reading = Reading(store, runtime_id, self._scheduler)
        self._emitter.on_recovery(
            still_hosting=self._still_hosting,
            resync=self._scheduler.resync,
            resumed=self._scheduler.wake_all,
        )
        self._lease: HostLeaseHolder | None = None
        self._inbox: Inbox | None = None
        self._closed = False
        self._opened = False
        self._watcher: ProfileWatcher | None = None
        self._early_config_errors: list[ConfigError] = []

    # -- hosting -------------------------------------------------------------------

    @classmethod
    async def host(
        cls,
        store: EventLog,
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
        lease_token: str | None = None,
    ) -> Runtime:
        """Open or create the runtime `runtime_id` and host it in this process.

        Raises RuntimeBusy if a live process hosts it already. A runtime whose
        previous host died has its unfinished runs failed ("host exited") and
        its queues resumed. With `config_path`, profiles come from that TOML
        file and follow its changes live; a bad file keeps the last good
        profiles and raises a `config.invalid` diagnostic naming the line.
        `lease_token`: the token a closing host passed its lease on with
        (`close(successor_token=...)`), so this one takes over at once.
        """
        if not RUNTIME_ID_RE.fullmatch(runtime_id):
            raise InvalidRequest(
                f"runtime name {runtime_id!r} is not valid: use lowercase letters, digits, '.', '_', '-'"
            )
        if store.read_only:
            raise ReadOnlyRuntime(runtime_id, "the database was opened read-only")
        runtime = cls(
            store,
            runtime_id,
            profiles=profiles or ProfileSet(profiles={}, default_profile=None, path=None),
            clock=clock or SystemClock(),
            ids=ids or Uuid7Ids(),
            limits=limits or Limits(),
        )
        # The lease runs on wall time, not on the injected clock: heartbeats are
        # compared by other processes with their own clocks (a test clock far from
        # now made a live host look stale), and each beat would consume a reading
        # of the event clock, so event times would depend on scheduling.
        lease = HostLeaseHolder(
            store, runtime_id, SystemClock(), heartbeat_s, stale_after_s, token=lease_token
        )
        await lease.acquire()
        runtime._lease = lease
        runtime._emitter.fence = lease.token
        runtime._emitter.on_fenced(lease.mark_lost)
        runtime._scheduler.host_mark = lease.mark
        try:
            opening = Opening(store, runtime_id, lease, runtime._emitter, runtime._scheduler)
            await opening.end_leftovers()
            await opening.repair_projections()
            if config_path is not None:
                runtime._watcher = ProfileWatcher(
                    config_path, runtime._scheduler.profiles_changed, runtime._profiles_invalid
                )
                runtime._scheduler.profiles = await runtime._watcher.start()
            opened = await opening.open(runtime.limits, display_name)
            runtime.limits, runtime.status = opened.limits, opened.status
            runtime._stop_event_id = opened.stop_event_id
            runtime._opened = True
            for error in runtime._early_config_errors:
                await runtime._profiles_invalid(error)
            # Last: commands run against a runtime that is fully open, and the ones
            # left pending by a host that died run now (or are refused as expired).
            runtime._inbox = Inbox(runtime)
            await runtime._inbox.start()
        except BaseException:
            if runtime._inbox is not None:
                await runtime._inbox.close()
            if runtime._watcher is not None:
                await runtime._watcher.stop()
            await lease.release()
            raise
        return runtime

    @property
    def profiles(self) -> ProfileSet:
        """The profiles new workers are made from (the config file's, live)."""
        return self._scheduler.profiles

    @profiles.setter
    def profiles(self, profiles: ProfileSet) -> None:
        self._scheduler.profiles_changed(profiles)

    @property
    def host_mark(self) -> str:
        """The mark every program this host starts carries (see engine.leftovers)."""
        return self._lease.mark if self._lease is not None else ""

    async def _still_hosting(self) -> bool:
        return self._lease is None or await self._lease.beat()

    async def _profiles_invalid(self, error: ConfigError) -> None:
        if not self._opened:
            self._early_config_errors.append(error)
            return
        if self.status is RuntimeStatus.RUNNING and not self._closed:
            with contextlib.suppress(Exception):
                await self._emitter.diagnostic("error", "config.invalid", str(error), None)

    async def close(self, *, successor_token: str | None = None) -> None:
        """Stop hosting: unfinished runs fail ("host closed"), queues stay for the next host.

        With `successor_token` the lease is passed on, not released: the host that
        claims it with that token takes over with no moment unhosted (a hand-over).
        """
        if self._closed:
            return
        self._closed = True
        if self._inbox is not None:
            # Commands not started yet stay pending for the next host.
            await self._inbox.close()
        self._scheduler.closing = True
        await self._emitter.close()  # loops waiting out a store fault end now
        if self._watcher is not None:
            await self._watcher.stop()
        events = self._scheduler.unfinished_failures(HOST_CLOSED)
        if events:
            with contextlib.suppress(Exception):
                await self._emitter.append(events)
        await self._scheduler.stop()
        if self._lease is not None:
            if successor_token is not None:
                await self._lease.pass_to(successor_token)
            else:
                await self._lease.release()

    # -- the store-fault hold ------------------------------------------------------

    @property
    def fault(self) -> StoreFault | None:
        """Why this runtime cannot record anything right now (None when it can)."""
        return self._emitter.fault

    def add_fault_listener(self, listener: Callable[[StoreFault | None], None]) -> None:
        """Call `listener(fault)` when the store stops taking writes, and `(None)` when it does again."""
        self._emitter.add_fault_listener(listener)

    @property
    def lease_lost(self) -> bool:
        """Whether another process took over hosting this runtime (this one must stop)."""
        return self._lease is not None and self._lease.lost

    def work_in_progress(self) -> tuple[list[str], int]:
        """Runs in progress here (closing fails them) and how many are queued (they stay)."""
        return self._scheduler.work_in_progress()

    # -- checks --------------------------------------------------------------------

    def _ensure_running(self) -> None:
        if self.lease_lost:
            raise ReadOnlyRuntime(self.runtime_id, "another process took over hosting it")
        if self.status is RuntimeStatus.STOPPED or self._closed:
            raise RuntimeStopped(self.runtime_id)
        if self._emitter.fault is not None:
            raise StorageUnavailable(self.runtime_id, self._emitter.fault)

    # -- the runtime ---------------------------------------------------------------

    async def summary(self) -> RuntimeSummary:
        return await self._reading.summary()

    async def stop_runtime(self, *, command: CommandScope | None = None) -> UUID:
        """Stop the runtime (idempotent): running workers stop, runs are cancelled."""
        if self.status is RuntimeStatus.STOPPED and self._stop_event_id is not None:
            return self._stop_event_id
        self._ensure_running()
        scheduler = self._scheduler
        events: list[NewEvent] = []
        tasks: list[asyncio.Task[None]] = []
        for worker in scheduler.workers.values():
            # Every worker, not only running ones: a stopped worker may still be
            # finishing its last run, which kept emitting after runtime.stopped.
            events.extend(
                scheduler.cancel_runs(worker, "runtime stopped", include_current=True, tasks=tasks)
            )
        stop = self._emitter.new("runtime.stopped", f"runtime {self.runtime_id} stopped", Empty())
        events.append(stop)
        self.status = RuntimeStatus.STOPPED
        for worker in scheduler.workers.values():
            if worker.status is WorkerStatus.RUNNING:
                worker.status = WorkerStatus.STOPPED
                worker.terminal_event_id = stop.event_id
                worker.wake.set()
        # Known before the commit: a concurrent repeat (while this one awaits its
        # commit) must answer with this event, not fail with RuntimeStopped.
        self._stop_event_id = stop.event_id
        if command is not None:
            events.append(command.completed(self._emitter, stop.event_id))
        await self._emitter.append(events)
        await scheduler.await_cancelled(tasks)
        return stop.event_id

    # -- workers and runs ----------------------------------------------------------

    def worker_request_refusal(self, request: CreateWorkerRequest) -> Refusal | None:
        """What `create_worker` would refuse in `request`, as the field at fault (or None)."""
        return worker_spec_refusal(request, self.profiles)

    # Each takes the `command` it executes for the inbox (engine.inbox), whose
    # outcome then commits with the operation's own events.

    async def create_worker(
        self, request: CreateWorkerRequest, *, command: CommandScope | None = None
    ) -> WorkerRecord:
        self._ensure_running()
        return await self._operations.create_worker(request, self.profiles, self.limits, command)

    async def send_input(
        self,
        ref: WorkerRef,
        content: str,
        role: str = "user",
        *,
        command: CommandScope | None = None,
    ) -> InputAck:
        """Put `content` in the worker's transcript and queue a run for it."""
        self._ensure_running()
        return await self._operations.send_input(ref, content, role, self.limits, command)

    async def stop_worker(
        self, ref: WorkerRef, reason: str | None = None, *, command: CommandScope | None = None
    ) -> LifecycleAck:
        """Stop: the current run finishes, the queue is dropped. Idempotent."""
        self._ensure_running()
        return await self._operations.end_worker(ref, WorkerStatus.STOPPED, reason, command)

    async def cancel_worker(
        self, ref: WorkerRef, reason: str | None = None, *, command: CommandScope | None = None
    ) -> LifecycleAck:
        """Cancel: the current run and the queue are cancelled at once. Idempotent."""
        self._ensure_running()
        return await self._operations.end_worker(ref, WorkerStatus.CANCELLED, reason, command)

    async def cancel_run(
        self,
        ref: WorkerRef,
        run_id: str,
        reason: str | None = None,
        *,
        command: CommandScope | None = None,
    ) -> bool:
        """Cancel `run_id` if it is the worker's current run; otherwise change nothing, return False."""
        self._ensure_running()
        return await self._operations.cancel_run(ref, run_id, reason, command)

    @property
    def emitter(self) -> Emitter:
        """Where this runtime's events are built and submitted (the inbox records outcomes)."""
        return self._emitter

    # -- reading -------------------------------------------------------------------

    async def list_workers(self) -> list[WorkerRecord]:
        return await self.store.workers(self.runtime_id)

    async def worker_detail(self, ref: WorkerRef) -> WorkerRecord:
        return await self._reading.worker_detail(ref)

    async def transcript_page(self, ref: WorkerRef, start: int, limit: int) -> TranscriptPage:
        return await self._reading.transcript_page(ref, start, limit, self.limits)

    def cursor_from_start(self) -> EventCursor:
        return EventCursor(runtime_id=self.runtime_id, next_seq=1)

    async def cursor_now(self) -> EventCursor:
        return EventCursor(
            runtime_id=self.runtime_id, next_seq=await self.store.last_seq(self.runtime_id) + 1
        )

    async def read_events(self, cursor: EventCursor, limit: int) -> EventBatch:
        return await self._reading.read_events(cursor, limit, self.limits)

    async def diagnostics(self, limit: int = 1000) -> list[Diagnostic]:
        return await self._reading.diagnostics(limit)

    async def runs(self, ref: WorkerRef, limit: int = 100) -> list[RunRecord]:
        return await self._reading.runs(ref, limit)

    def subscribe(self, room: Room | None = None, after_position: int = 0) -> Subscription:
        """This runtime's events (or a room's), replayed after a position, then live."""
        return self._reading.subscribe(room, after_position)

    async def subscribe_cursor(self, cursor: EventCursor, room: Room | None = None) -> Subscription:
        """Resume at a runtime cursor (next seq)."""
        return await self._reading.subscribe_cursor(cursor, room)

    async def subscribe_run(self, run_id: str, after_run_seq: int = 0) -> Subscription:
        """Resume a run's stream at `run_id` + `run_seq`."""
        return await self._reading.subscribe_run(run_id, after_run_seq)
