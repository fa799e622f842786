"""Command profiles: a worker whose runs are real programs.

`per-input` starts one process per run. `session` keeps one long-lived
process per worker that reads each input as a line on stdin and ends each
answer with the profile's `turn_end` line; it is restarted with exponential
backoff when it dies.

Every program gets its own process group (a new session), so a cancel or a
timeout can end it and everything it started: SIGTERM to the group, then
SIGKILL after `grace`. On Linux the engine process makes itself a child
subreaper, so grandchildren orphaned by a killed program are re-parented to
it and reaped here (some containers' PID 1 never reaps, which would leave
them as zombies forever).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import functools
import logging
import os
import signal
import socket
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.drivers.base import RunContext, RunFailed, WorkerContext
from engine.drivers.output import (
    FLUSH_INTERVAL,
    READ_SIZE,
    Coalescer,
    LineSplitter,
    OutputBudget,
    pump,
)
from engine.profiles import CommandProfile

log = logging.getLogger(__name__)

_PR_SET_CHILD_SUBREAPER = 36
_PAYLOAD_ARG_CHARS = 500
_MESSAGE_CHARS = 200
_KILL_WAIT = 2.0  # after SIGKILL, how long to wait for the group to be reaped
_LEFTOVER_PIPE_WAIT = 1.0  # after the program and its group are gone, to drain the pipes
_STDERR_SETTLE = 0.5
_HOST_NAME = socket.gethostname()


@functools.cache
def adopt_orphans() -> bool:
    """Make this process a child subreaper (Linux), so killed groups can be fully reaped."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _reap_group(pgid: int) -> None:
    """Reap members of the group that were re-parented to us after their parent died."""
    while True:
        try:
            pid, _ = os.waitpid(-pgid, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _describe_exit(code: int) -> str:
    return f"exited with code {code}" if code >= 0 else f"killed by {_signal_name(-code)}"


def _one_line(text: str, limit: int = _MESSAGE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _working_folder(configured: str | None) -> str:
    if configured is None:
        return str(Path.cwd())
    if not Path(configured).is_dir():
        raise FileNotFoundError(errno.ENOENT, "working folder does not exist", configured)
    return configured


def _start_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
        return f"{reason}: {exc.filename}" if exc.filename else reason
    return str(exc)


class _ExitWatch(asyncio.subprocess.SubprocessStreamProtocol):
    """The usual stream protocol, plus a future that settles when the program itself exits.

    On Python 3.11 `Process.wait()` returns only once the pipes have closed as
    well, so a program that exited but left a background child holding its
    stdout (`sleep 20 & echo bye`) looked alive for as long as that child
    lived. The run is over when the program is.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=READ_SIZE, loop=loop)
        self.exited: asyncio.Future[int] = loop.create_future()
        self._watched: asyncio.SubprocessTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.SubprocessTransport)
        self._watched = transport
        super().connection_made(transport)

    def process_exited(self) -> None:
        code = self._watched.get_returncode() if self._watched is not None else None
        if not self.exited.done() and code is not None:
            self.exited.set_result(code)
        super().process_exited()


@dataclass(eq=False)
class _Process:
    """A started program: its asyncio handle, its process group, and when it exits."""

    proc: asyncio.subprocess.Process
    transport: asyncio.SubprocessTransport
    exited: asyncio.Future[int]
    argv: list[str]
    cwd: str
    started: float = field(default_factory=time.monotonic)

    async def exit_code(self) -> int:
        """Wait for the program (not its pipes) to exit; its code, -N for signal N."""
        # Shielded: a timeout or a cancel of the waiter must not cancel the future
        # that the next waiter (the supervisor, the cleanup) needs.
        return await asyncio.shield(self.exited)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def pgid(self) -> int:
        # start_new_session=True: the program leads a group of its own id.
        return self.proc.pid

    def uptime(self) -> float:
        return time.monotonic() - self.started

    def group_alive(self) -> bool:
        if self.proc.returncode is not None:
            # Only once asyncio has reaped the leader, or we could steal its exit status.
            _reap_group(self.pgid)
        return _signal_group(self.pgid, 0)

    async def wait_gone(self, timeout: float) -> bool:
        """Wait until the program has exited and no member of its group is left."""
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            if self.proc.returncode is not None and not self.group_alive():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.05)

    async def terminate(self, grace: float) -> str:
        """SIGTERM the whole group, SIGKILL after `grace`; reap. Says how it ended."""
        if self.proc.returncode is not None and not self.group_alive():
            return "exited"
        try:
            _signal_group(self.pgid, signal.SIGTERM)
            _signal_group(self.pgid, signal.SIGCONT)  # a stopped program cannot act on SIGTERM
            if await self.wait_gone(grace):
                return "terminated"
            _signal_group(self.pgid, signal.SIGKILL)
            await self.wait_gone(_KILL_WAIT)
            return "killed"
        except BaseException:
            # Cancelled while cleaning up: leave nothing behind, even without waiting.
            _signal_group(self.pgid, signal.SIGKILL)
            raise


async def _finish_tasks(tasks: list[asyncio.Task[None]], timeout: float) -> None:
    """Wait for helper tasks a little, then cancel the stragglers (and collect every result)."""
    pending = [task for task in tasks if not task.done()]
    if pending:
        _, still = await asyncio.wait(pending, timeout=timeout)
        for task in still:
            task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


class _Session:
    """One long-lived session process and the state kept between its turns."""

    def __init__(self, process: _Process, budget_limit: int) -> None:
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
        self._flush_interval = flush_interval
        self._running: set[_Process] = set()
        self._closed = False
        # Session mode.
        self._session: _Session | None = None
        self._restarting = False
        self._failures = 0
        self._dead_reason: str | None = None
        self._changed = asyncio.Condition()
        self._turn = asyncio.Lock()
        self._supervisors: set[asyncio.Task[None]] = set()
        adopt_orphans()

    @property
    def name(self) -> str:
        return self.profile.name

    async def run(self, ctx: RunContext) -> str:
        if self._closed:
            raise RunFailed(f"{self.name}: the worker's driver is closed")
        if self.profile.mode == "session":
            return await self._run_turn(ctx)
        return await self._run_process(ctx)

    async def close(self) -> None:
        """End every process this driver started (the session, any run still going)."""
        self._closed = True
        grace = self.profile.grace
        # Supervisors first, so none restarts a process while we end it.
        for task in list(self._supervisors):
            task.cancel()
        await _finish_tasks(list(self._supervisors), 0)
        async with self._changed:
            session, self._session = self._session, None
            self._restarting = False
            self._changed.notify_all()
        ends = [process.terminate(grace) for process in list(self._running)]
        if session is not None:
            session.stopping = True
            ends.append(session.process.terminate(grace))
        await asyncio.gather(*ends, return_exceptions=True)
        if session is not None:
            await _finish_tasks([session.stderr_task], _STDERR_SETTLE)

    # -- starting programs -------------------------------------------------------

    async def _spawn(self, argv: list[str], *, stdin: int, run_id: str | None) -> _Process:
        profile = self.profile
        cwd = _working_folder(profile.cwd)
        env = dict(os.environ)
        env["AGENTDECK_WORKER_ID"] = self.worker.worker_id
        env["AGENTDECK_PROFILE"] = profile.name
        if run_id is not None:
            env["AGENTDECK_RUN_ID"] = run_id
        env.update(profile.env)
        # Last, so no profile can drop the mark the next host finds leftovers by.
        env.update(self.worker.process_env)
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.subprocess_exec(
            lambda: _ExitWatch(loop),
            *argv,
            stdin=stdin,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
        proc = asyncio.subprocess.Process(transport, protocol, loop)
        return _Process(proc, transport, protocol.exited, argv, cwd)

    def _started_payload(self, process: _Process) -> dict[str, Any]:
        # Where to find it again: its group (its own session) on this host.
        return {
            "argv": self._argv_payload(process.argv),
            "pid": process.pid,
            "pgid": process.pgid,
            "host": _HOST_NAME,
            "cwd": process.cwd,
        }

    def _argv_payload(self, argv: list[str]) -> list[str]:
        return [
            _one_line(arg, _PAYLOAD_ARG_CHARS) if len(arg) > _PAYLOAD_ARG_CHARS else arg
            for arg in argv
        ]

    async def _cannot_start(
        self, ctx: RunContext, argv: list[str], exc: BaseException
    ) -> RunFailed:
        reason = _start_reason(exc)
        payload: dict[str, Any] = {
            "argv": self._argv_payload(argv),
            "cwd": self.profile.cwd,
            "reason": reason,
        }
        await ctx.event("exec.command.failed", f"cannot start {self.name}: {reason}", payload)
        return RunFailed(f"cannot start {argv[0]}: {reason}", payload)

    # -- per-input mode ------------------------------------------------------------

    async def _run_process(self, ctx: RunContext) -> str:
        profile = self.profile
        text = ctx.input.content
        by_argument = profile.input == "argument"
        argv = [*profile.command, text] if by_argument else list(profile.command)
        try:
            process = await self._spawn(
                argv,
                stdin=asyncio.subprocess.DEVNULL if by_argument else asyncio.subprocess.PIPE,
                run_id=ctx.input.run_id,
            )
        except (OSError, ValueError) as exc:
            raise await self._cannot_start(ctx, argv, exc) from exc
        self._running.add(process)
        budget = OutputBudget(profile.max_output_bytes)
        out = Coalescer(lambda chunk: ctx.output("assistant", chunk), interval=self._flush_interval)
        err = Coalescer(lambda chunk: ctx.output("tool", chunk), interval=self._flush_interval)
        helpers: list[asyncio.Task[None]] = []
        try:
            await ctx.event(
                "exec.command.started",
                f"started {self.name} (pid {process.pid})",
                {**self._started_payload(process), "mode": "per-input"},
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
                await _finish_tasks(helpers, _LEFTOVER_PIPE_WAIT)
                await out.aclose()
                await err.aclose()
                await self._report_truncation(ctx, budget)
                timeout = profile.timeout or 0
                payload = {
                    **self._end_payload(process, budget),
                    "timeout_s": timeout,
                    "ended": ended,
                }
                await ctx.event(
                    "exec.command.timeout",
                    f"{self.name} timed out after {timeout:g}s (pid {process.pid}, {ended})",
                    payload,
                )
                raise RunFailed(f"timed out after {timeout:g}s", payload) from None
            # The run is its process group: nothing of it outlives the program. What
            # the group wrote before it ended is still in the pipes and is drained.
            leftovers = await process.terminate(profile.grace)
            await _finish_tasks(helpers, _LEFTOVER_PIPE_WAIT)
            await out.aclose()
            await err.aclose()
            await self._report_truncation(ctx, budget)
            payload = {**self._end_payload(process, budget), "exit_code": code}
            if leftovers != "exited":
                payload["leftovers"] = leftovers
            if code == 0:
                await ctx.event(
                    "exec.command.completed",
                    f"{self.name} completed (pid {process.pid}, exit 0)",
                    payload,
                )
                return out.tail or "exit 0"
            ended_how = _describe_exit(code)
            if code < 0:
                payload["signal"] = _signal_name(-code)
            hint = err.last_line
            payload["reason"] = ended_how
            await ctx.event(
                "exec.command.failed",
                f"{self.name} {ended_how} (pid {process.pid})",
                payload,
            )
            reason = f"{ended_how}: {_one_line(hint)}" if hint.strip() else ended_how
            raise RunFailed(reason, payload)
        except BaseException:
            # Cancelled, or the runtime refused what we emitted: end the program and its
            # group. A cancel arriving during this cleanup must not skip the rest of it.
            try:
                await process.terminate(profile.grace)
                await _finish_tasks(helpers, 0)
            finally:
                await out.abort()
                await err.abort()
            raise
        finally:
            self._running.discard(process)
            process.transport.close()

    def _end_payload(self, process: _Process, budget: OutputBudget) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "argv": self._argv_payload(process.argv),
            "pid": process.pid,
            "duration_s": round(process.uptime(), 3),
            "output_bytes": budget.used + budget.dropped,
        }
        if budget.truncated:
            payload["truncated_bytes"] = budget.dropped
        return payload

    async def _report_truncation(self, ctx: RunContext, budget: OutputBudget) -> None:
        if budget.truncated:
            await ctx.diagnostic(
                "warning",
                "exec.output.truncated",
                f"{self.name} wrote {budget.used + budget.dropped} bytes; only the first "
                f"{budget.limit} were recorded ({budget.dropped} bytes cut)",
            )

    # -- session mode ----------------------------------------------------------------

    async def _run_turn(self, ctx: RunContext) -> str:
        profile = self.profile
        async with self._turn:
            budget = OutputBudget(profile.max_output_bytes)
            out = Coalescer(
                lambda chunk: ctx.output("assistant", chunk), interval=self._flush_interval
            )
            err = Coalescer(lambda chunk: ctx.output("tool", chunk), interval=self._flush_interval)
            session: _Session | None = None
            try:
                try:
                    async with asyncio.timeout(profile.timeout):
                        session = await self._live_session(ctx)
                        out.start()
                        err.start()
                        session.attach_stderr(budget, err)
                        answered = await self._exchange(ctx, session, budget, out)
                        if not answered:
                            code = await self._exit_code(session)
                except TimeoutError:
                    ended = "not started"
                    if session is not None:
                        ended = await self._stop_session(session)
                    await out.aclose()
                    await err.aclose()
                    await self._report_truncation(ctx, budget)
                    timeout = profile.timeout or 0
                    payload: dict[str, Any] = {"timeout_s": timeout, "ended": ended}
                    if session is not None:
                        payload["pid"] = session.process.pid
                    await ctx.event(
                        "exec.command.timeout",
                        f"{self.name} did not answer within {timeout:g}s ({ended})",
                        payload,
                    )
                    raise RunFailed(f"timed out after {timeout:g}s", payload) from None
                assert session is not None
                if not answered:
                    # Its last words (a traceback, say) belong to this run.
                    await _finish_tasks([session.stderr_task], _STDERR_SETTLE)
                session.detach_stderr()
                await out.aclose()
                await err.aclose()
                await self._report_truncation(ctx, budget)
                if answered:
                    await ctx.event(
                        "exec.session.answered",
                        f"{self.name} answered (pid {session.process.pid})",
                        {"pid": session.process.pid, "output_bytes": budget.used + budget.dropped},
                    )
                    return out.tail or "(no output)"
                ended_how = _describe_exit(code)
                payload = {"pid": session.process.pid, "exit_code": code, "reason": ended_how}
                await ctx.event(
                    "exec.command.failed",
                    f"session process {self.name} {ended_how} (pid {session.process.pid})",
                    payload,
                )
                hint = session.last_stderr()
                reason = f"session process {ended_how}"
                raise RunFailed(f"{reason}: {_one_line(hint)}" if hint else reason, payload)
            except BaseException as exc:
                try:
                    if session is not None:
                        session.detach_stderr()
                        if not isinstance(exc, RunFailed):
                            # Cancelled mid-answer: the rest of that answer would spill into
                            # the next run, so this process ends; the next one starts afresh.
                            await self._stop_session(session)
                finally:
                    await out.abort()
                    await err.abort()
                raise

    async def _live_session(self, ctx: RunContext) -> _Session:
        """The worker's session process, started now if none is running or restarting."""
        async with self._changed:
            # State is read under the lock every notifier holds, so no change is missed.
            while True:
                if self._closed:
                    raise RunFailed(f"{self.name}: the worker's driver is closed")
                if self._dead_reason is not None:
                    raise RunFailed(self._dead_reason)
                session = self._session
                if session is not None and session.alive:
                    return session
                if session is None and not self._restarting:
                    break
                # It is dying or being restarted: the supervisor says when that is over.
                await self._changed.wait()
        return await self._start_session(ctx)

    async def _start_session(self, ctx: RunContext) -> _Session:
        argv = list(self.profile.command)
        try:
            process = await self._spawn(argv, stdin=asyncio.subprocess.PIPE, run_id=None)
        except (OSError, ValueError) as exc:
            raise await self._cannot_start(ctx, argv, exc) from exc
        session = self._adopt(process)
        self._failures = 0
        await ctx.event(
            "exec.command.started",
            f"started {self.name} (pid {process.pid})",
            {**self._started_payload(process), "mode": "session"},
        )
        return session

    def _adopt(self, process: _Process) -> _Session:
        session = _Session(process, self.profile.max_output_bytes)
        self._session = session
        task = asyncio.create_task(self._supervise(session), name=f"session:{self.name}")
        self._supervisors.add(task)
        task.add_done_callback(self._supervisors.discard)
        return session

    async def _exchange(
        self, ctx: RunContext, session: _Session, budget: OutputBudget, out: Coalescer
    ) -> bool:
        """Send the input, forward the answer; True at the turn-end line, False at EOF."""
        proc = session.process.proc
        assert proc.stdin is not None and proc.stdout is not None
        data = (ctx.input.content + "\n").encode("utf-8", "replace")
        await ctx.event(
            "exec.session.input",
            f"sent input to {self.name} (pid {proc.pid})",
            {"pid": proc.pid, "bytes": len(data)},
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

    async def _exit_code(self, session: _Session) -> int:
        """The session's exit code once its stdout has closed (ending it if it lingers)."""
        process = session.process
        if not await process.wait_gone(self.profile.grace):
            await process.terminate(self.profile.grace)
        return await process.exit_code()

    async def _stop_session(self, session: _Session) -> str:
        session.stopping = True
        async with self._changed:
            if self._session is session:
                self._session = None
            self._changed.notify_all()
        return await session.process.terminate(self.profile.grace)

    async def _supervise(self, first: _Session) -> None:
        """Watch the session process; restart it with backoff when it dies on its own."""
        profile = self.profile
        session: _Session | None = first
        start_error = ""
        try:
            while True:
                if session is not None:
                    code = await session.process.exit_code()
                    uptime = session.process.uptime()
                    async with self._changed:
                        if self._session is session:
                            self._session = None
                        crashed = not session.stopping and not self._closed
                        if crashed:
                            self._restarting = True
                        self._changed.notify_all()
                    await session.process.terminate(profile.grace)  # its group goes with it
                    await _finish_tasks([session.stderr_task], _STDERR_SETTLE)
                    if not crashed:
                        return
                    if uptime >= profile.restart_reset_after:
                        self._failures = 0
                    what = _describe_exit(code)
                    details: dict[str, Any] = {
                        "pid": session.process.pid,
                        "exit_code": code,
                        "uptime_s": round(uptime, 3),
                        "stderr_tail": list(session.stderr_recent),
                    }
                else:
                    what = f"could not be started: {start_error}"
                    details = {"reason": start_error}
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
                    await self.worker.event(
                        "worker.restart.failed",
                        _one_line(reason),
                        {**details, "attempts": profile.restart_max, "reason": reason},
                    )
                    return
                delay = min(
                    profile.restart_backoff * 2 ** (attempt - 1), profile.restart_backoff_max
                )
                await self.worker.event(
                    "worker.restarting",
                    _one_line(
                        f"session process {self.name} {what}; restarting in {delay:g}s "
                        f"(attempt {attempt} of {profile.restart_max})"
                    ),
                    {
                        **details,
                        "attempt": attempt,
                        "max_attempts": profile.restart_max,
                        "delay_s": delay,
                    },
                )
                await self.worker.event(
                    "worker.restart.backoff",
                    f"waiting {delay:g}s before restarting {self.name}",
                    {"attempt": attempt, "delay_s": delay},
                )
                await asyncio.sleep(delay)
                if self._closed:
                    return
                argv = list(profile.command)
                try:
                    process = await self._spawn(argv, stdin=asyncio.subprocess.PIPE, run_id=None)
                except (OSError, ValueError) as exc:
                    session, start_error = None, _start_reason(exc)
                    continue
                session = _Session(process, profile.max_output_bytes)
                async with self._changed:
                    self._session = session
                    self._restarting = False
                    self._changed.notify_all()
                await self.worker.event(
                    "worker.restarted",
                    f"restarted {self.name} (pid {process.pid}, attempt {attempt})",
                    {**self._started_payload(process), "attempt": attempt},
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
                if self._session is session:
                    self._session = None
                self._restarting = False
                self._changed.notify_all()
            if session is not None:
                session.stopping = True
                await session.process.terminate(profile.grace)


async def _feed(stdin: asyncio.StreamWriter, data: bytes) -> None:
    """Write the input and close stdin; a program that does not read it is not an error."""
    try:
        stdin.write(data)
        await stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        stdin.close()
