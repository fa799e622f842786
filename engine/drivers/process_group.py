"""Programs in process groups of their own: started, watched, ended as a whole.

Every program gets its own process group (a new session), so a cancel or a
timeout can end it and everything it started: SIGTERM to the group, then
SIGKILL after a grace period. On Linux the engine process makes itself a child
subreaper, so grandchildren orphaned by a killed program are re-parented to
it and reaped here (some containers' PID 1 never reaps, which would leave
them as zombies forever). Nothing here emits events: that is the driver's.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import functools
import os
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from engine.drivers.output import READ_SIZE

_PR_SET_CHILD_SUBREAPER = 36
KILL_WAIT = 2.0  # after SIGKILL, how long to wait for the group to be reaped


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


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def describe_exit(code: int) -> str:
    """How a program ended, from its exit code (-N for signal N)."""
    return f"exited with code {code}" if code >= 0 else f"killed by {signal_name(-code)}"


def working_folder(configured: str | None) -> str:
    if configured is None:
        return str(Path.cwd())
    if not Path(configured).is_dir():
        raise FileNotFoundError(errno.ENOENT, "working folder does not exist", configured)
    return configured


def start_reason(exc: BaseException) -> str:
    """Why a program could not be started, in an operator's words."""
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
class GroupProcess:
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
            await self.wait_gone(KILL_WAIT)
            return "killed"
        except BaseException:
            # Cancelled while cleaning up: leave nothing behind, even without waiting.
            _signal_group(self.pgid, signal.SIGKILL)
            raise


async def spawn_group(
    argv: list[str], *, stdin: int, cwd: str, env: Mapping[str, str]
) -> GroupProcess:
    """Start `argv` as the leader of a new session (its own process group), pipes open."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.subprocess_exec(
        lambda: _ExitWatch(loop),
        *argv,
        stdin=stdin,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env=dict(env),
        start_new_session=True,
    )
    proc = asyncio.subprocess.Process(transport, protocol, loop)
    return GroupProcess(proc, transport, protocol.exited, argv, cwd)


async def finish_tasks(tasks: list[asyncio.Task[None]], timeout: float) -> None:
    """Wait for helper tasks a little, then cancel the stragglers (and collect every result)."""
    pending = [task for task in tasks if not task.done()]
    if pending:
        _, still = await asyncio.wait(pending, timeout=timeout)
        for task in still:
            task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
