"""The command inbox: a runtime operated by a process that does not host it.

The issuer always has a store of its own on the same database (as another process
would), so every command and outcome crosses through the database and its
change feed. Hosts killed mid-way are real processes killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID, uuid4

import pytest

from engine.commanding import short
from engine.errors import (
    CommandExpired,
    InvalidRequest,
    NoLiveHost,
    RuntimeBusy,
    RuntimeStopped,
    WorkerNotFound,
    WorkerNotRunning,
)
from engine.remote import CommandClient, this_issuer
from engine.results import CreateWorkerRequest, InputAck
from engine.runtime import Runtime
from store import catalog
from store.catalog import CommandIssued, SendInputCommand
from store.errors import LimitTooLarge
from store.models import Event, Limits, RunStatus, WorkerRef, WorkerStatus
from store.open import open_store
from tests.engine.conftest import (
    HostFactory,
    all_events,
    eventually,
    kill_quietly,
    program,
    wait_run,
    wait_transcript,
)

if TYPE_CHECKING:
    from store.open import AnyStore


@pytest.fixture
async def issuer_store(db_address: str | Path, store: AnyStore) -> AsyncIterator[AnyStore]:
    """A second store on the same database: the issuing console's (`store` made it)."""
    opened = await open_store(db_address)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def client(issuer_store: AnyStore) -> AsyncIterator[CommandClient]:
    made = CommandClient(issuer_store, issuer=this_issuer("console-test"))
    try:
        yield made
    finally:
        await made.close()


def kinds_of(events: list[Event], prefix: str = "command.") -> list[str]:
    return [e.kind for e in events if e.kind.startswith(prefix)]


async def test_each_operation_through_the_inbox_answers_as_a_local_call(
    host: HostFactory, client: CommandClient
) -> None:
    runtime = await host("local", heartbeat_s=0.2)
    remote = client.runtime("local")

    worker = await remote.create_worker(CreateWorkerRequest())
    assert worker.status is WorkerStatus.RUNNING
    assert await runtime.worker_detail(worker.ref) == worker  # the host's own projection

    ack = await remote.send_input(worker.ref, "hello")
    assert ack.ref == worker.ref and ack.transcript_sequence == 1
    assert (await wait_run(runtime, ack.run_id)).status is RunStatus.COMPLETED
    await wait_transcript(runtime, worker.ref, "echo: hello")

    stopped = await remote.stop_worker(worker.ref)
    assert (stopped.status, stopped.changed) == (WorkerStatus.STOPPED, True)
    again = await remote.stop_worker(worker.ref)  # idempotent, as locally: the same event
    assert (again.changed, again.event_id) == (False, stopped.event_id)
    assert not await remote.cancel_run(worker.ref, ack.run_id)  # no longer current

    events = await all_events(runtime)
    issued = [e for e in events if e.kind == "command.issued"]
    assert len(issued) == 5
    assert "console-test (pid" in issued[0].message
    # Every command answered once, and an outcome never precedes its command.
    outcomes = [e for e in events if e.kind in catalog.COMMAND_OUTCOME_KINDS]
    assert sorted(e.payload["command_id"] for e in outcomes) == sorted(
        str(e.event_id) for e in issued
    )
    position = {str(e.event_id): e.position for e in issued}
    assert all(e.position > position[e.payload["command_id"]] for e in outcomes)


async def test_the_outcome_commits_in_the_same_append_as_what_the_command_caused(
    host: HostFactory, client: CommandClient
) -> None:
    runtime = await host("local", heartbeat_s=0.2)
    remote = client.runtime("local")
    worker = await remote.create_worker(CreateWorkerRequest())
    ack = await remote.send_input(worker.ref, "one")
    events = await all_events(runtime)
    accepted = next(e for e in events if e.event_id == ack.event_id)
    done = next(
        e for e in events
        if e.kind == "command.completed" and e.payload.get("run_id") == ack.run_id
    )
    created = next(e for e in events if e.kind == "run.created" and e.run_id == ack.run_id)
    # One append: consecutive seqs in the runtime's log (input, run, outcome).
    assert [accepted.seq, created.seq, done.seq] == [
        accepted.seq, accepted.seq + 1, accepted.seq + 2
    ]


async def test_refusals_come_back_as_the_same_error_as_a_local_call(
    host: HostFactory, client: CommandClient
) -> None:
    runtime = await host("local", heartbeat_s=0.2, limits=Limits(max_workers=1))
    remote = client.runtime("local")
    worker = await runtime.create_worker(CreateWorkerRequest())
    missing = WorkerRef(runtime_id="local", worker_id="w-99")

    async def both(call: str, *args: object) -> tuple[BaseException, BaseException]:
        with pytest.raises(Exception) as local:
            await getattr(runtime, call)(*args)
        with pytest.raises(Exception) as through:
            await getattr(remote, call)(*args)
        return local.value, through.value

    for local, through in [
        await both("send_input", missing, "x"),
        await both("send_input", worker.ref, ""),
        await both("create_worker", CreateWorkerRequest()),
    ]:
        assert type(through) is type(local)
        assert str(through) == str(local)
    assert isinstance(through, LimitTooLarge)
    await runtime.stop_worker(worker.ref)
    local_error, remote_error = await both("send_input", worker.ref, "late")
    assert isinstance(remote_error, WorkerNotRunning) and isinstance(local_error, WorkerNotRunning)
    assert remote_error.status == "stopped"  # attributes travel with the class
    not_found, _ = await both("stop_worker", missing)
    assert isinstance(not_found, WorkerNotFound)
    failed = [e for e in await all_events(runtime) if e.kind == "command.failed"]
    assert {e.payload["error"] for e in failed} == {
        "WorkerNotFound", "InvalidRequest", "LimitTooLarge", "WorkerNotRunning"
    }


