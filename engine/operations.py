"""The operator's changes to workers and runs: create, input, stop, cancel.

Each validates first (in the seed's order of checks; the runtime's own
checks come before, in `Runtime`), then builds its events through the
emitter and commits them in one append, then acts on the scheduler: a
worker's loop starts, a queued run joins its queue, a cancelled run's driver
is told and awaited.
"""

from __future__ import annotations

import asyncio

from engine.commanding import CommandScope
from engine.emitter import Emitter
from engine.errors import LimitTooLarge, ReadOnlyRuntime, WorkerNotRunning
from engine.messages import intent_text, one_line
from engine.profiles import ProfileSet
from engine.results import CreateWorkerRequest, InputAck, LifecycleAck
from engine.scheduling import Scheduler
from engine.state import RunState, WorkerState
from engine.validation import validate_input, validate_worker_request
from store.catalog import RunCreated, TranscriptAppended, WorkerCreated, WorkerEnded
from store.errors import HostFenced
from store.models import Limits, Role, WorkerRecord, WorkerRef, WorkerStatus


class Operations:
    """Worker and run operations of one hosted runtime."""

    def __init__(self, runtime_id: str, emitter: Emitter, scheduler: Scheduler) -> None:
        self._runtime_id = runtime_id
        self._emitter = emitter
        self._scheduler = scheduler

    async def create_worker(
        self,
        request: CreateWorkerRequest,
        profiles: ProfileSet,
        limits: Limits,
        command: CommandScope | None = None,
    ) -> WorkerRecord:
        scheduler, emitter = self._scheduler, self._emitter
        profile = validate_worker_request(request, profiles)
        if len(scheduler.workers) >= limits.max_workers:
            raise LimitTooLarge("worker count", len(scheduler.workers) + 1, limits.max_workers)
        worker_id = scheduler.new_worker_id()
        spec = request.model_copy(update={"profile": profile.name})
        events = [
            emitter.new(
                "worker.created",
                f"worker {worker_id} created ({intent_text(spec)}, {profile.name})",
                WorkerCreated(spec=spec),
                worker_id=worker_id,
            )
        ]
        if spec.config_bundle is None:
            events.append(
                emitter.diagnostic_new(
                    "info",
                    "runtime.local_default_resources",
                    "worker created without a config bundle; runtime-local defaults are assumed",
                    worker_id,
                )
            )
        if not spec.capabilities:
            events.append(
                emitter.diagnostic_new(
                    "info",
                    "worker.tools_less",
                    "worker created without requested tool capabilities",
                    worker_id,
                )
            )
        worker = WorkerState(
            worker_id=worker_id, status=WorkerStatus.RUNNING, spec=spec, profile=profile
        )
        at = events[0].at
        record = WorkerRecord(
            runtime_id=self._runtime_id,
            worker_id=worker_id,
            status=WorkerStatus.RUNNING,
            spec=spec,
            transcript_len=0,
            queued=0,
            current_run_id=None,
            current_run_status=None,
            terminal_event_id=None,
            last_seq=0,  # known at commit
            created_at=at,
            updated_at=at,
        )
        own = len(events)
        if command is not None:
            events.append(command.completed(emitter, record))
        scheduler.workers[worker_id] = worker
        committed = await emitter.append(events)
        scheduler.start(worker)
        return record.model_copy(update={"last_seq": committed[own - 1].seq})

    async def send_input(
        self,
        ref: WorkerRef,
        content: str,
        role: str,
        limits: Limits,
        command: CommandScope | None = None,
    ) -> InputAck:
        validate_input(content, role, limits)
        worker = self._scheduler.worker(ref)
        if worker.status is not WorkerStatus.RUNNING:
            raise WorkerNotRunning(ref.worker_id, worker.status.value)
        run = RunState(worker.next_run_id(), worker.worker_id, content, role)
        sequence = worker.next_transcript_sequence()
        accepted = self._emitter.for_run(
            run,
            "worker.input.accepted",
            f"{role} input #{sequence}: {one_line(content)}",
            TranscriptAppended(role=Role(role), content=content, sequence=sequence),
        )
        created = self._emitter.for_run(
            run,
            "run.created",
            f"run {run.run_id} queued",
            RunCreated(prompt=content, input_sequence=sequence, role=Role(role)),
        )
        ack = InputAck(
            ref=ref,
            status=worker.status,
            transcript_sequence=sequence,
            event_id=accepted.event_id,
            run_id=run.run_id,
        )
        events = [accepted, created]
        if command is not None:
            events.append(command.completed(self._emitter, ack))
        committed = self._emitter.submit(events)
        queue = self._scheduler.queue_committed_run
        try:
            await asyncio.shield(committed)
        except HostFenced:
            raise ReadOnlyRuntime(self._runtime_id, "another process took over hosting it") from None
        except asyncio.CancelledError:
            # The caller gave up, but the input may still commit: queue its run
            # when it does rather than strand a committed input.
            committed.add_done_callback(lambda done: queue(done, worker, run))
            raise
        queue(committed, worker, run)
        return ack

    async def end_worker(
        self,
        ref: WorkerRef,
        status: WorkerStatus,
        reason: str | None,
        command: CommandScope | None = None,
    ) -> LifecycleAck:
        """Stop or cancel a worker; the first terminal state sticks."""
        worker = self._scheduler.worker(ref)
        if worker.status is not WorkerStatus.RUNNING:
            # A repeat answers with the earlier event.
            assert worker.terminal_event_id is not None
            return LifecycleAck(
                ref=ref, status=worker.status, event_id=worker.terminal_event_id, changed=False
            )
        verb = status.value
        why = reason or f"worker {verb}"
        end = self._emitter.new(
            f"worker.{verb}",
            f"worker {worker.worker_id} {verb}: {one_line(why)}",
            WorkerEnded(reason=why),
            worker_id=worker.worker_id,
        )
        tasks: list[asyncio.Task[None]] = []
        events = [
            end,
            *self._scheduler.cancel_runs(
                worker, why, include_current=status is WorkerStatus.CANCELLED, tasks=tasks
            ),
        ]
        ack = LifecycleAck(ref=ref, status=status, event_id=end.event_id, changed=True)
        if command is not None:
            events.append(command.completed(self._emitter, ack))
        worker.status = status
        worker.terminal_event_id = end.event_id
        worker.wake.set()
        await self._emitter.append(events)
        await self._scheduler.await_cancelled(tasks)
        return ack

    async def cancel_run(
        self,
        ref: WorkerRef,
        run_id: str,
        reason: str | None,
        command: CommandScope | None = None,
    ) -> bool:
        worker = self._scheduler.worker(ref)
        run = worker.current
        if run is None or run.run_id != run_id or run.status.terminal:
            return False
        events = [self._scheduler.cancellation(run, reason or "cancelled by operator")]
        if command is not None:
            events.append(command.completed(self._emitter, True))
        await self._emitter.append(events)
        if run.task is not None:
            await self._scheduler.await_cancelled([run.task])
        return True
