"""Programs a dead host left running: found by the mark they carry, ended safely.

Every program a host starts carries `AGENTDECK_HOST_MARK` in its environment,
a digest of that host's lease token, so it is unique to one hosting session
and inherited by whatever the program starts in turn. A host that takes a
runtime over from a holder that died (or stopped heartbeating) on this
machine looks for processes carrying that holder's mark and ends them:
SIGTERM, a grace period, SIGKILL.

Why a mark rather than a recorded pid and start time: the mark lives in the
process itself, so it finds the whole family a run started (a `sleep` under
`sh`, a server a script left behind) and nothing else. Each candidate is
pinned with a pidfd *before* its mark is read and signalled only through that
pidfd, so a pid that is reused in between can never be signalled. A group
leader that is still alive is also signalled as a group, which reaches
members that cleared their environment (`env -i`).

The digest, not the token, is what programs see: the token is what keeps the
lease, and a program has no business holding it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from store.catalog import EndedProcess

MARK_VAR = "AGENTDECK_HOST_MARK"
_KILL_WAIT_S = 2.0
_COMMAND_CHARS = 120


def host_mark(lease_token: str) -> str:
    """The mark a host's programs carry, derived from its lease token."""
    return hashlib.sha256(f"agentdeck-host:{lease_token}".encode()).hexdigest()[:32]


@dataclass(eq=False)
class Leftover:
    """A live process that carries a dead host's mark."""

    pid: int
    pgid: int
    command: str
    run_id: str | None
    worker_id: str | None
    profile: str | None
    pidfd: int = field(repr=False)
    ended: str = "running"  # then "terminated", "killed" or "survived"

    def describe(self) -> str:
        owner = self.run_id or self.worker_id or "no run"
        return f"pid {self.pid} ({owner}): {self.command}"

    def ended_process(self) -> EndedProcess:
        """What `run.failed` of its run says about it (once `end_leftovers` ended it)."""
        return EndedProcess(pid=self.pid, pgid=self.pgid, command=self.command, ended=self.ended)


def _environment(raw: bytes) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in raw.split(b"\0"):
        name, sep, value = item.partition(b"=")
        if sep:
            env[name.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    return env


def _stat(proc: Path, pid: int) -> tuple[str, int]:
    """The state letter and process group of `pid`, from /proc/PID/stat."""
    text = (proc / str(pid) / "stat").read_text()
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[2])


def _command(proc: Path, pid: int) -> str:
    try:
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except OSError:
        return "?"
    text = " ".join(part.decode("utf-8", "replace") for part in raw.split(b"\0") if part)
    return text if len(text) <= _COMMAND_CHARS else text[: _COMMAND_CHARS - 1] + "…"


def _pids(proc: Path) -> Iterator[int]:
    try:
        entries = list(os.scandir(proc))
    except OSError:
        return
    for entry in entries:
        if entry.name.isdigit():
            yield int(entry.name)


def find_leftovers(mark: str, proc: Path = Path("/proc")) -> list[Leftover]:
    """Live processes whose environment carries `mark` (Linux; elsewhere none are found).

    Blocking (it reads /proc): call it in a thread. Every returned process holds
    an open pidfd; `end_leftovers` closes them.
    """
    if not sys.platform.startswith("linux") or not hasattr(os, "pidfd_open"):
        return []
    wanted = f"{MARK_VAR}={mark}".encode()
    me = os.getpid()
    found: list[Leftover] = []
    for pid in _pids(proc):
        if pid == me:
            continue
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            continue  # gone already, or not ours to see
        keep = False
        try:
            raw = (proc / str(pid) / "environ").read_bytes()
            if wanted not in raw.split(b"\0"):
                continue
            # The pidfd was opened before the environment was read: if it still
            # reaches a live process, that environment was this process's.
            if not _alive(pidfd, proc, pid):
                continue
            _, pgid = _stat(proc, pid)
            env = _environment(raw)
            found.append(
                Leftover(
                    pid=pid,
                    pgid=pgid,
                    command=_command(proc, pid),
                    run_id=env.get("AGENTDECK_RUN_ID"),
                    worker_id=env.get("AGENTDECK_WORKER_ID"),
                    profile=env.get("AGENTDECK_PROFILE"),
                    pidfd=pidfd,
                )
            )
            keep = True
        except (OSError, ValueError, IndexError):
            continue
        finally:
            if not keep:
                os.close(pidfd)
    return found


def _alive(pidfd: int, proc: Path, pid: int) -> bool:
    """Whether the pinned process still runs (a zombie has ended: it only awaits reaping)."""
    try:
        signal.pidfd_send_signal(pidfd, 0)
    except OSError:
        return False
    try:
        state, _ = _stat(proc, pid)
    except (OSError, ValueError, IndexError):
        return False
    return state not in ("Z", "X")


def _signal(leftover: Leftover, sig: int, proc: Path) -> None:
    with contextlib.suppress(OSError):
        signal.pidfd_send_signal(leftover.pidfd, sig)
    # A live leader pins its group id (it cannot be reused while the leader
    # runs), so the group is certainly the one that leader started.
    if leftover.pid == leftover.pgid and _alive(leftover.pidfd, proc, leftover.pid):
        with contextlib.suppress(OSError):
            os.killpg(leftover.pgid, sig)


async def _wait_gone(leftovers: list[Leftover], timeout: float, proc: Path) -> list[Leftover]:
    """Wait until none is alive or `timeout` passes; the ones still alive."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        alive = [lo for lo in leftovers if _alive(lo.pidfd, proc, lo.pid)]
        if not alive or time.monotonic() >= deadline:
            return alive
        await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 0.1)


async def end_leftovers(
    leftovers: list[Leftover], grace: float, proc: Path = Path("/proc")
) -> None:
    """SIGTERM every leftover, SIGKILL what is left after `grace`; set each one's `ended`."""
    try:
        for leftover in leftovers:
            _signal(leftover, signal.SIGTERM, proc)
            _signal(leftover, signal.SIGCONT, proc)  # a stopped program cannot act on SIGTERM
        stubborn = await _wait_gone(leftovers, grace, proc)
        for leftover in leftovers:
            leftover.ended = "terminated"
        for leftover in stubborn:
            _signal(leftover, signal.SIGKILL, proc)
            leftover.ended = "killed"
        for leftover in await _wait_gone(stubborn, _KILL_WAIT_S, proc):
            leftover.ended = "survived"
    finally:
        for leftover in leftovers:
            with contextlib.suppress(OSError):
                os.close(leftover.pidfd)
