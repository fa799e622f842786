"""Command profiles: a worker whose runs are real programs.

`per-input` (here) starts one process per run: the input on stdin or as the
last argument, stdout lines as assistant output, stderr as tool output; exit 0
completes the run, anything else fails it, and a timeout ends it. `session`
keeps one long-lived process per worker (engine.drivers.session). Either way
each program leads a process group of its own, ended as a whole
(engine.drivers.process_group), so nothing a run started outlives it.
"""

from __future__ import annotations

import asyncio

from engine.drivers.base import RunContext, RunFailed, WorkerContext
from engine.drivers.output import FLUSH_INTERVAL, Coalescer, LineSplitter, OutputBudget, pump
from engine.drivers.process_group import (
    GroupProcess,
    adopt_orphans,
    describe_exit,
    finish_tasks,
    signal_name,
)
from engine.drivers.program import MESSAGE_CHARS, Program
from engine.drivers.session import Session
from engine.messages import one_line
from engine.profiles import CommandProfile

_LEFTOVER_PIPE_WAIT = 1.0  # after the program and its group are gone, to drain the pipes


class CommandDriver:
    """Runs a command profile's program for a worker (see the module docstring)."""

    def __init__(
        self,
        profile: CommandProfile,
        worker: WorkerContext,
        *,
        flush_interval: float = FLUSH_INTERVAL,
    ) -> None:
        self.profile = profile
        self.worker = worker
        self._program = Program(profile, worker)
        self._flush_interval = flush_interval
        self._running: set[GroupProcess] = set()
        self._closed = False
        self._session = Session(self._program, flush_interval) if profile.mode == "session" else None
        adopt_orphans()

    @property
    def name(self) -> str:
        return self.profile.name

    async def run(self, ctx: RunContext) -> str:
        if self._closed:
            raise RunFailed(f"{self.name}: the worker's driver is closed")
        if self._session is not None:
            return await self._session.run_turn(ctx)
        return await self._run_process(ctx)

    async def close(self) -> None:
        """End every process this driver started (the session, any run still going)."""
        self._closed = True
        if self._session is not None:
            await self._session.close()
        ends = [process.terminate(self.profile.grace) for process in list(self._running)]
        await asyncio.gather(*ends, return_exceptions=True)

    async def _run_process(self, ctx: RunContext) -> str:
        profile = self.profile
        program = self._program
        text = ctx.input.content
        by_argument = profile.input == "argument"
        argv = [*profile.command, text] if by_argument else list(profile.command)
        try:
            process = await program.spawn(
                argv,
                stdin=asyncio.subprocess.DEVNULL if by_argument else asyncio.subprocess.PIPE,
                run_id=ctx.input.run_id,
            )
        except (OSError, ValueError) as exc:
            raise await program.cannot_start(ctx, argv, exc) from exc
        self._running.add(process)
        budget = OutputBudget(profile.max_output_bytes)
        out = Coalescer(lambda chunk: ctx.output("assistant", chunk), interval=self._flush_interval)
        err = Coalescer(lambda chunk: ctx.output("tool", chunk), interval=self._flush_interval)
        helpers: list[asyncio.Task[None]] = []
        try:
            await ctx.event(
                "exec.command.started",
                f"started {self.name} (pid {process.pid})",
                program.started(process, "per-input"),
            )
            await ctx.phase("executing")
            out.start()
            err.start()
            proc = process.proc
            assert proc.stdout is not None and proc.stderr is not None
            helpers.append(asyncio.create_task(pump(proc.stdout, LineSplitter(), budget, out)))
            helpers.append(asyncio.create_task(pump(proc.stderr, LineSplitter(), budget, err)))
            if proc.stdin is not None:
                data = text if text.endswith("\n") else text + "\n"
                helpers.append(
                    asyncio.create_task(_feed(proc.stdin, data.encode("utf-8", "replace")))
                )
            try:
                async with asyncio.timeout(profile.timeout):
                    code = await process.exit_code()
            except TimeoutError:
                ended = await process.terminate(profile.grace)
                await finish_tasks(helpers, _LEFTOVER_PIPE_WAIT)
                await out.aclose()
                await err.aclose()
                await program.report_truncation(ctx, budget)
                timeout = profile.timeout or 0
                facts = program.ended(process, budget, timeout_s=timeout, ended=ended)
                await ctx.event(
                    "exec.command.timeout",
                    f"{self.name} timed out after {timeout:g}s (pid {process.pid}, {ended})",
                    facts,
                )
                raise RunFailed(f"timed out after {timeout:g}s", facts) from None
            # The run is its process group: nothing of it outlives the program. What
            # the group wrote before it ended is still in the pipes and is drained.
            leftovers = await process.terminate(profile.grace)
            await finish_tasks(helpers, _LEFTOVER_PIPE_WAIT)
            await out.aclose()
            await err.aclose()
            await program.report_truncation(ctx, budget)
            left = leftovers if leftovers != "exited" else None
            if code == 0:
                await ctx.event(
                    "exec.command.completed",
                    f"{self.name} completed (pid {process.pid}, exit 0)",
                    program.ended(process, budget, exit_code=code, leftovers=left),
                )
                return out.tail or "exit 0"
            ended_how = describe_exit(code)
            facts = program.ended(
                process,
                budget,
                exit_code=code,
                leftovers=left,
                signal=signal_name(-code) if code < 0 else None,
                reason=ended_how,
            )
            await ctx.event(
                "exec.command.failed", f"{self.name} {ended_how} (pid {process.pid})", facts
            )
            hint = err.last_line
            reason = f"{ended_how}: {one_line(hint, MESSAGE_CHARS)}" if hint.strip() else ended_how
            raise RunFailed(reason, facts)
        except BaseException:
            # Cancelled, or the runtime refused what we emitted: end the program and its
            # group. A cancel arriving during this cleanup must not skip the rest of it.
            try:
                await process.terminate(profile.grace)
                await finish_tasks(helpers, 0)
            finally:
                await out.abort()
                await err.abort()
            raise
        finally:
            self._running.discard(process)
            process.transport.close()


async def _feed(stdin: asyncio.StreamWriter, data: bytes) -> None:
    """Write the input and close stdin; a program that does not read it is not an error."""
    try:
        stdin.write(data)
        await stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        stdin.close()
