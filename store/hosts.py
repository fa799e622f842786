"""Host leases: which process hosts a runtime, as writer jobs on the `hosts` table.

The policy (how old a heartbeat may be, whether a pid is alive) is the
engine's; these functions only read and write the rows atomically.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from store.codec import dt_from_us
from store.group_commit import WritesThrough
from store.models import HostLease
from store.projector import Connection


@dataclass(frozen=True)
class LeaseClaim:
    runtime_id: str
    pid: int
    host_name: str
    token: str
    now_us: int


def _lease(row: tuple[object, ...]) -> HostLease:
    runtime_id, pid, host_name, started, heartbeat = row
    return HostLease(
        runtime_id=str(runtime_id),
        pid=int(str(pid)),
        host_name=str(host_name),
        started_at=dt_from_us(int(str(started))),
        heartbeat_at=dt_from_us(int(str(heartbeat))),
    )


@dataclass(frozen=True)
class ClaimOutcome:
    """What a claim found: the live holder that refused it, or the holder it replaced."""

    refused_by: HostLease | None = None
    replaced: HostLease | None = None
    replaced_token: str | None = None


def claim_job(
    claim: LeaseClaim, may_take_over: Callable[[HostLease, str], bool]
) -> Callable[[Connection], ClaimOutcome]:
    """A job that takes the lease, or reports the live holder it was refused for.

    `may_take_over(holder, holder_token)` decides whether an existing holder
    is gone (stale heartbeat, dead pid, or ourselves). A holder that was taken
    over is returned with its token, so the new host can recognise what the
    old one left behind.
    """

    def job(conn: Connection) -> ClaimOutcome:
        row = conn.execute(
            "SELECT runtime_id, pid, host_name, started_at, heartbeat_at, token FROM hosts"
            " WHERE runtime_id = ?",
            (claim.runtime_id,),
        ).fetchone()
        outcome = ClaimOutcome()
        if row is not None:
            holder, token = _lease(row[:5]), str(row[5])
            if not may_take_over(holder, token):
                return ClaimOutcome(refused_by=holder)
            if token != claim.token:
                outcome = ClaimOutcome(replaced=holder, replaced_token=token)
        conn.execute(
            "INSERT INTO hosts (runtime_id, pid, host_name, token, started_at, heartbeat_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (runtime_id) DO UPDATE SET pid = excluded.pid,"
            " host_name = excluded.host_name, token = excluded.token,"
            " started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at",
            (claim.runtime_id, claim.pid, claim.host_name, claim.token, claim.now_us, claim.now_us),
        )
        return outcome

    return job


def heartbeat_job(runtime_id: str, token: str, now_us: int) -> Callable[[Connection], bool]:
    """A job that refreshes our heartbeat; False if the lease is no longer ours."""

    def job(conn: Connection) -> bool:
        cur = conn.execute(
            "UPDATE hosts SET heartbeat_at = ? WHERE runtime_id = ? AND token = ?",
            (now_us, runtime_id, token),
        )
        return bool(cur.rowcount == 1)

    return job


def release_job(runtime_id: str, token: str) -> Callable[[Connection], None]:
    def job(conn: Connection) -> None:
        conn.execute("DELETE FROM hosts WHERE runtime_id = ? AND token = ?", (runtime_id, token))

    return job


def pass_job(
    runtime_id: str, token: str, successor_token: str, now_us: int
) -> Callable[[Connection], bool]:
    """A job that gives our lease the successor's token (fresh heartbeat, our pid kept);
    False if the lease was no longer ours."""

    def job(conn: Connection) -> bool:
        cur = conn.execute(
            "UPDATE hosts SET token = ?, heartbeat_at = ? WHERE runtime_id = ? AND token = ?",
            (successor_token, now_us, runtime_id, token),
        )
        return bool(cur.rowcount == 1)

    return job


class HostLeases(WritesThrough[Any]):
    """The lease methods of a store, as writer jobs of its own (`run_job`); both back
    ends mix this in, so their leases are the same SQL under the same write lock."""

    async def claim_lease(
        self, claim: LeaseClaim, may_take_over: Callable[[HostLease, str], bool]
    ) -> ClaimOutcome:
        """Take `claim.runtime_id`'s lease unless its holder is live (`may_take_over` says)."""
        return await self.run_job(claim_job(claim, may_take_over))

    async def beat_lease(self, runtime_id: str, token: str, now_us: int) -> bool:
        """Refresh the heartbeat of the lease held with `token`; False if it is not held."""
        return await self.run_job(heartbeat_job(runtime_id, token, now_us))

    async def release_lease(self, runtime_id: str, token: str) -> None:
        await self.run_job(release_job(runtime_id, token))

    async def pass_lease(self, runtime_id: str, token: str, successor: str, now_us: int) -> bool:
        """Give the lease held with `token` to whoever claims it with `successor`."""
        return await self.run_job(pass_job(runtime_id, token, successor, now_us))
