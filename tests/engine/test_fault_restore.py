"""Issue 7 item 13: a host does not trust projections that disagree with the log.

The damage is made the way it happens: another program edits the database
with a plain connection of its own (sqlite3, psycopg) while no one hosts the runtime.
"""

from __future__ import annotations

from pathlib import Path

from engine.results import CreateWorkerRequest
from engine.runtime import Runtime
from store.models import RunStatus, WorkerRef
from store.open import open_store
from tests.engine.conftest import profile_set, shell_profile, transcript_text, wait_run
from tests.store.support import behind_the_store


async def test_a_lost_worker_row_is_rebuilt_from_the_log_before_hosting(db_address: str | Path) -> None:
    """Issue 7 item 13: the worker comes back with its transcript; its id is not reused."""
    store = await open_store(db_address, watch=False)
    try:
        rt = await Runtime.host(store, "local", profiles=profile_set(shell_profile()))
        first = await rt.create_worker(CreateWorkerRequest(profile="sh"))
        ack = await rt.send_input(first.ref, "echo from the first worker")
        assert (await wait_run(rt, ack.run_id)).status is RunStatus.COMPLETED
        before = await transcript_text(rt, first.ref)
        await rt.close()
    finally:
        await store.close()

    assert behind_the_store(db_address, "DELETE FROM workers WHERE worker_id = 'w-1'") == 1

    store = await open_store(db_address, watch=False)
    try:
        rt = await Runtime.host(store, "local", profiles=profile_set(shell_profile()))
        try:
            workers = await rt.list_workers()
            assert [w.worker_id for w in workers] == ["w-1"]
            assert await transcript_text(rt, first.ref) == before
            said = [d for d in await rt.diagnostics() if d.code == "store.projections_rebuilt"]
            assert len(said) == 1 and "workers" in said[0].message
            # New work goes on where the log left it: a new id, inputs accepted.
            second = await rt.create_worker(CreateWorkerRequest(profile="sh"))
            assert second.worker_id == "w-2"
            again = await rt.send_input(first.ref, "echo still here")
            assert (await wait_run(rt, again.run_id)).status is RunStatus.COMPLETED
            assert (await store.verify()).ok
        finally:
            await rt.close()
    finally:
        await store.close()


async def test_consistent_projections_are_left_alone(db_address: str | Path) -> None:
    """Issue 7 item 13: no rebuild and no diagnostic when the check finds nothing."""
    store = await open_store(db_address, watch=False)
    try:
        rt = await Runtime.host(store, "local", profiles=profile_set(shell_profile()))
        worker = await rt.create_worker(CreateWorkerRequest(profile="sh"))
        await rt.close()
        rt = await Runtime.host(store, "local", profiles=profile_set(shell_profile()))
        try:
            assert [w.worker_id for w in await rt.list_workers()] == [worker.worker_id]
            codes = {d.code for d in await rt.diagnostics()}
            assert "store.projections_rebuilt" not in codes
            ref = WorkerRef(runtime_id="local", worker_id="w-1")
            assert (await rt.worker_detail(ref)).worker_id == "w-1"
        finally:
            await rt.close()
    finally:
        await store.close()
