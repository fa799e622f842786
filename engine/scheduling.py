"""Scheduling: the workers this host runs, their queues, loops, drivers and runs.

Each running worker has one loop task that takes its queued runs one at a
time and drives each through its driver. A run's lifecycle events go through
the emitter; what moves a run is the catalog's state machine. Nothing starts
while writes are on hold (it could not be recorded) or once the host closes
(queued runs stay in the log for the next host).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from engine.drivers.base import Driver, RunFailed, RunInput
from engine.drivers.factory import make_driver
from engine.emitter import Emitter
from engine.errors import (
    EngineError,
    StorageUnavailable,
    WorkerNotFound,
    WrongRuntime,
)
from engine.leftovers import MARK_VAR
from engine.messages import one_line
from engine.profiles import ProfileSet, UnknownProfile
from engine.run_context import RunCtx, WorkerCtx
from engine.state import Profile, RunState, WorkerState, run_number
from store import catalog
from store.catalog import Empty, RunCancelled, RunCompleted, RunCreated
from store.catalog import RunFailed as RunFailedPayload
from store.errors import InvalidEvent, StoreError
from store.interface import EventLog
from store.models import Event, NewEvent, RunRecord, RunStatus, WorkerRef, WorkerStatus

CANCEL_WAIT_S = 10.0
MAX_RESULT_CHARS = 4000


class Scheduler:
    """The host's workers and what they are doing (see the module docstring)."""

    def __init__(self, store: EventLog, runtime_id: str, emitter: Emitter, profiles: ProfileSet):
        self.store = store
        self.runtime_id = runtime_id
        self.emitter = emitter
        self.profiles = profiles
        self.workers: dict[str, WorkerState] = {}
        self.next_worker_no = 1
        self.host_mark = ""  # the mark every program this host starts carries (leftovers)
        self.closing = False

    # -- the worker registry ---------------------------------------------------------

    def profile_or_none(self, name: str) -> Profile | None:
        try:
            return self.profiles.resolve(name)
        except UnknownProfile:
            return None

    def profiles_changed(self, profiles: ProfileSet) -> None:
        # New workers get the new profiles; running workers keep the one they have,
        # except those whose profile had vanished and is now back.
        self.profiles = profiles
        for worker in self.workers.values():
            if worker.profile is None:
                worker.profile = self.profile_or_none(worker.spec.profile)

    def worker(self, ref: WorkerRef) -> WorkerState:
        """The worker `ref` names (WrongRuntime, WorkerNotFound)."""
        if ref.runtime_id != self.runtime_id:
            raise WrongRuntime(self.runtime_id, ref.runtime_id)
        worker = self.workers.get(ref.worker_id)
        if worker is None:
            raise WorkerNotFound(self.runtime_id, ref.worker_id)
        return worker

    def new_worker_id(self) -> str:
        worker_id = f"w-{self.next_worker_no}"
        self.next_worker_no += 1
        return worker_id

    def restore(self, worker: WorkerState) -> None:
        """Take back a worker the log knows (its loop starts with `start`)."""
        self.workers[worker.worker_id] = worker
        self.next_worker_no = max(self.next_worker_no, int(worker.worker_id[2:]) + 1)

    async def queued_run(self, record: RunRecord) -> RunState:
        """A run the log has queued, as this host runs it (with the role its input had)."""
        run = RunState(
            record.run_id, record.worker_id, record.prompt, "user", record.status,
            record.last_run_seq,
        )
        created = await self.store.read_run(self.runtime_id, record.run_id, 1, 1)
        if created:
            payload = catalog.payload_of(created[0])
            if isinstance(payload, RunCreated):
                run.role = payload.role.value
        return run

    def work_in_progress(self) -> tuple[list[str], int]:
        running = [
            w.current.run_id
            for w in self.workers.values()
            if w.current is not None and not w.current.status.terminal
        ]
        return running, sum(len(w.queue) for w in self.workers.values())

    # -- queues and cancels ----------------------------------------------------------

    def queue_committed_run(
        self, done: asyncio.Future[list[Event]], worker: WorkerState, run: RunState
    ) -> None:
        """Queue `run` once its input committed (cancel it if its worker ended meanwhile)."""
        if done.cancelled() or done.exception() is not None:
            return
        if _is_running(worker):
            worker.queue.append(run)
            worker.wake.set()
            return
        # Stopped while the input was being committed: the run never starts.
        run_cancelled = self.emitter.for_run(
            run,
            "run.cancelled",
            f"run {run.run_id} cancelled",
            RunCancelled(reason=f"worker {worker.status.value}"),
        )
        # Not recorded if the store refuses it: the run stays queued in the log,
        # and a worker that is not running has its queued runs failed at restore.
        with contextlib.suppress(EngineError, StoreError):
            self.emitter.submit([run_cancelled])

    def cancel_runs(
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
        return [self.cancellation(run, reason) for run in runs]

    def cancellation(self, run: RunState, reason: str) -> NewEvent:
        return self.emitter.for_run(
            run,
            "run.cancelled",
            f"run {run.run_id} cancelled: {one_line(reason)}",
            RunCancelled(reason=reason),
        )

    async def await_cancelled(self, tasks: list[asyncio.Task[None]]) -> None:
        """Cancel run tasks and wait until their drivers have cleaned up (processes gone)."""
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=CANCEL_WAIT_S)

    # -- the worker loop -------------------------------------------------------------

    def start(self, worker: WorkerState) -> None:
        worker.loop_task = asyncio.create_task(
            self._worker_loop(worker), name=f"agentdeck-{self.runtime_id}-{worker.worker_id}"
        )

    def start_all(self) -> None:
        for worker in self.workers.values():
            if worker.status is WorkerStatus.RUNNING:
                self.start(worker)

    def wake_all(self) -> None:
        for worker in self.workers.values():
            worker.wake.set()

    async def _next_run(self, worker: WorkerState) -> RunState | None:
        """The worker's next queued run, once it may start; None when the loop is over."""
        while True:
            if self.closing:
                return None  # closing starts nothing: queued runs wait for the next host
            if self.emitter.fault is not None:
                await self.emitter.wait_writable()  # nothing starts that could not be recorded
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
                self.emitter.track(run)
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
                    self.emitter.untrack(run)
        finally:
            if worker.status is not WorkerStatus.RUNNING:
                await self.close_driver(worker)

    # -- drivers and runs ------------------------------------------------------------

    def _driver(self, worker: WorkerState) -> Driver:
        if worker.driver is None:
            if worker.profile is None:
                raise RunFailed(f"profile {worker.spec.profile!r} is no longer in the config")
            env = {MARK_VAR: self.host_mark, "AGENTDECK_RUNTIME_ID": self.runtime_id}
            worker.driver = make_driver(worker.profile, WorkerCtx(self.emitter, worker, env))
        return worker.driver

    async def close_driver(self, worker: WorkerState) -> None:
        driver, worker.driver = worker.driver, None
        if driver is not None:
            with contextlib.suppress(Exception):
                await driver.close()

    async def _execute(self, worker: WorkerState, run: RunState) -> None:
        emitter = self.emitter
        try:
            try:
                result = await self._drive(worker, run)
            except RunFailed as exc:
                facts: dict[str, Any] = (
                    exc.facts.model_dump(exclude_none=True) if exc.facts is not None else {}
                )
                await emitter.run_event(
                    run,
                    "run.failed",
                    f"run {run.run_id} failed: {one_line(exc.reason)}",
                    RunFailedPayload(error=exc.reason, **facts),
                )
            except InvalidEvent as exc:
                # The driver emitted an event the catalog refuses: its bug fails its run.
                await emitter.run_event(run, *_driver_error(run, exc))
            except (StoreError, StorageUnavailable):
                raise
            except Exception as exc:  # a driver bug fails its run, never the host
                await emitter.run_event(run, *_driver_error(run, exc))
            else:
                await emitter.run_event(
                    run,
                    "run.completed",
                    f"run {run.run_id} completed",
                    RunCompleted(result=result[:MAX_RESULT_CHARS]),
                )
        except asyncio.CancelledError:
            return  # whoever cancelled has already recorded why (or will: recovery)
        except (StoreError, StorageUnavailable):
            # Its events could not be recorded; the driver has ended its program.
            emitter.lose(run)

    async def _drive(self, worker: WorkerState, run: RunState) -> str:
        await self.emitter.run_event(run, "run.planning", f"run {run.run_id} planning", Empty())
        driver = self._driver(worker)
        ctx = RunCtx(
            self.emitter,
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
            await self.emitter.run_event(
                run, "run.verifying", f"run {run.run_id} verifying", Empty()
            )
        return result

    # -- recovery and closing --------------------------------------------------------

    async def resync(self) -> None:
        """Re-read what refused appends left this host's picture ahead of."""
        records = {r.worker_id: r for r in await self.store.workers(self.runtime_id)}
        newest = await self.store.newest_run_ids(self.runtime_id)
        queued: dict[str, list[RunRecord]] = {}
        for open_run in await self.store.open_runs(self.runtime_id):
            if open_run.status is RunStatus.CREATED:
                queued.setdefault(open_run.worker_id, []).append(open_run)
        for worker_id, worker in list(self.workers.items()):
            record = records.get(worker_id)
            if record is None:
                # Its creation never reached the log.
                del self.workers[worker_id]
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
                run = known.get(record_run.run_id) or await self.queued_run(record_run)
                run.status = RunStatus.CREATED
                run.run_seq = record_run.last_run_seq
                worker.queue.append(run)
        self.next_worker_no = 1 + max((int(w[2:]) for w in records), default=0)

    def unfinished_failures(self, reason: str) -> list[NewEvent]:
        """Failures of the runs in progress (closing: no host will finish them)."""
        return [
            self.emitter.run_failure(worker.current, reason)
            for worker in self.workers.values()
            if worker.current is not None and not worker.current.status.terminal
        ]

    async def stop(self) -> None:
        """End every worker loop and close every driver (their programs end)."""
        for worker in self.workers.values():
            if worker.loop_task is not None:
                worker.loop_task.cancel()
        for worker in self.workers.values():
            if worker.loop_task is not None:
                with contextlib.suppress(BaseException):
                    await worker.loop_task
            await self.close_driver(worker)


def _is_running(worker: WorkerState) -> bool:
    # A function, not an inline test: the status may have changed during an await.
    return worker.status is WorkerStatus.RUNNING


def _driver_error(run: RunState, exc: Exception) -> tuple[str, str, RunFailedPayload]:
    return (
        "run.failed",
        f"run {run.run_id} failed: driver error",
        RunFailedPayload(error=f"driver error: {exc!r}"),
    )
