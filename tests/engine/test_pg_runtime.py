"""The engine on PostgreSQL: a runtime hosted on a PgEventStore, operated locally and remotely.

The issuer has a PgEventStore of its own (its own connections, as another
process would), so every command and its outcome cross the database and its
LISTEN/NOTIFY feed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from engine.remote import CommandClient, this_issuer
from engine.results import CreateWorkerRequest
from engine.runtime import Runtime
from store import catalog
from store.models import RunStatus, WorkerStatus
from store.postgres.event_store import PgEventStore
from tests.engine.conftest import all_events, wait_run, wait_transcript


@pytest.fixture
async def pg_store(pg_url: str) -> AsyncIterator[PgEventStore]:
    store = await PgEventStore.open(pg_url)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def runtime(pg_store: PgEventStore) -> AsyncIterator[Runtime]:
    hosted = await Runtime.host(pg_store, "local", heartbeat_s=0.2)
    try:
        yield hosted
    finally:
        await hosted.close()


async def test_an_echo_worker_runs_on_postgresql(runtime: Runtime, pg_store: PgEventStore) -> None:
    worker = await runtime.create_worker(CreateWorkerRequest())
    assert worker.status is WorkerStatus.RUNNING
    ack = await runtime.send_input(worker.ref, "hello")
    assert (await wait_run(runtime, ack.run_id)).status is RunStatus.COMPLETED
    await wait_transcript(runtime, worker.ref, "echo: hello")
    page = await runtime.transcript_page(worker.ref, 0, 10)
    assert [(i.role.value, i.content) for i in page.items] == [
        ("user", "hello"), ("assistant", "echo: hello"),
    ]
    events = await all_events(runtime)
    assert [e.position for e in events] == list(range(1, len(events) + 1))
    assert "local" in await pg_store.hosts()
    assert await pg_store.repair_projections("local") is None


async def test_a_command_from_another_store_runs_once_and_is_answered(
    pg_url: str, runtime: Runtime
) -> None:
    issuer_store = await PgEventStore.open(pg_url)
    client = CommandClient(issuer_store, issuer=this_issuer("console-pg-test"))
    try:
        remote = client.runtime("local")
        worker = await remote.create_worker(CreateWorkerRequest())
        assert await runtime.worker_detail(worker.ref) == worker
        ack = await remote.send_input(worker.ref, "through the inbox")
        assert ack.ref == worker.ref and ack.transcript_sequence == 1
        assert (await wait_run(runtime, ack.run_id)).status is RunStatus.COMPLETED
        await wait_transcript(runtime, worker.ref, "echo: through the inbox")
    finally:
        await client.close()
        await issuer_store.close()

    events = await all_events(runtime)
    issued = [e for e in events if e.kind == "command.issued"]
    assert len(issued) == 2 and "console-pg-test (pid" in issued[0].message
    outcomes = [e for e in events if e.kind in catalog.COMMAND_OUTCOME_KINDS]
    assert sorted(e.payload["command_id"] for e in outcomes) == sorted(
        str(e.event_id) for e in issued
    ), "each command answered exactly once"
    assert all(e.kind == "command.completed" for e in outcomes)
    inputs = [e for e in events if e.kind == "worker.input.accepted"]
    assert len(inputs) == 1, "the input ran once"
    assert await runtime.store.pending_commands("local") == []
    for command in issued:
        state = await runtime.store.command_state(str(command.event_id))
        assert state is not None and state.status == "completed"