async def test_a_retry_with_the_same_id_runs_once_and_gets_the_first_answer(
    host: HostFactory, client: CommandClient
) -> None:
    runtime = await host("local", heartbeat_s=0.2)
    worker = await runtime.create_worker(CreateWorkerRequest())
    command_id = str(uuid4())
    request = SendInputCommand(worker_id=worker.worker_id, content="once")
    first, second = await asyncio.gather(
        client.issue("local", request, command_id=command_id),
        client.issue("local", request, command_id=command_id),
    )
    third = await client.issue("local", request, command_id=command_id)
    assert first == second == third
    runs = await runtime.runs(worker.ref)
    assert [r.prompt for r in runs] == ["once"]
    events = await all_events(runtime)
    assert kinds_of(events) == ["command.issued", "command.completed"]


async def test_no_live_host_fails_fast_and_writes_nothing(
    store: AnyStore, client: CommandClient
) -> None:
    runtime = await Runtime.host(store, "local", heartbeat_s=0.2)
    worker = await runtime.create_worker(CreateWorkerRequest())
    await runtime.close()  # releases the lease: no host now
    before = await store.last_position()
    with pytest.raises(NoLiveHost, match=r"no live host.*agentdeck host --runtime local"):
        await client.runtime("local").send_input(worker.ref, "anyone?")
    with pytest.raises(InvalidRequest, match="no runtime nowhere"):
        await client.runtime("nowhere").stop_runtime()
    assert await store.last_position() == before


async def test_a_command_to_a_stopped_runtime_is_refused(
    store: AnyStore, host: HostFactory, client: CommandClient
) -> None:
    runtime = await host("local", heartbeat_s=0.2)
    worker = await runtime.create_worker(CreateWorkerRequest())
    event_id = await client.runtime("local").stop_runtime()
    assert runtime.status.value == "stopped"
    assert (await store.runtime("local")).status.value == "stopped"  # type: ignore[union-attr]
    with pytest.raises(RuntimeStopped):  # refused before issuing: the record says stopped
        await client.runtime("local").send_input(worker.ref, "late")
    # A command that reached the host anyway (issued before the stop committed)
    # is refused by the host with the same error.
    request = SendInputCommand(worker_id=worker.worker_id, content="raced")
    failed = await wait_outcome(store, await append_command(store, "local", request))
    assert failed.payload["error"] == "RuntimeStopped"
    assert any(e.event_id == event_id for e in await all_events(runtime))


async def append_command(
    store: AnyStore, runtime_id: str, request: SendInputCommand, *, ttl_s: float = 30.0
) -> str:
    """Append a command.issued as an issuer would, without waiting for its answer."""
    command_id = str(uuid4())
    now = datetime.now(UTC)
    await store.append(runtime_id, None, [catalog.event(
        "command.issued",
        CommandIssued(command_id=command_id, request=request, issuer=this_issuer("raw"),
                      expires_at=now + timedelta(seconds=ttl_s)),
        event_id=UUID(command_id), at=now, message="raw command",
    )])
    return command_id


async def wait_outcome(store: AnyStore, command_id: str, timeout: float = 10.0) -> Event:
    async def settled() -> Event | None:
        state = await store.command_state(command_id)
        return state.outcome if state is not None else None

    found: Event = await eventually(settled, timeout, f"command {short(command_id)} answered")
    return found


# -- hosts in other processes -----------------------------------------------------------


