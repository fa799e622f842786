"""Issue 7 item 5: the database stops taking writes while a runtime is hosted.

SQLite's own limit (`PRAGMA max_page_count` on the writer's connection) makes
the store full for real, anywhere; `test_fault_full_disk.py` does the same
with a real full file system where the machine allows mounting one. On
PostgreSQL a trigger makes the server answer every append with the SQLSTATE
of its full disk (53100, disk_full): the same error a real full disk gives.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from engine.errors import StorageUnavailable, StoreFault
from engine.profiles import CommandProfile
from engine.results import CreateWorkerRequest
from engine.runtime import Runtime
from store.errors import DiskFull
from store.event_store import EventStore
from store.models import RunStatus, WorkerRef
from store.open import open_store
from tests.engine.conftest import (
    HostFactory,
    eventually,
    pid_gone,
    profile_set,
    run_events,
    shell_profile,
    transcript_text,
    wait_run,
)
from tests.store.support import new_event

if TYPE_CHECKING:
    from store.open import AnyStore

TICKER = "echo pid=$$; i=0; while [ $i -lt 400 ]; do echo tick $i; i=$((i+1)); sleep 0.02; done"



# On PostgreSQL: every insert into the log refused as a server whose disk is full refuses it.
PG_FULL = """
CREATE FUNCTION agentdeck_test_full() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full';
END $$;
CREATE TRIGGER agentdeck_test_full BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION agentdeck_test_full();
"""
PG_ROOM = "DROP TRIGGER agentdeck_test_full ON events; DROP FUNCTION agentdeck_test_full();"


async def fill(store: AnyStore) -> None:
    """Let the database grow by no page from now on: SQLite then answers SQLITE_FULL
    (PostgreSQL: disk_full for every append)."""
    if not isinstance(store, EventStore):
        await store.run_job(lambda conn: conn.execute(PG_FULL))
        return

    def freeze(conn: sqlite3.Connection) -> None:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}").fetchone()

    await store.run_job(freeze)


async def fill_up(store: AnyStore) -> None:
    """`fill`, then use the free space left in the last pages too (another runtime's log),
    so that even a single small event of the runtime under test is refused."""
    await fill(store)
    if not isinstance(store, EventStore):
        return  # the trigger refuses every append already
    for size in (4000, 400, 40, 1):
        with contextlib.suppress(DiskFull):
            for _ in range(10_000):
                await store.append("filler", None, [new_event(message="x" * size)])


async def make_room(store: AnyStore) -> None:
    if not isinstance(store, EventStore):
        await store.run_job(lambda conn: conn.execute(PG_ROOM))
        return
    await store.run_job(lambda c: c.execute("PRAGMA max_page_count = 1073741823").fetchone())


async def program_pid(rt: Runtime, ref: WorkerRef) -> int:
    async def seen() -> int | None:
        for _, content in await transcript_text(rt, ref):
            if content.startswith("pid="):
                return int(content.split()[0][4:])
        return None

    pid: int = await eventually(seen, 10, "the program to say its pid")
    return pid


async def test_a_full_database_holds_work_says_so_and_catches_up_when_space_returns(
    host: HostFactory, store: AnyStore
) -> None:
    """Issue 7 item 5: a diagnostic, a notice, nothing new started, the lost run failed later."""
    rt = await host(profiles=profile_set(shell_profile()))
    notices: list[StoreFault | None] = []
    rt.add_fault_listener(notices.append)
    worker = await rt.create_worker(CreateWorkerRequest(profile="sh"))
    first = await rt.send_input(worker.ref, TICKER)
    queued = await rt.send_input(worker.ref, "echo second run")  # acknowledged: must survive
    pid = await program_pid(rt, worker.ref)

    await fill(store)
    fault = await eventually(lambda: rt.fault, 10, "the runtime to notice the full database")
    assert "disk is full" in fault.reason
    assert notices and notices[0] is fault
    # The run that could not be recorded is ended now, its program with it.
    await eventually(lambda: pid_gone(pid), 5, "the ticking program to be ended")
    with pytest.raises(StorageUnavailable, match="cannot record anything right now"):
        await rt.send_input(worker.ref, "refused while full")
    with pytest.raises(StorageUnavailable):
        await rt.create_worker(CreateWorkerRequest(profile="sh"))
    await asyncio.sleep(0.5)
    # Nothing new started: the queued run is still queued, in the log too.
    assert (await store.run("local", queued.run_id)).status is RunStatus.CREATED  # type: ignore[union-attr]
    assert (await store.run("local", first.run_id)).status is RunStatus.EXECUTING  # type: ignore[union-attr]

    await make_room(store)
    await eventually(lambda: rt.fault is None, 15, "the runtime to resume")
    assert notices[-1] is None
    lost = await wait_run(rt, first.run_id)
    assert lost.status is RunStatus.FAILED
    assert lost.error is not None and "could not be recorded" in lost.error
    assert "disk is full" in lost.error
    resumed = await wait_run(rt, queued.run_id)
    assert resumed.status is RunStatus.COMPLETED
    said = [d for d in await rt.diagnostics() if d.code == "store.write_failed"]
    assert len(said) == 1 and first.run_id in said[0].message
    # The log is whole and consistent: contiguous run sequence, a transcript without
    # holes, projections equal to a rebuild.
    events = await run_events(rt, first.run_id)
    assert [e.run_seq for e in events] == list(range(1, len(events) + 1))
    page = await rt.transcript_page(worker.ref, 0, 500)
    assert [e.sequence for e in page.items] == list(range(1, page.total_items + 1))
    report = await store.verify()
    assert report.ok, report.problems
    # And work goes on as before.
    after = await rt.send_input(worker.ref, "echo after")
    assert (await wait_run(rt, after.run_id)).status is RunStatus.COMPLETED


async def test_still_full_at_close_loses_nothing_acknowledged(db_address: str | Path) -> None:
    """Issue 7 item 5: closing while full writes nothing; the next host tells the truth."""
    store = await open_store(db_address, watch=False)
    try:
        rt = await Runtime.host(store, "local", profiles=profile_set(shell_profile()))
        worker = await rt.create_worker(CreateWorkerRequest(profile="sh"))
        first = await rt.send_input(worker.ref, TICKER)
        queued = await rt.send_input(worker.ref, "echo queued")
        pid = await program_pid(rt, worker.ref)
        await fill(store)
        await eventually(lambda: rt.fault, 10, "the runtime to notice the full database")
        await rt.close()
        assert pid_gone(pid)
    finally:
        await store.close()
    store = await open_store(db_address, watch=False)
    try:
        await make_room(store)  # PostgreSQL's trigger outlives the session that made it
        rt = await Runtime.host(store, "local", profiles=profile_set(shell_profile()))
        try:
            failed = await store.run("local", first.run_id)
            assert failed is not None and failed.status is RunStatus.FAILED
            done = await wait_run(rt, queued.run_id)
            assert done.status is RunStatus.COMPLETED
            assert (await store.verify()).ok
        finally:
            await rt.close()
    finally:
        await store.close()


async def test_a_session_that_dies_while_the_store_is_full_starts_afresh_after(
    host: HostFactory, store: AnyStore
) -> None:
    """Issue 7 item 5: a session worker is not left dead by restart events that could not
    be written: once the store takes writes again, its next input starts a new session."""
    chat = CommandProfile(
        name="chat",
        command=["sh", "-c", 'while read l; do echo "said $l"; echo "<<<end>>>"; done'],
        mode="session",
        grace=0.3,
        restart_backoff=0.05,
    )
    rt = await host(profiles=profile_set(chat))
    worker = await rt.create_worker(CreateWorkerRequest(profile="chat"))
    first = await rt.send_input(worker.ref, "hello")
    assert (await wait_run(rt, first.run_id)).status is RunStatus.COMPLETED
    started = [e for e in await run_events(rt, first.run_id) if e.kind == "exec.command.started"]
    session_pid = int(started[0].payload["pid"])

    await fill_up(store)
    os.kill(session_pid, signal.SIGKILL)  # it dies while nothing can be recorded
    await eventually(lambda: rt.fault, 10, "the refused restart events to be noticed")
    await make_room(store)
    await eventually(lambda: rt.fault is None, 15, "the runtime to resume")
    again = await rt.send_input(worker.ref, "are you there")
    answered = await wait_run(rt, again.run_id)
    assert answered.status is RunStatus.COMPLETED, answered.error
    assert "said are you there" in "\n".join(c for _, c in await transcript_text(rt, worker.ref))
