"""The hosting lease: one process hosts a runtime; a live holder refuses, a stale one is taken over."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from engine.errors import ReadOnlyRuntime, RuntimeBusy
from engine.results import CreateWorkerRequest
from engine.runtime import Runtime
from store.codec import us_from_dt
from store.open import open_store
from store.projector import Connection
from tests.engine.conftest import PROGRAMS, HostFactory, all_events, eventually

if TYPE_CHECKING:
    from store.open import AnyStore

HOST = socket.gethostname()


async def write_holder(
    store: AnyStore,
    runtime_id: str,
    *,
    pid: int,
    host_name: str = HOST,
    heartbeat: datetime | None = None,
    token: str = "someone-else",
) -> None:
    """Put a holder row in `hosts` as another process would have left it."""
    at = us_from_dt(heartbeat or datetime.now(UTC))

    def job(conn: Connection) -> None:
        conn.execute(
            "INSERT INTO hosts (runtime_id, pid, host_name, token, started_at, heartbeat_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (runtime_id) DO UPDATE SET pid = excluded.pid,"
            " host_name = excluded.host_name, token = excluded.token,"
            " started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at",
            (runtime_id, pid, host_name, token, at, at),
        )

    await store.run_job(job)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


async def test_a_second_process_is_refused_naming_the_holder_until_it_closes(
    db_address: str | Path,
) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(PROGRAMS / "host_child.py"),
        str(db_address),
        "shared",
        "hold",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        line = (await asyncio.wait_for(child.stdout.readline(), 20)).decode()
        assert line.startswith("hosting "), line
        holder_pid = int(line.split()[1])
        assert holder_pid == child.pid
        store = await open_store(db_address)
        try:
            with pytest.raises(RuntimeBusy) as refused:
                await Runtime.host(store, "shared")
            assert refused.value.holder.pid == child.pid
            assert refused.value.holder.host_name == HOST
            message = str(refused.value)
            assert f"pid {child.pid}" in message and HOST in message and "shared" in message
            # Refused means untouched: no event was written by the refused host.
            kinds = [e.kind for e in (await store.read_after(0, 100)).events]
            assert kinds == ["runtime.started"]

            # A clean close releases the lease: now this process may host it.
            child.stdin.close()
            assert (await asyncio.wait_for(child.stdout.readline(), 20)).strip() == b"released"
            assert await asyncio.wait_for(child.wait(), 20) == 0
            rt = await Runtime.host(store, "shared")
            try:
                assert [e.kind for e in await all_events(rt)] == [
                    "runtime.started",
                    "runtime.restored",
                ]
                summary = await rt.summary()
                assert summary.host is not None and summary.host.pid == os.getpid()
            finally:
                await rt.close()
        finally:
            await store.close()
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()


async def test_a_second_host_in_this_process_is_refused_too(db_address: str | Path) -> None:
    first_store = await open_store(db_address)
    second_store = await open_store(db_address)
    try:
        first = await Runtime.host(first_store, "local")
        with pytest.raises(RuntimeBusy) as refused:
            await Runtime.host(second_store, "local")
        assert refused.value.holder.pid == os.getpid()
        # Another runtime in the same database is another lease.
        other = await Runtime.host(second_store, "other")
        await other.close()
        await first.close()
        second = await Runtime.host(second_store, "local")
        await second.close()
    finally:
        await second_store.close()
        await first_store.close()


async def test_a_clean_close_releases_the_lease(store: AnyStore) -> None:
    rt = await Runtime.host(store, "local")
    hosts = await store.hosts()
    assert hosts["local"].pid == os.getpid() and hosts["local"].host_name == HOST
    await rt.close()
    assert "local" not in await store.hosts()


async def test_a_live_holder_with_a_fresh_heartbeat_is_refused(store: AnyStore) -> None:
    alive = os.getppid()
    await write_holder(store, "local", pid=alive)
    with pytest.raises(RuntimeBusy) as refused:
        await Runtime.host(store, "local", stale_after_s=10)
    assert refused.value.holder.pid == alive
    assert (await store.hosts())["local"].pid == alive, "the holder's row is untouched"


async def test_a_holder_with_a_stale_heartbeat_is_taken_over(store: AnyStore) -> None:
    alive = os.getppid()  # alive, but it stopped beating an hour ago
    await write_holder(store, "local", pid=alive, heartbeat=datetime.now(UTC) - timedelta(hours=1))
    rt = await Runtime.host(store, "local", stale_after_s=10)
    try:
        assert (await store.hosts())["local"].pid == os.getpid()
    finally:
        await rt.close()


async def test_a_holder_whose_pid_is_gone_on_this_host_is_taken_over(store: AnyStore) -> None:
    await write_holder(store, "local", pid=dead_pid())
    rt = await Runtime.host(store, "local", stale_after_s=3600)
    try:
        assert (await store.hosts())["local"].pid == os.getpid()
    finally:
        await rt.close()


async def test_a_holder_on_another_host_is_judged_by_its_heartbeat_only(
    store: AnyStore,
) -> None:
    gone = dead_pid()  # not alive here, but that says nothing about another machine
    await write_holder(store, "local", pid=gone, host_name="elsewhere.example")
    with pytest.raises(RuntimeBusy) as refused:
        await Runtime.host(store, "local", stale_after_s=10)
    assert refused.value.holder.host_name == "elsewhere.example"
    old = datetime.now(UTC) - timedelta(seconds=30)
    await write_holder(store, "local", pid=gone, host_name="elsewhere.example", heartbeat=old)
    rt = await Runtime.host(store, "local", stale_after_s=10)
    await rt.close()


async def test_the_holder_keeps_its_heartbeat_fresh(host: HostFactory, store: AnyStore) -> None:
    rt = await host(heartbeat_s=0.05)
    first = (await store.hosts())["local"].heartbeat_at

    async def beaten() -> bool:
        return (await store.hosts())["local"].heartbeat_at > first

    await eventually(beaten, 3)
    assert rt.status.value == "running"


async def test_a_host_that_lost_its_lease_refuses_changes(
    host: HostFactory, store: AnyStore
) -> None:
    rt = await host(heartbeat_s=0.05)
    w = await rt.create_worker(CreateWorkerRequest())
    # Another process judged this host stale and took the lease over.
    await write_holder(store, "local", pid=os.getppid(), token="the-new-holder")
    before = await store.last_position()

    async def refused() -> bool:
        try:
            await rt.create_worker(CreateWorkerRequest())
        except ReadOnlyRuntime:
            return True
        return False

    await eventually(refused, 3)
    with pytest.raises(ReadOnlyRuntime, match="took over"):
        await rt.send_input(w.ref, "hello")
    assert (await rt.worker_detail(w.ref)).worker_id == "w-1"  # reads still work
    # Fenced by the lease token: not one event of the old host got into the log,
    # not even before its heartbeat noticed the loss.
    assert await store.last_position() == before
    await rt.close()
    assert (await store.hosts())["local"].pid == os.getppid(), "closing did not release theirs"


async def test_a_read_only_store_cannot_host(db_address: str | Path) -> None:
    writer = await open_store(db_address)
    rt = await Runtime.host(writer, "local")
    observer = await open_store(db_address, read_only=True, watch=False)
    try:
        with pytest.raises(ReadOnlyRuntime):
            await Runtime.host(observer, "local")
    finally:
        await observer.close()
        await rt.close()
        await writer.close()
