"""The hosting lease: one process hosts a runtime at a time.

The holder is recorded with pid, host name and a heartbeat. Another process
is refused while the holder is alive; a holder whose heartbeat is stale, or
whose pid is gone on this same host, is taken over. Pids are only compared
between processes that present the same host name (`machine_name`): across
machines only the heartbeat counts, so hosts on several machines can share one
PostgreSQL database.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from engine.clock import Clock
from engine.errors import InvalidRequest, RuntimeBusy
from engine.leftovers import host_mark
from store.codec import us_from_dt
from store.hosts import LeaseClaim
from store.interface import EventLog
from store.models import HostLease

HEARTBEAT_S = 2.0
STALE_AFTER_S = 10.0
HOST_NAME_ENV = "AGENTDECK_HOST_NAME"
MAX_HOST_NAME_CHARS = 253  # a DNS name's limit


def machine_name() -> str:
    """The name this machine is recorded and compared by in leases and commands.

    `AGENTDECK_HOST_NAME` when set and non-empty (containers that share a host
    name, or one box simulating several), else the system's host name. Two
    processes presenting the same name are taken to be on one machine: a lease
    holder's dead pid then frees its lease at once.
    Raises InvalidRequest (one line) for a name that cannot be shown on one line.
    """
    given = os.environ.get(HOST_NAME_ENV, "")
    if not given:
        return socket.gethostname()
    if given.strip() != given or not given.isprintable() or len(given) > MAX_HOST_NAME_CHARS:
        raise InvalidRequest(
            f"{HOST_NAME_ENV}={given[:40]!r}{'...' if len(given) > 40 else ''} is not a usable "
            f"host name: use printable characters with no spaces at either end, at most "
            f"{MAX_HOST_NAME_CHARS} of them (or unset it to use {socket.gethostname()!r})"
        )
    return given


@dataclass(frozen=True)
class ReplacedHost:
    """A holder this host took the lease from (it died, or stopped heartbeating)."""

    lease: HostLease
    mark: str  # the mark its programs carry (engine.leftovers)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def holder_gone(
    holder: HostLease, *, now: datetime, stale_after_s: float = STALE_AFTER_S
) -> bool:
    """Whether `holder` may be taken over: its pid is gone on this machine, or it stopped
    heartbeating. (A pid means nothing on another machine: only the heartbeat counts there.)"""
    if holder.host_name == machine_name() and not pid_alive(holder.pid):
        return True
    return now - holder.heartbeat_at > timedelta(seconds=stale_after_s)


class HostLeaseHolder:
    """Takes, keeps (heartbeat) and releases a runtime's hosting lease."""

    def __init__(
        self,
        store: EventLog,
        runtime_id: str,
        clock: Clock,
        heartbeat_s: float = HEARTBEAT_S,
        stale_after_s: float = STALE_AFTER_S,
        token: str | None = None,
    ) -> None:
        self._store = store
        self._runtime_id = runtime_id
        self._clock = clock
        self._heartbeat_s = heartbeat_s
        self._stale_after = timedelta(seconds=stale_after_s)
        # A token given is one the previous host passed on (`pass_to`): claiming
        # with it takes the lease the moment that host lets go, whoever else waits.
        self.token = token or uuid.uuid4().hex
        self.host_name = machine_name()
        self.pid = os.getpid()
        self.mark = host_mark(self.token)
        self.replaced: ReplacedHost | None = None
        self._task: asyncio.Task[None] | None = None
        self.lost = False

    def _may_take_over(self, holder: HostLease, token: str) -> bool:
        if token == self.token:
            return True
        return holder_gone(
            holder, now=self._clock.now(), stale_after_s=self._stale_after.total_seconds()
        )

    async def acquire(self) -> None:
        """Take the lease or raise RuntimeBusy naming the live holder."""
        claim = LeaseClaim(
            self._runtime_id, self.pid, self.host_name, self.token, us_from_dt(self._clock.now())
        )
        outcome = await self._store.claim_lease(claim, self._may_take_over)
        if outcome.refused_by is not None:
            raise RuntimeBusy(outcome.refused_by)
        if outcome.replaced is not None and outcome.replaced_token is not None:
            self.replaced = ReplacedHost(outcome.replaced, host_mark(outcome.replaced_token))
        self._task = asyncio.create_task(self._beat(), name=f"agentdeck-lease-{self._runtime_id}")

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_s)
            try:
                await self.beat()
            except Exception:
                continue  # a busy moment: the next beat tries again well before staleness
            if self.lost:
                return

    async def beat(self) -> bool:
        """Refresh the heartbeat now; False (and `lost`) if the lease is no longer ours.

        Raises the store's error if the heartbeat cannot be written (busy, full).
        """
        ours = await self._store.beat_lease(
            self._runtime_id, self.token, us_from_dt(self._clock.now())
        )
        if not ours:
            self.lost = True
        return bool(ours)

    def mark_lost(self) -> None:
        """The store refused a write for this lease: another process holds it now."""
        self.lost = True

    async def _stop_beating(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def release(self) -> None:
        await self._stop_beating()
        with contextlib.suppress(Exception):
            await self._store.release_lease(self._runtime_id, self.token)

    async def pass_to(self, token: str) -> None:
        """Hand the lease to the host that will claim it with `token` (a hand-over).

        The row keeps this process's pid and a fresh heartbeat, so to everyone
        else the runtime stays hosted (commands issued meanwhile wait for the
        successor) until the successor claims it, or this process is gone
        without one (then it is taken over as from any dead host).
        """
        await self._stop_beating()
        with contextlib.suppress(Exception):
            await self._store.pass_lease(
                self._runtime_id, self.token, token, us_from_dt(self._clock.now())
            )
