"""Opening a hosted runtime: after a previous host, and from the log.

Under a freshly taken lease (engine.hosting), the new host first ends what a
dead predecessor left running on this machine and repairs projections that
disagree with the log; then it opens the log: a new runtime is started, an
existing one is restored (its workers and queues taken back, the runs its
previous host died in failed, since nothing can resume them). What hosting
found and fixed is said as diagnostics once the log is open.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from uuid import UUID

from engine.drivers.base import DiagnosticSeverity
from engine.emitter import Emitter
from engine.hosting import HostLeaseHolder
from engine.leftovers import Leftover, end_leftovers, find_leftovers
from engine.profiles import CommandProfile
from engine.scheduling import Scheduler
from engine.state import RunState, WorkerState, run_number
from store.catalog import RuntimeRestored, RuntimeStarted
from store.filters import parse_filter
from store.interface import EventLog
from store.models import Limits, NewEvent, RunStatus, RuntimeStatus, WorkerStatus

HOST_EXITED = "host exited"
LEFTOVER_GRACE_S = 3.0  # for a leftover whose profile is no longer configured


@dataclass(frozen=True)
class Opened:
    """The runtime as its log has it: limits, status, and the event that stopped it."""

    limits: Limits
    status: RuntimeStatus
    stop_event_id: UUID | None = None


class Opening:
    """What a host does once, between taking the lease and running workers."""

    def __init__(
        self,
        store: EventLog,
        runtime_id: str,
        lease: HostLeaseHolder,
        emitter: Emitter,
        scheduler: Scheduler,
    ) -> None:
        self._store = store
        self._runtime_id = runtime_id
        self._lease = lease
        self._emitter = emitter
        self._scheduler = scheduler
        self._notes: list[tuple[DiagnosticSeverity, str, str]] = []
        self._leftovers: list[Leftover] = []
        self._elsewhere: str | None = None  # the dead host's machine, when not this one
        self._elsewhere_pid = 0

    # -- after a previous host ---------------------------------------------------------

    async def end_leftovers(self) -> None:
        """End what a previous host of this runtime left running on this machine."""
        replaced = self._lease.replaced
        if replaced is None:
            return
        if replaced.lease.host_name != self._lease.host_name:
            # Said once the runs it was in are known (`_resume_runs`), naming their programs.
            self._elsewhere = replaced.lease.host_name
            self._elsewhere_pid = replaced.lease.pid
            return
        found = await asyncio.to_thread(find_leftovers, replaced.mark)
        if not found:
            return
        grace = max(self._grace_of(leftover) for leftover in found)
        await end_leftovers(found, grace)
        self._leftovers = found
        listed = "; ".join(leftover.describe() for leftover in found[:5])
        more = f"; and {len(found) - 5} more" if len(found) > 5 else ""
        self._note(
            "warning",
            "host.takeover",
            f"ended {len(found)} process{'es' if len(found) != 1 else ''} that the previous "
            f"host (pid {replaced.lease.pid}) left running: {listed}{more}",
        )

    async def repair_projections(self) -> None:
        """Rebuild this runtime's projections from its log if they disagree with it.

        A cheap check (counts and heads, store.rebuild); a projection row lost
        or edited by hand would otherwise make this host drop a worker and
        reuse its id. Runs under the lease, before anything is read from them.
        """
        report = await self._store.repair_projections(self._runtime_id)
        if report is not None:
            self._note("warning", "store.projections_rebuilt", report.summary())

    def _note(self, severity: DiagnosticSeverity, code: str, message: str) -> None:
        self._notes.append((severity, code, message))

    def _grace_of(self, leftover: Leftover) -> float:
        profile = self._scheduler.profile_or_none(leftover.profile) if leftover.profile else None
        grace = profile.grace if isinstance(profile, CommandProfile) else LEFTOVER_GRACE_S
        return min(grace, LEFTOVER_GRACE_S * 3)

    # -- from the log ------------------------------------------------------------------

    async def open(self, limits: Limits, display_name: str | None) -> Opened:
        """Start the runtime, or restore it (its workers' loops start running)."""
        emitter = self._emitter
        record = await self._store.runtime(self._runtime_id)
        await emitter.resume_from_log()
        if record is None:
            started = RuntimeStarted(limits=limits, display_name=display_name)
            await emitter.append(
                [emitter.new("runtime.started", f"runtime {self._runtime_id} started", started)]
            )
            return Opened(limits, RuntimeStatus.RUNNING)
        await self._restore_workers()
        if record.status is RuntimeStatus.STOPPED:
            found = await self._store.read_after(
                0, 1, parse_filter(f"runtime:{self._runtime_id} kind:runtime.stopped")
            )
            self._note_elsewhere([])
            if self._notes:
                await emitter.append(self._diagnostics())
            stop_id = found.events[0].event_id if found.events else None
            return Opened(record.limits, RuntimeStatus.STOPPED, stop_id)
        events = [
            emitter.new(
                "runtime.restored",
                f"runtime {self._runtime_id} restored",
                RuntimeRestored(pid=self._lease.pid),
            )
        ]
        events.extend(await self._resume_runs())
        events.extend(self._diagnostics())
        await emitter.append(events)
        self._scheduler.start_all()
        return Opened(record.limits, RuntimeStatus.RUNNING)

    async def _restore_workers(self) -> None:
        newest_runs = await self._store.newest_run_ids(self._runtime_id)
        for rec in await self._store.workers(self._runtime_id):
            newest = newest_runs.get(rec.worker_id)
            self._scheduler.restore(
                WorkerState(
                    worker_id=rec.worker_id,
                    status=rec.status,
                    spec=rec.spec,
                    profile=self._scheduler.profile_or_none(rec.spec.profile),
                    transcript_len=rec.transcript_len,
                    runs_made=run_number(newest) if newest else 0,
                    terminal_event_id=rec.terminal_event_id,
                )
            )

    async def _resume_runs(self) -> list[NewEvent]:
        """Queue again the runs that were waiting; fail the ones the previous host was in."""
        events: list[NewEvent] = []
        programs: list[str] = []
        workers = self._scheduler.workers
        for run in await self._store.open_runs(self._runtime_id):
            worker = workers.get(run.worker_id)
            if run.status is RunStatus.CREATED and worker and worker.status is WorkerStatus.RUNNING:
                worker.queue.append(await self._scheduler.queued_run(run))
                continue
            run_state = RunState(
                run.run_id, run.worker_id, run.prompt, "user", run.status, run.last_run_seq
            )
            # The previous host died mid-run: nothing can resume it, so say so.
            if self._elsewhere is not None:
                programs += await self._programs_of(run.run_id)
            ended = [lo.ended_process() for lo in self._leftovers if lo.run_id == run.run_id]
            events.append(
                self._emitter.run_failure(
                    run_state,
                    HOST_EXITED,
                    f"run {run.run_id} failed: {HOST_EXITED}",
                    ended_processes=ended or None,
                )
            )
        self._note_elsewhere(programs)
        return events

    def _note_elsewhere(self, programs: list[str]) -> None:
        """The take-over from another machine, and the programs its runs may have left there."""
        if self._elsewhere is None:
            return
        listed = "; ".join(programs[:5])
        more = f"; and {len(programs) - 5} more" if len(programs) > 5 else ""
        left = f"; the runs it was in may have left these running there: {listed}{more}"
        self._note(
            "warning",
            "host.takeover",
            f"took over from pid {self._elsewhere_pid} on {self._elsewhere}, which stopped "
            "heartbeating; programs it started there were not ended from this machine"
            + (left if programs else ""),
        )

    async def _programs_of(self, run_id: str) -> list[str]:
        """The programs a run started (from its `exec.command.started` events), worded."""
        flt = parse_filter(f"runtime:{self._runtime_id} run:{run_id} kind:exec.command.started")
        batch = await self._store.read_after(0, 10, flt)
        said = []
        for event in batch.events:
            pid, pgid = event.payload.get("pid"), event.payload.get("pgid")
            argv = event.payload.get("argv") or []
            command = " ".join(str(part) for part in argv)[:80]
            group = f", group {pgid}" if pgid is not None else ""
            said.append(f"pid {pid}{group} ({run_id}): {command}")
        return said

    def _diagnostics(self) -> list[NewEvent]:
        return [
            self._emitter.diagnostic_new(severity, code, message, None)
            for severity, code, message in self._notes
        ]
