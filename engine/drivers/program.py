"""A command profile's program, as one worker starts it and reports on it.

Shared by both modes of the command driver (per-input runs in
engine.drivers.command, the long-lived session in engine.drivers.session):
the environment every program carries, and the `ProcessFacts` its events
report (where to find it again, how it ended, how much it wrote).
"""

from __future__ import annotations

import os
from typing import Any, Literal

from engine.drivers.base import RunContext, RunFailed, WorkerContext
from engine.drivers.output import OutputBudget
from engine.drivers.process_group import GroupProcess, spawn_group, start_reason, working_folder
from engine.hosting import machine_name
from engine.messages import one_line
from engine.profiles import CommandProfile
from store.catalog import ProcessFacts

MESSAGE_CHARS = 200
_FACT_ARG_CHARS = 500


class Program:
    """Starts a profile's program for a worker and words the facts its events carry."""

    def __init__(self, profile: CommandProfile, worker: WorkerContext) -> None:
        self.profile = profile
        self.worker = worker

    @property
    def name(self) -> str:
        return self.profile.name

    async def spawn(self, argv: list[str], *, stdin: int, run_id: str | None) -> GroupProcess:
        profile = self.profile
        cwd = working_folder(profile.cwd)
        env = dict(os.environ)
        env["AGENTDECK_WORKER_ID"] = self.worker.worker_id
        env["AGENTDECK_PROFILE"] = profile.name
        if run_id is not None:
            env["AGENTDECK_RUN_ID"] = run_id
        env.update(profile.env)
        # Last, so no profile can drop the mark the next host finds leftovers by.
        env.update(self.worker.process_env)
        return await spawn_group(argv, stdin=stdin, cwd=cwd, env=env)

    def started(
        self,
        process: GroupProcess,
        mode: Literal["per-input", "session"] | None = None,
        **more: Any,
    ) -> ProcessFacts:
        # Where to find it again: its group (its own session) on this host.
        return ProcessFacts(
            argv=self.argv_facts(process.argv),
            pid=process.pid,
            pgid=process.pgid,
            host=machine_name(),  # as the lease names this machine (AGENTDECK_HOST_NAME)
            cwd=process.cwd,
            mode=mode,
            **more,
        )

    def ended(self, process: GroupProcess, budget: OutputBudget, **more: Any) -> ProcessFacts:
        """What a per-input program did: how long, how much it wrote (and what was cut)."""
        return ProcessFacts(
            argv=self.argv_facts(process.argv),
            pid=process.pid,
            duration_s=round(process.uptime(), 3),
            output_bytes=budget.used + budget.dropped,
            truncated_bytes=budget.dropped if budget.truncated else None,
            **more,
        )

    def argv_facts(self, argv: list[str]) -> list[str]:
        return [
            one_line(arg, _FACT_ARG_CHARS) if len(arg) > _FACT_ARG_CHARS else arg for arg in argv
        ]

    async def cannot_start(
        self, ctx: RunContext, argv: list[str], exc: BaseException
    ) -> RunFailed:
        """Say that the program could not be started; the failure to raise for its run."""
        reason = start_reason(exc)
        facts = ProcessFacts(argv=self.argv_facts(argv), cwd=self.profile.cwd, reason=reason)
        await ctx.event("exec.command.failed", f"cannot start {self.name}: {reason}", facts)
        return RunFailed(f"cannot start {argv[0]}: {reason}", facts)

    async def report_truncation(self, ctx: RunContext, budget: OutputBudget) -> None:
        if budget.truncated:
            await ctx.diagnostic(
                "warning",
                "exec.output.truncated",
                f"{self.name} wrote {budget.used + budget.dropped} bytes; only the first "
                f"{budget.limit} were recorded ({budget.dropped} bytes cut)",
            )