def start_host(db: str | Path, runtime_id: str = "local") -> subprocess.Popen[str]:
    """programs/host_child.py `hold`: hosts the runtime (heartbeat 0.1 s) until stdin ends."""
    child = subprocess.Popen(
        program("host_child.py", str(db), runtime_id, "hold"),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().startswith("hosting")
    return child


async def unhosted_worker(store: AnyStore) -> WorkerRef:
    """A worker of runtime `local`, left with no host."""
    first = await Runtime.host(store, "local", heartbeat_s=0.2)
    worker = await first.create_worker(CreateWorkerRequest())
    await first.close()
    return worker.ref


async def pending_at_a_dead_host(
    db_address: str | Path, store: AnyStore, client: CommandClient, ref: WorkerRef, text: str
) -> asyncio.Task[InputAck]:
    """Send `text` to a host in another process that dies (SIGKILL) after the command
    committed and before it ran; the issuer's call, still waiting for an answer."""
    child = start_host(db_address)
    try:
        # Frozen, the host cannot run the command; its heartbeat is still fresh,
        # so the issuer sees a live host and commits the command.
        os.kill(child.pid, signal.SIGSTOP)
        waiting = asyncio.create_task(client.runtime("local").send_input(ref, text))
        await eventually(lambda: store.pending_commands("local"), what="the command committed")
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        kill_quietly(child.pid)
    return waiting


async def test_a_command_committed_before_its_host_died_runs_under_the_next_host(
    db_address: str | Path, store: AnyStore, client: CommandClient
) -> None:
    ref = await unhosted_worker(store)
    waiting = await pending_at_a_dead_host(db_address, store, client, ref, "survive")
    # Between the commit and its execution the host died: the next one runs it.
    second = await Runtime.host(store, "local", heartbeat_s=0.2)
    try:
        ack = await asyncio.wait_for(waiting, 15)
        assert (await wait_run(second, ack.run_id)).status is RunStatus.COMPLETED
        events = await all_events(second)
        assert kinds_of(events) == ["command.issued", "command.completed"]
        assert not await store.pending_commands("local")
    finally:
        await second.close()


async def test_an_expired_command_is_refused_with_the_reason_and_never_runs(
    db_address: str | Path, store: AnyStore, issuer_store: AnyStore
) -> None:
    ref = await unhosted_worker(store)
    client = CommandClient(issuer_store, ttl_s=0.5)
    try:
        waiting = await pending_at_a_dead_host(db_address, store, client, ref, "too late")
        await asyncio.sleep(0.8)  # past its expiry before any host could run it
        second = await Runtime.host(store, "local", heartbeat_s=0.2)
        try:
            with pytest.raises(CommandExpired, match=r"expired at .* before a host could run it"):
                await asyncio.wait_for(waiting, 10)
            assert await second.runs(ref) == []
            failed = [e for e in await all_events(second) if e.kind == "command.failed"]
            assert [e.payload["error"] for e in failed] == ["CommandExpired"]
        finally:
            await second.close()
    finally:
        await client.close()


async def test_a_hundred_commands_from_five_processes_each_run_once(
    db_address: str | Path, store: AnyStore
) -> None:
    runtime = await Runtime.host(store, "local", heartbeat_s=0.2)
    try:
        worker = await runtime.create_worker(CreateWorkerRequest())
        issuers = [
            subprocess.Popen(  # noqa: ASYNC220 - started together before any awaits
                program("issuer.py", str(db_address), "local", worker.worker_id, "20", f"p{n}"),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            )
            for n in range(5)
        ]
        try:
            for child in issuers:
                assert child.stdout is not None and child.stdout.readline().strip() == "ready"
            for child in issuers:
                assert child.stdin is not None
                child.stdin.write("go\n")
                child.stdin.flush()
            answers = []
            for child in issuers:
                out, _ = await asyncio.to_thread(child.communicate, timeout=60)
                answers.extend(json.loads(out.strip().splitlines()[-1]))
        finally:
            for child in issuers:
                kill_quietly(child.pid)
        # Every outcome reached its issuer, each a different run.
        assert [a for a in answers if "error" in a] == []
        assert len({a["run_id"] for a in answers}) == 100
        runs = await runtime.runs(worker.ref, limit=1000)
        assert sorted(r.prompt for r in runs) == sorted(a["input"] for a in answers)
        events = await all_events(runtime)
        issued = [e for e in events if e.kind == "command.issued"]
        completed = [e for e in events if e.kind == "command.completed"]
        assert len(issued) == len(completed) == 100
        assert len({e.payload["command_id"] for e in completed}) == 100
    finally:
        await runtime.close()


async def test_a_command_issued_during_a_hand_over_waits_for_the_new_host(
    store: AnyStore, client: CommandClient
) -> None:
    first = await Runtime.host(store, "local", heartbeat_s=0.2)
    worker = await first.create_worker(CreateWorkerRequest())
    await first.close(successor_token="the-successor")
    # Passed on, not released: the runtime still looks hosted (by this live
    # process), so the command is issued, not refused, and waits.
    assert (await store.hosts())["local"].pid == os.getpid()
    waiting = asyncio.create_task(client.runtime("local").send_input(worker.ref, "meanwhile"))
    await eventually(lambda: store.pending_commands("local"), what="the command committed")
    with pytest.raises(RuntimeBusy):  # nobody else may take it in between
        await Runtime.host(store, "local", heartbeat_s=0.2)
    successor = await Runtime.host(store, "local", heartbeat_s=0.2, lease_token="the-successor")
    try:
        ack = await asyncio.wait_for(waiting, 10)
        assert (await wait_run(successor, ack.run_id)).status is RunStatus.COMPLETED
        diagnostics = [e.payload.get("code") for e in await all_events(successor)
                       if e.kind == "diagnostic.raised"]
        assert "host.takeover" not in diagnostics  # handed over, not taken from a dead host
    finally:
        await successor.close()
