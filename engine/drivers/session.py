"""Session mode of command profiles: one long-lived program per worker.

The program reads each input as a line on stdin and ends each answer with the
profile's `turn_end` line. One turn runs at a time. A supervisor watches the
process and, when it dies on its own, restarts it with exponential backoff
(`worker.restarting`, `worker.restart.backoff`, `worker.restarted`), giving
up after `restart_max` attempts in a row (`worker.restart.failed`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from engine.drivers.base import RunContext, RunFailed
from engine.drivers.output import READ_SIZE, Coalescer, LineSplitter, OutputBudget
from engine.drivers.process_group import GroupProcess, describe_exit, finish_tasks, start_reason
from engine.drivers.program import MESSAGE_CHARS, Program
from engine.messages import one_line
from store.catalog import ProcessFacts

log = logging.getLogger(__name__)

STDERR_SETTLE = 0.5  # how long a dead session's last stderr lines may take to arrive


class SessionProcess:
    """One long-lived session process and the state kept between its turns."""

    def __init__(self, process: GroupProcess, budget_limit: int) -> None:
        self.process = process
        self.stdout_lines = LineSplitter()
        self.stdout_backlog: deque[str] = deque()
        self.stdout_eof = False
        self.stderr_lines = LineSplitter()
        # Where stderr goes: the current run's tool output, or held for the next run.
        self.stderr_target: tuple[OutputBudget, Coalescer] | None = None
        self.stderr_idle: deque[str] = deque()
        self.stderr_idle_bytes = 0
        self.stderr_idle_limit = budget_limit
        self.stderr_recent: deque[str] = deque(maxlen=5)
        self.stopping = False  # we are ending it on purpose: not a crash, no restart
        self.stderr_task = asyncio.create_task(self._read_stderr(), name="session-stderr")

    @property
    def alive(self) -> bool:
        return self.process.proc.returncode is None and not self.stdout_eof and not self.stopping

    async def _read_stderr(self) -> None:
        stream = self.process.proc.stderr
        assert stream is not None
        while data := await stream.read(READ_SIZE):
            self._route(self.stderr_lines.feed(data))
        self._route(self.stderr_lines.finish())

    def _route(self, lines: list[str]) -> None:
        if not lines:
            return
        self.stderr_recent.extend(line for line in lines if line.strip())
        if self.stderr_target is not None:
            budget, into = self.stderr_target
            into.push([line for line in lines if budget.admit_line(line)])
            return
        for line in lines:
            size = len(line) + 1
            if self.stderr_idle_bytes + size <= self.stderr_idle_limit:
                self.stderr_idle.append(line)
                self.stderr_idle_bytes += size

    def attach_stderr(self, budget: OutputBudget, into: Coalescer) -> None:
        held = list(self.stderr_idle)
        self.stderr_idle.clear()
        self.stderr_idle_bytes = 0
        self.stderr_target = (budget, into)
        self._route(held)

    def detach_stderr(self) -> None:
        self.stderr_target = None

    def last_stderr(self) -> str:
        return self.stderr_recent[-1] if self.stderr_recent else ""


class Session:
    """A worker's session program: its turns, and the supervisor that restarts it."""

    def __init__(self, program: Program, flush_interval: float) -> None:
        self.program = program
        self.profile = program.profile
        self._flush_interval = flush_interval
        self._current: SessionProcess | None = None
        self._restarting = False
        self._failures = 0
        self._dead_reason: str | None = None
        self._closed = False
        self._changed = asyncio.Condition()
        self._turn = asyncio.Lock()
        self._supervisors: set[asyncio.Task[None]] = set()

    @property
    def name(self) -> str:
        return self.profile.name

    async def close(self) -> None:
        """End the session process; no supervisor restarts it any more."""
        self._closed = True
        # Supervisors first, so none restarts a process while we end it.
        for task in list(self._supervisors):
            task.cancel()
        await finish_tasks(list(self._supervisors), 0)
        async with self._changed:
            session, self._current = self._current, None
            self._restarting = False
            self._changed.notify_all()
        if session is not None:
            session.stopping = True
            await asyncio.gather(
                session.process.terminate(self.profile.grace), return_exceptions=True
            )
            await finish_tasks([session.stderr_task], STDERR_SETTLE)

    # -- one turn ----------------------------------------------------------------------

    async def run_turn(self, ctx: RunContext) -> str:
        profile = self.profile
        async with self._turn:
            budget = OutputBudget(profile.max_output_bytes)
            out = Coalescer(
                lambda chunk: ctx.output("assistant", chunk), interval=self._flush_interval
            )
            err = Coalescer(lambda chunk: ctx.output("tool", chunk), interval=self._flush_interval)
            session: SessionProcess | None = None
            try:
                try:
                    async with asyncio.timeout(profile.timeout):
                        session = await self._live(ctx)
                        out.start()
                        err.start()
                        session.attach_stderr(budget, err)
                        answered = await self._exchange(ctx, session, budget, out)
                        if not answered:
                            code = await self._exit_code(session)
                except TimeoutError:
                    ended = "not started"
                    if session is not None:
                        ended = await self._stop(session)
                    await out.aclose()
                    await err.aclose()
                    await self.program.report_truncation(ctx, budget)
                    timeout = profile.timeout or 0
                    facts = ProcessFacts(
                        timeout_s=timeout,
                        ended=ended,
                        pid=session.process.pid if session is not None else None,
                    )
                    await ctx.event(
                        "exec.command.timeout",
                        f"{self.name} did not answer within {timeout:g}s ({ended})",
                        facts,
                    )
                    raise RunFailed(f"timed out after {timeout:g}s", facts) from None
                assert session is not None
                if not answered:
                    # Its last words (a traceback, say) belong to this run.
                    await finish_tasks([session.stderr_task], STDERR_SETTLE)
                session.detach_stderr()
                await out.aclose()
                await err.aclose()
                await self.program.report_truncation(ctx, budget)
                pid = session.process.pid
                if answered:
                    await ctx.event(
                        "exec.session.answered",
                        f"{self.name} answered (pid {pid})",
                        ProcessFacts(pid=pid, output_bytes=budget.used + budget.dropped),
                    )
                    return out.tail or "(no output)"
                ended_how = describe_exit(code)
                facts = ProcessFacts(pid=pid, exit_code=code, reason=ended_how)
                await ctx.event(
                    "exec.command.failed",
                    f"session process {self.name} {ended_how} (pid {pid})",
                    facts,
                )
                hint = session.last_stderr()
                reason = f"session process {ended_how}"
                raise RunFailed(
                    f"{reason}: {one_line(hint, MESSAGE_CHARS)}" if hint else reason, facts
                )
            except BaseException as exc:
                try:
                    if session is not None:
                        session.detach_stderr()
                        if not isinstance(exc, RunFailed):
                            # Cancelled mid-answer: the rest of that answer would spill into
                            # the next run, so this process ends; the next one starts afresh.
                            await self._stop(session)
                finally:
                    await out.abort()
                    await err.abort()
                raise

    async def _live(self, ctx: RunContext) -> SessionProcess:
        """The worker's session process, started now if none is running or restarting."""
        async with self._changed:
            # State is read under the lock every notifier holds, so no change is missed.
            while True:
                if self._closed:
                    raise RunFailed(f"{self.name}: the worker's driver is closed")
                if self._dead_reason is not None:
                    raise RunFailed(self._dead_reason)
                session = self._current
                if session is not None and session.alive:
                    return session
                if session is None and not self._restarting:
                    break
                # It is dying or being restarted: the supervisor says when that is over.
                await self._changed.wait()
        return await self._start(ctx)

    async def _start(self, ctx: RunContext) -> SessionProcess:
        argv = list(self.profile.command)
        try:
            process = await self.program.spawn(argv, stdin=asyncio.subprocess.PIPE, run_id=None)
        except (OSError, ValueError) as exc:
            raise await self.program.cannot_start(ctx, argv, exc) from exc
        session = self._adopt(process)
        self._failures = 0
        await ctx.event(
            "exec.command.started",
            f"started {self.name} (pid {process.pid})",
            self.program.started(process, "session"),
        )
        return session

    def _adopt(self, process: GroupProcess) -> SessionProcess:
        session = SessionProcess(process, self.profile.max_output_bytes)
        self._current = session
        task = asyncio.create_task(self._supervise(session), name=f"session:{self.name}")
        self._supervisors.add(task)
        task.add_done_callback(self._supervisors.discard)
        return session

    async def _exchange(
        self, ctx: RunContext, session: SessionProcess, budget: OutputBudget, out: Coalescer
    ) -> bool:
        """Send the input, forward the answer; True at the turn-end line, False at EOF."""
        proc = session.process.proc
        assert proc.stdin is not None and proc.stdout is not None
        data = (ctx.input.content + "\n").encode("utf-8", "replace")
        await ctx.event(
            "exec.session.input",
            f"sent input to {self.name} (pid {proc.pid})",
            ProcessFacts(pid=proc.pid, bytes=len(data)),
        )
        try:
            proc.stdin.write(data)
            await proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # it is exiting: its stdout says how the turn ends
        await ctx.phase("executing")
        turn_end = self.profile.turn_end
        backlog = session.stdout_backlog
        while True:
            if backlog:
                answer: list[str] = []
                while backlog:
                    line = backlog.popleft()
                    if line == turn_end:
                        out.push(answer)
                        return True
                    if budget.admit_line(line):
                        answer.append(line)
                out.push(answer)
            if session.stdout_eof:
                return False
            chunk = await proc.stdout.read(READ_SIZE)
            if chunk:
                backlog.extend(session.stdout_lines.feed(chunk))
            else:
                session.stdout_eof = True
                backlog.extend(session.stdout_lines.finish())

    async def _exit_code(self, session: SessionProcess) -> int:
        """The session's exit code once its stdout has closed (ending it if it lingers)."""
        process = session.process
        if not await process.wait_gone(self.profile.grace):
            await process.terminate(self.profile.grace)
        return await process.exit_code()

    async def _stop(self, session: SessionProcess) -> str:
        session.stopping = True
        async with self._changed:
            if self._current is session:
                self._current = None
            self._changed.notify_all()
        return await session.process.terminate(self.profile.grace)

    # -- the supervisor ----------------------------------------------------------------

    async def _supervise(self, first: SessionProcess) -> None:
        """Watch the session process; restart it with backoff when it dies on its own."""
        profile = self.profile
        worker = self.program.worker
        session: SessionProcess | None = first
        start_error = ""
        try:
            while True:
                if session is not None:
                    code = await session.process.exit_code()
                    uptime = session.process.uptime()
                    async with self._changed:
                        if self._current is session:
                            self._current = None
                        crashed = not session.stopping and not self._closed
                        if crashed:
                            self._restarting = True
                        self._changed.notify_all()
                    await session.process.terminate(profile.grace)  # its group goes with it
                    await finish_tasks([session.stderr_task], STDERR_SETTLE)
                    if not crashed:
                        return
                    if uptime >= profile.restart_reset_after:
                        self._failures = 0
                    what = describe_exit(code)
                    details = ProcessFacts(
                        pid=session.process.pid,
                        exit_code=code,
                        uptime_s=round(uptime, 3),
                        stderr_tail=list(session.stderr_recent),
                    )
                else:
                    what = f"could not be started: {start_error}"
                    details = ProcessFacts(reason=start_error)
                self._failures += 1
                attempt = self._failures
                if attempt > profile.restart_max:
                    reason = (
                        f"session process {self.name} {what}; gave up after "
                        f"{profile.restart_max} restart{'s' if profile.restart_max != 1 else ''}"
                    )
                    async with self._changed:
                        self._dead_reason = reason
                        self._restarting = False
                        self._changed.notify_all()
                    await worker.event(
                        "worker.restart.failed",
                        one_line(reason, MESSAGE_CHARS),
                        details.model_copy(
                            update={"attempts": profile.restart_max, "reason": reason}
                        ),
                    )
                    return
                delay = min(
                    profile.restart_backoff * 2 ** (attempt - 1), profile.restart_backoff_max
                )
                await worker.event(
                    "worker.restarting",
                    one_line(
                        f"session process {self.name} {what}; restarting in {delay:g}s "
                        f"(attempt {attempt} of {profile.restart_max})",
                        MESSAGE_CHARS,
                    ),
                    details.model_copy(
                        update={
                            "attempt": attempt,
                            "max_attempts": profile.restart_max,
                            "delay_s": delay,
                        }
                    ),
                )
                await worker.event(
                    "worker.restart.backoff",
                    f"waiting {delay:g}s before restarting {self.name}",
                    ProcessFacts(attempt=attempt, delay_s=delay),
                )
                await asyncio.sleep(delay)
                if self._closed:
                    return
                argv = list(profile.command)
                try:
                    process = await self.program.spawn(
                        argv, stdin=asyncio.subprocess.PIPE, run_id=None
                    )
                except (OSError, ValueError) as exc:
                    session, start_error = None, start_reason(exc)
                    continue
                session = SessionProcess(process, profile.max_output_bytes)
                async with self._changed:
                    self._current = session
                    self._restarting = False
                    self._changed.notify_all()
                await worker.event(
                    "worker.restarted",
                    f"restarted {self.name} (pid {process.pid}, attempt {attempt})",
                    self.program.started(process, attempt=attempt),
                )
        except asyncio.CancelledError:
            raise
        except Exception:
            # The runtime refused an event: it is closing, or its store takes no
            # writes for now. Stop supervising without giving up on the worker: the
            # next run starts a fresh session (a closed driver refuses it instead).
            # Debug level: a traceback must never reach an operator's terminal.
            log.debug("session supervisor for %s stopped", self.name, exc_info=True)
            async with self._changed:
                if self._current is session:
                    self._current = None
                self._restarting = False
                self._changed.notify_all()
            if session is not None:
                session.stopping = True
                await session.process.terminate(profile.grace)
