"""Issue 10: the host name a process presents (AGENTDECK_HOST_NAME), and pids only
compared between processes that present the same one."""

from __future__ import annotations

import os
import socket
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.clock import SystemClock
from engine.errors import InvalidRequest, RuntimeBusy
from engine.hosting import HOST_NAME_ENV, HostLeaseHolder, holder_gone, machine_name
from engine.remote import this_issuer
from store.codec import us_from_dt
from store.event_store import EventStore
from store.hosts import LeaseClaim
from store.models import HostLease


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


def lease(host_name: str, pid: int, heartbeat_age_s: float) -> HostLease:
    now = datetime.now(UTC)
    return HostLease(
        runtime_id="alpha",
        pid=pid,
        host_name=host_name,
        started_at=now - timedelta(minutes=5),
        heartbeat_at=now - timedelta(seconds=heartbeat_age_s),
    )


def test_the_machine_name_is_the_system_one_unless_agentdeck_host_name_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(HOST_NAME_ENV, raising=False)
    assert machine_name() == socket.gethostname()
    monkeypatch.setenv(HOST_NAME_ENV, "")
    assert machine_name() == socket.gethostname()  # set but empty: as if unset
    monkeypatch.setenv(HOST_NAME_ENV, "box-a.example")
    assert machine_name() == "box-a.example"
    assert this_issuer().host_name == "box-a.example"


@pytest.mark.parametrize("bad", [" box", "box ", "   ", "box\nb", "box\x1b[31m", "b" * 254])
def test_an_unusable_host_name_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    monkeypatch.setenv(HOST_NAME_ENV, bad)
    with pytest.raises(InvalidRequest) as refused:
        machine_name()
    message = str(refused.value)
    assert message.startswith(f"{HOST_NAME_ENV}=") and "not a usable host name" in message
    assert message.isprintable() and len(message) < 300, message


def test_a_dead_pid_on_another_host_name_counts_only_once_its_heartbeat_is_stale(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(HOST_NAME_ENV, "box-b")
    now = datetime.now(UTC)
    pid = dead_pid()
    # Another machine: its pid says nothing here (it may well be alive there).
    assert not holder_gone(lease("box-a", pid, 1), now=now, stale_after_s=10)
    assert not holder_gone(lease("box-a", pid, 9), now=now, stale_after_s=10)
    assert holder_gone(lease("box-a", pid, 11), now=now, stale_after_s=10)
    # This machine: a dead pid frees the lease at once, a live one holds it.
    assert holder_gone(lease("box-b", pid, 1), now=now, stale_after_s=10)
    assert not holder_gone(lease("box-b", os.getpid(), 1), now=now, stale_after_s=10)


async def claim_as(store: EventStore, host_name: str, pid: int, heartbeat_age_s: float) -> None:
    """Put a holder of `alpha` in the hosts table as a process on `host_name` would."""
    at = us_from_dt(datetime.now(UTC) - timedelta(seconds=heartbeat_age_s))
    claim = LeaseClaim("alpha", pid, host_name, "their-token", at)
    outcome = await store.claim_lease(claim, lambda _holder, _token: True)
    assert outcome.refused_by is None


async def test_the_lease_is_taken_from_a_dead_pid_only_on_the_same_host_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = dead_pid()
    async with await EventStore.open(tmp_path / "a.db", watch=False) as store:
        await claim_as(store, "box-a", pid, heartbeat_age_s=1)
        monkeypatch.setenv(HOST_NAME_ENV, "box-b")
        other_machine = HostLeaseHolder(store, "alpha", SystemClock(), stale_after_s=10)
        with pytest.raises(RuntimeBusy) as busy:
            await other_machine.acquire()
        assert busy.value.holder.host_name == "box-a"
        assert f"hosted by pid {pid} on box-a" in str(busy.value)

        monkeypatch.setenv(HOST_NAME_ENV, "box-a")
        same_machine = HostLeaseHolder(store, "alpha", SystemClock(), stale_after_s=10)
        await same_machine.acquire()
        try:
            assert same_machine.replaced is not None
            assert (same_machine.replaced.lease.pid, same_machine.replaced.lease.host_name) == (
                pid, "box-a"
            )
            held = (await store.hosts())["alpha"]
            assert (held.host_name, held.pid) == ("box-a", same_machine.pid)
        finally:
            await same_machine.release()


async def test_another_host_name_takes_the_lease_once_the_heartbeat_is_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = dead_pid()
    async with await EventStore.open(tmp_path / "a.db", watch=False) as store:
        await claim_as(store, "box-a", pid, heartbeat_age_s=6)
        monkeypatch.setenv(HOST_NAME_ENV, "box-b")
        patient = HostLeaseHolder(store, "alpha", SystemClock(), stale_after_s=10)
        with pytest.raises(RuntimeBusy):
            await patient.acquire()
        quick = HostLeaseHolder(store, "alpha", SystemClock(), stale_after_s=5)
        await quick.acquire()
        try:
            assert quick.replaced is not None and quick.replaced.lease.host_name == "box-a"
            assert (await store.hosts())["alpha"].host_name == "box-b"
        finally:
            await quick.release()
