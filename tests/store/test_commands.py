"""The command inbox in the store: the `commands` projection, its reads, and host fencing.

A console that does not host a runtime appends `command.issued` to its log;
the host answers with `command.completed` / `command.failed` in the same
append as the events the command caused. The store makes "executed exactly
once" hold: a retried issue is a DuplicateEvent, a second outcome refuses its
whole append (CommandAlreadySettled), and a host that lost its lease cannot
write at all (HostFenced). Every example runs on a real database file.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from uuid6 import uuid7

from store import catalog
from store.catalog import (
    CommandCompleted,
    CommandFailed,
    CommandIssued,
    CommandRequest,
    CreateWorkerCommand,
    Issuer,
    RuntimeStarted,
    SendInputCommand,
    StopWorkerCommand,
    WorkerEnded,
)
from store.codec import dump_payload, us_from_dt
from store.errors import (
    CommandAlreadySettled,
    DuplicateEvent,
    HostFenced,
    InvalidEvent,
    SequenceConflict,
)
from store.event_store import EventStore
from store.hosts import LeaseClaim, claim_job, release_job
from store.models import Event, NewEvent, WorkerSpec
from store.projector import INSERT_EVENT, Row, project
from store.rebuild import RebuildFailed
from store.schema import (
    APPLICATION_ID,
    LATEST_VERSION,
    MIGRATIONS,
    create_projection_tables,
)
from store.verify import verify_address, verify_file
from tests.store.support import behind_the_store, new_event, query, read_all
from tests.store.test_rebuild import (
    Log,
    damage,
    insert_raw_event,
    projections,
    verified,
    whole_file,
)

BASE = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
ISSUER = Issuer(console_id="console-7", pid=4242, host_name="laptop")


class Inbox:
    """Builds command events on one clock (each event a millisecond after the last)."""

    def __init__(self) -> None:
        self.ticks = 0

    def _at(self) -> datetime:
        self.ticks += 1
        return BASE + timedelta(milliseconds=self.ticks)

    def issue(
        self,
        request: CommandRequest | None = None,
        *,
        worker_id: str | None = None,
        expires_in: timedelta = timedelta(minutes=5),
    ) -> NewEvent:
        """A `command.issued` whose event id is its command id (what a console appends)."""
        command_id = uuid7()
        at = self._at()
        payload = CommandIssued(
            command_id=str(command_id),
            request=request or StopWorkerCommand(worker_id="w-1", reason="done"),
            issuer=ISSUER,
            expires_at=at + expires_in,
        )
        return catalog.event(
            "command.issued", payload, event_id=command_id, at=at, worker_id=worker_id,
            message="stop w-1",
        )

    def completed(self, command: NewEvent, **fields: Any) -> NewEvent:
        payload = CommandCompleted(command_id=str(command.event_id), op=_op(command), **fields)
        return catalog.event("command.completed", payload, event_id=uuid7(), at=self._at())

    def failed(self, command: NewEvent, error: str = "WorkerNotFound") -> NewEvent:
        payload = CommandFailed(
            command_id=str(command.event_id), op=_op(command), error=error,
            message=f"{error}: no such worker", details={"worker_id": "w-9"},
        )
        return catalog.event("command.failed", payload, event_id=uuid7(), at=self._at())

    def worker_stopped(self, worker_id: str = "w-1") -> NewEvent:
        return catalog.event(
            "worker.stopped", WorkerEnded(reason="asked to"), event_id=uuid7(), at=self._at(),
            worker_id=worker_id,
        )

    def started(self) -> NewEvent:
        return catalog.event(
            "runtime.started", RuntimeStarted(display_name="rt"), event_id=uuid7(), at=self._at()
        )


def _op(command: NewEvent) -> str:
    return str(command.payload["request"]["op"])


def _listen(store: EventStore) -> list[list[Event]]:
    """Record each published commit: one list per group-commit transaction."""
    commits: list[list[Event]] = []
    store.feed.add_listener(lambda events: commits.append(list(events)))
    return commits


async def _lease(store: EventStore, runtime_id: str, token: str) -> None:
    """Take `runtime_id`'s host lease with `token` (over any holder)."""
    claim = LeaseClaim(runtime_id, 1234, "box", token, us_from_dt(BASE))
    await store.run_job(claim_job(claim, lambda holder, holder_token: True))


def _ids(events: list[Event] | list[NewEvent]) -> list[UUID]:
    return [e.event_id for e in events]


# ---------------------------------------------------------------------------
# Issue, settle, read back
# ---------------------------------------------------------------------------


async def test_issue_then_complete_roundtrip(store: EventStore) -> None:
    inbox = Inbox()
    await store.append("rt", None, [inbox.started()])
    command = inbox.issue(worker_id="w-1")

    [issued] = await store.append("rt", None, [command])

    state = await store.command_state(str(command.event_id))
    assert state is not None
    assert (state.command_id, state.runtime_id, state.op, state.status, state.worker_id) == (
        str(command.event_id), "rt", "stop_worker", "pending", "w-1",
    )
    assert state.pending and state.outcome is None
    assert state.issued == issued
    assert state.issued.payload["issuer"] == {"console_id": "console-7", "pid": 4242,
                                              "host_name": "laptop"}
    assert state.expires_at == command.at + timedelta(minutes=5)
    assert state.expires_at.tzinfo is UTC
    assert await store.pending_commands("rt") == [issued]

    # The host answers in the same append as the events the command caused.
    stop, answer = inbox.worker_stopped(), inbox.completed(command, worker_id="w-1", changed=True)
    committed = await store.append("rt", None, [stop, answer])

    state = await store.command_state(str(command.event_id))
    assert state is not None
    assert state.status == "completed" and not state.pending
    assert state.issued == issued
    assert state.outcome == committed[1]
    assert state.outcome.payload == {"command_id": str(command.event_id), "op": "stop_worker",
                                     "worker_id": "w-1", "changed": True}
    assert await store.pending_commands("rt") == []
    assert (await store.verify()).ok


async def test_a_failed_outcome_settles_the_command_as_failed(store: EventStore) -> None:
    inbox = Inbox()
    command = inbox.issue(StopWorkerCommand(worker_id="w-9"))
    await store.append("rt", None, [command])
    [answer] = await store.append("rt", None, [inbox.failed(command)])

    state = await store.command_state(str(command.event_id))
    assert state is not None
    assert (state.status, state.outcome) == ("failed", answer)
    assert answer.level.value == "warning"
    assert await store.command_state(str(uuid7())) is None  # never issued


async def test_the_commands_row_is_what_the_log_says(
    store: EventStore, db_address: str | Path
) -> None:
    """The projection's columns, read with a plain connection (sqlite3, psycopg)."""
    inbox = Inbox()
    command = inbox.issue(SendInputCommand(worker_id="w-2", content="hello"), worker_id="w-2")
    [issued] = await store.append("rt", None, [command])
    [answer] = await store.append("rt", None, [inbox.completed(command, transcript_sequence=3)])
    [row] = query(db_address, "SELECT * FROM commands")
    assert row == (
        str(command.event_id), "rt", "send_input", "completed", "w-2", issued.position,
        answer.position, us_from_dt(command.at + timedelta(minutes=5)), us_from_dt(command.at),
        us_from_dt(answer.at),
    )


# ---------------------------------------------------------------------------
# Exactly once
# ---------------------------------------------------------------------------


async def test_a_second_outcome_is_refused_with_the_events_appended_with_it(
    store: EventStore,
) -> None:
    inbox = Inbox()
    command = inbox.issue()
    await store.append("rt", None, [command])
    [first] = await store.append("rt", None, [inbox.completed(command)])
    commits = _listen(store)

    # Three appends queued together, so they share one group-commit transaction.
    before, again, after = [new_event()], [inbox.worker_stopped(), inbox.completed(command)], [
        new_event()
    ]
    futures = [
        store.submit("rt", None, before),
        store.submit("rt", None, again),  # a host that ran the command a second time
        store.submit("other", None, after),
    ]
    results = await asyncio.gather(*futures, return_exceptions=True)

    landed_before, refused, landed_after = results
    assert isinstance(refused, CommandAlreadySettled), refused
    assert (refused.command_id, refused.status) == (str(command.event_id), "completed")
    assert "is already completed" in str(refused)
    assert isinstance(landed_before, list) and isinstance(landed_after, list)
    assert (_ids(landed_before), _ids(landed_after)) == (_ids(before), _ids(after))
    assert len(commits) == 1, "the neighbours committed in the same transaction"
    log = await read_all(store)
    assert not set(_ids(again)) & set(_ids(log)), "no event of the refused append was written"
    assert [e.seq for e in log if e.runtime_id == "rt"] == [1, 2, 3]
    state = await store.command_state(str(command.event_id))
    assert state is not None and state.outcome == first
    assert (await store.verify()).ok


async def test_two_outcomes_racing_in_one_batch_settle_it_once(store: EventStore) -> None:
    """Two hosts (or one host twice) answering one pending command in the same commit."""
    inbox = Inbox()
    command = inbox.issue()
    await store.append("rt", None, [command])
    commits = _listen(store)
    one, two = [inbox.worker_stopped(), inbox.completed(command)], [inbox.failed(command)]

    results = await asyncio.gather(
        store.submit("rt", None, one), store.submit("rt", None, two), return_exceptions=True
    )

    assert _ids(results[0]) == _ids(one)  # type: ignore[arg-type]
    assert isinstance(results[1], CommandAlreadySettled)
    assert results[1].status == "completed"
    assert len(commits) == 1
    state = await store.command_state(str(command.event_id))
    assert state is not None and state.status == "completed"
    assert state.outcome is not None and state.outcome.event_id == one[1].event_id


async def test_an_outcome_for_a_command_never_issued_is_refused(store: EventStore) -> None:
    inbox = Inbox()
    stray = inbox.issue()  # built, never appended
    with pytest.raises(CommandAlreadySettled) as caught:
        await store.append("rt", None, [inbox.worker_stopped(), inbox.completed(stray)])
    assert caught.value.status is None
    assert "was never issued" in str(caught.value)

    # An outcome settles only a command of its own runtime's log.
    elsewhere = inbox.issue()
    await store.append("rt", None, [elsewhere])
    with pytest.raises(CommandAlreadySettled) as caught:
        await store.append("other", None, [inbox.completed(elsewhere)])
    assert caught.value.status is None
    assert [e.kind for e in await read_all(store)] == ["command.issued"]
    assert _ids(await store.pending_commands("rt")) == [elsewhere.event_id]


async def test_a_retried_issue_is_a_duplicate_event(store: EventStore) -> None:
    inbox = Inbox()
    command = inbox.issue()
    [issued] = await store.append("rt", None, [command])

    with pytest.raises(DuplicateEvent) as caught:
        await store.append("rt", None, [command])
    assert caught.value.event_id == str(command.event_id)
    # ...also when both tries land in one batch.
    again = inbox.issue()
    results = await asyncio.gather(
        store.submit("rt", None, [again]), store.submit("rt", None, [again]),
        return_exceptions=True,
    )
    assert isinstance(results[0], list) and isinstance(results[1], DuplicateEvent)

    assert await store.pending_commands("rt") == [issued, results[0][0]]
    assert len(await read_all(store)) == 2


async def test_a_command_id_other_than_its_event_id_is_refused(store: EventStore) -> None:
    """The dedupe of retries rests on command id == event id, so the store insists on it."""
    inbox = Inbox()
    honest = inbox.issue()
    payload = CommandIssued.model_validate({**honest.payload, "command_id": str(uuid7())})
    forged = catalog.event("command.issued", payload, event_id=uuid7(), at=BASE)

    results = await asyncio.gather(
        store.submit("rt", None, [forged]), store.submit("rt", None, [honest]),
        return_exceptions=True,
    )

    assert isinstance(results[0], InvalidEvent), results[0]
    assert "is not the event's own id" in str(results[0])
    assert _ids(results[1]) == [honest.event_id]  # type: ignore[arg-type]
    assert [e.event_id for e in await store.pending_commands("rt")] == [honest.event_id]


# ---------------------------------------------------------------------------
# The inbox a host reads
# ---------------------------------------------------------------------------


async def test_pending_commands_in_log_order_and_settled_ones_leave(store: EventStore) -> None:
    inbox = Inbox()
    commands = [
        inbox.issue(CreateWorkerCommand(spec=WorkerSpec())),
        inbox.issue(StopWorkerCommand(worker_id="w-1")),
        inbox.issue(SendInputCommand(worker_id="w-1", content="hi")),
    ]
    theirs = inbox.issue()
    await store.append("rt", None, [commands[0]])
    await store.append("other", None, [theirs])
    await store.append("rt", None, [new_event(), commands[1]])
    await store.append("rt", None, [commands[2], new_event()])

    pending = await store.pending_commands("rt")
    assert _ids(pending) == _ids(commands)
    assert [e.position for e in pending] == sorted(e.position for e in pending)
    assert [e.kind for e in pending] == ["command.issued"] * 3
    assert _ids(await store.pending_commands("rt", limit=2)) == _ids(commands[:2])
    assert _ids(await store.pending_commands("other")) == [theirs.event_id]
    assert await store.pending_commands("nobody") == []

    await store.append("rt", None, [inbox.completed(commands[1])])
    assert _ids(await store.pending_commands("rt")) == [commands[0].event_id,
                                                        commands[2].event_id]
    await store.append("rt", None, [inbox.failed(commands[0]), inbox.completed(commands[2])])
    assert await store.pending_commands("rt") == []
    assert _ids(await store.pending_commands("other")) == [theirs.event_id]


# ---------------------------------------------------------------------------
# Fencing: only the lease holder's appends land
# ---------------------------------------------------------------------------


async def test_the_lease_holders_token_passes_and_any_other_is_fenced(store: EventStore) -> None:
    await _lease(store, "rt", "token-a")
    [landed] = await store.append("rt", None, [new_event()], fence="token-a")
    assert landed.seq == 1

    lost = [new_event()]
    with pytest.raises(HostFenced) as caught:
        await store.append("rt", None, lost, fence="token-b")
    assert caught.value.runtime_id == "rt"
    # No hosts row at all: nobody holds the lease, so nobody fenced may write.
    with pytest.raises(HostFenced):
        await store.append("unhosted", None, [new_event()], fence="token-a")

    # Taken over: the old holder's token no longer writes, the new one's does.
    await _lease(store, "rt", "token-b")
    with pytest.raises(HostFenced):
        await store.append("rt", None, [new_event()], fence="token-a")
    await store.append("rt", None, lost, fence="token-b")
    # Released: fenced appends stop; unfenced ones (a console issuing) go on.
    await store.run_job(release_job("rt", "token-b"))
    with pytest.raises(HostFenced):
        await store.append("rt", None, [new_event()], fence="token-b")
    await store.append("rt", None, [Inbox().issue()])

    log = await read_all(store)
    assert [e.seq for e in log] == [1, 2, 3]
    assert log[1].event_id == lost[0].event_id
    assert {e.runtime_id for e in log} == {"rt"}


async def test_a_fenced_append_does_not_hurt_its_neighbours(store: EventStore) -> None:
    await _lease(store, "rt", "mine")
    await store.append("rt", None, [new_event()])
    commits = _listen(store)
    sent = [[new_event()], [new_event(), new_event()], [new_event()], [new_event()]]

    futures = [
        store.submit("rt", None, sent[0], fence="mine"),
        store.submit("rt", None, sent[1], fence="stale"),
        store.submit("rt", None, sent[2]),  # an issuing console: no fence
        store.submit("rt", 3, sent[3], fence="mine"),  # both checks apply
    ]
    results = await asyncio.gather(*futures, return_exceptions=True)

    assert isinstance(results[1], HostFenced)
    landed = [r for i, r in enumerate(results) if i != 1]
    assert [[e.seq for e in r] for r in landed if isinstance(r, list)] == [[2], [3], [4]]
    assert len(commits) == 1, "one transaction for the whole batch"
    assert not set(_ids(sent[1])) & set(_ids(await read_all(store)))
    # A fenced append still honours expected_seq.
    with pytest.raises(SequenceConflict):
        await store.append("rt", 1, [new_event()], fence="mine")


# sqlite_only: counts statements through sqlite3's trace callback; the batching it
# checks (store.hosts, store.group_commit) is the same code on PostgreSQL.
@pytest.mark.sqlite_only
async def test_the_lease_is_read_once_per_runtime_per_batch(store: EventStore) -> None:
    await _lease(store, "a", "ta")
    await _lease(store, "b", "tb")
    statements: list[str] = []
    await store.run_job(lambda conn: conn.set_trace_callback(statements.append))
    try:
        futures = [store.submit("a", None, [new_event()], fence="ta") for _ in range(5)]
        futures += [store.submit("b", None, [new_event()], fence="tb") for _ in range(3)]
        futures.append(store.submit("c", None, [new_event()]))
        await asyncio.gather(*futures)
    finally:
        await store.run_job(lambda conn: conn.set_trace_callback(None))
    lookups = [s for s in statements if "FROM hosts" in s]
    assert len(lookups) == 2, lookups
    assert len(await read_all(store)) == 9


# ---------------------------------------------------------------------------
# Migration from schema 1
# ---------------------------------------------------------------------------


def schema_1_file(path: Path, appends: list[tuple[str, list[NewEvent]]]) -> None:
    """A database as agentdeck with schema 1 wrote it: migration 1 only, then its appends
    inserted with the projections they fold to. Today's fold writes tables and columns
    schema 1 lacks (activity, runs.ended_at), so it folds into a scratch database with
    the whole schema and the file gets the columns schema 1 has."""
    rows = []
    position = 0
    seqs: dict[str, int] = {}
    for runtime_id, events in appends:
        for ev in events:
            position += 1
            seqs[runtime_id] = seqs.get(runtime_id, 0) + 1
            rows.append(Row(
                position, runtime_id, seqs[runtime_id], str(ev.event_id), ev.kind,
                catalog.level_of(ev.kind, ev.payload).rank, ev.worker_id, ev.run_id,
                ev.run_seq, ev.message, dump_payload(ev.payload), us_from_dt(ev.at), None,
            ))
    scratch = sqlite3.connect(":memory:", isolation_level=None)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        create_projection_tables(scratch)
        project(scratch, rows)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("BEGIN IMMEDIATE")
        for statement in MIGRATIONS[1]:
            conn.execute(statement)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("PRAGMA user_version = 1")
        conn.executemany(INSERT_EVENT, [r.column_values() for r in rows])
        for table in SCHEMA_1_PROJECTIONS:
            columns = ", ".join(c[1] for c in conn.execute(f"PRAGMA table_info({table})"))
            values = scratch.execute(f"SELECT {columns} FROM {table}").fetchall()
            if values:
                marks = ", ".join("?" * len(values[0]))
                conn.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", values)
        conn.execute("COMMIT")
    finally:
        conn.close()
        scratch.close()


def _schema_1_appends() -> list[tuple[str, list[NewEvent]]]:
    a, b = Log("alpha"), Log("beta")
    return [
        ("alpha", a.started()),
        ("beta", b.started()),
        ("alpha", a.created("w-1")),
        ("alpha", a.run("w-1", "r-1", "first")),
        ("beta", b.diagnostic("runtime.local_default_resources")),
        ("alpha", a.run("w-1", "r-2", "second", end="failed")),
    ]


SCHEMA_1_TABLES = (
    "events", "runtimes", "workers", "runs", "transcript", "diagnostics", "hosts", "search_state",
)
SCHEMA_1_PROJECTIONS = ("runtimes", "workers", "runs", "transcript", "diagnostics")


def _schema_1_columns() -> dict[str, str]:
    """Each schema-1 table's columns as migration 1 made them (later ones add columns)."""
    conn = sqlite3.connect(":memory:")
    try:
        for statement in MIGRATIONS[1]:
            conn.execute(statement)
        return {
            table: ", ".join(c[1] for c in conn.execute(f"PRAGMA table_info({table})"))
            for table in SCHEMA_1_TABLES
        }
    finally:
        conn.close()


def _schema_1_rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table migration 1 made (the FTS index aside), in its columns."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {
            table: conn.execute(f"SELECT {columns} FROM {table} ORDER BY 1, 2").fetchall()
            for table, columns in _schema_1_columns().items()
        }
    finally:
        conn.close()


def _marks(path: Path) -> tuple[int, int, list[str]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return (
            conn.execute("PRAGMA user_version").fetchone()[0],
            conn.execute("PRAGMA application_id").fetchone()[0],
            sorted(r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE name"
                                              " LIKE 'commands%'")),
        )
    finally:
        conn.close()


async def test_a_schema_1_database_migrates_with_its_data_intact(db_path: Path) -> None:
    schema_1_file(db_path, _schema_1_appends())
    assert _marks(db_path) == (1, APPLICATION_ID, [])
    assert verify_file(db_path).ok  # the old file verifies as it is, commands table or not
    before = _schema_1_rows(db_path)
    assert len(before["events"]) == 14 and len(before["transcript"]) == 4

    # index=False: the indexer would move search_state on, which is not the migration.
    async with await EventStore.open(db_path, watch=False, index=False) as store:
        assert _marks(db_path) == (
            LATEST_VERSION, APPLICATION_ID, ["commands", "commands_pending"]
        )
        assert _schema_1_rows(db_path) == before, "the log and its projections are unchanged"
        assert projections(db_path)["commands"] == []
        assert (await store.verify()).ok
        for runtime_id in ("alpha", "beta"):
            assert await store.projection_problems(runtime_id) == []
        # The migrated file takes commands at once.
        inbox = Inbox()
        command = inbox.issue()
        [issued] = await store.append("alpha", None, [command])
        assert issued.seq == len([e for e in before["events"] if e[1] == "alpha"]) + 1
        await store.append("alpha", None, [inbox.completed(command)])
        state = await store.command_state(str(command.event_id))
        assert state is not None and state.status == "completed"

    # Opening again migrates nothing more.
    async with await EventStore.open(db_path, watch=False) as store:
        assert _marks(db_path)[0] == LATEST_VERSION
        assert (await store.verify()).ok


async def test_an_observer_of_a_schema_1_database_sees_no_commands(db_path: Path) -> None:
    """A read-only console does not migrate: the file an older agentdeck still writes."""
    schema_1_file(db_path, _schema_1_appends())
    async with await EventStore.open(db_path, read_only=True, watch=False) as observer:
        assert await observer.pending_commands("alpha") == []
        assert await observer.command_state(str(uuid7())) is None
        assert await observer.projection_problems("alpha") == []
        assert (await observer.verify()).ok
    assert _marks(db_path) == (1, APPLICATION_ID, [])


# ---------------------------------------------------------------------------
# Verify and rebuild
# ---------------------------------------------------------------------------


async def fill_commands(store: EventStore) -> dict[str, NewEvent]:
    """Runtime `rt` with a completed, a failed and two pending commands; `other` with one."""
    inbox = Inbox()
    c = {name: inbox.issue() for name in ("done", "refused", "waiting", "late", "theirs")}
    await store.append("rt", None, [inbox.started()])
    await store.append("rt", None, [c["done"], c["refused"]])
    await store.append("other", None, [c["theirs"]])
    await store.append("rt", None, [inbox.worker_stopped(), inbox.completed(c["done"])])
    await store.append("rt", None, [c["waiting"]])
    await store.append("rt", None, [inbox.failed(c["refused"]), c["late"]])
    return c


async def test_a_log_with_commands_verifies_clean(
    store: EventStore, db_address: str | Path
) -> None:
    await fill_commands(store)
    report = await store.verify()
    assert report.ok, report.problems
    assert (report.events, report.runtimes) == (9, 2)
    for runtime_id in ("rt", "other"):
        assert await store.projection_problems(runtime_id) == []
        assert await store.repair_projections(runtime_id) is None
    assert len(projections(db_address)["commands"]) == 5


async def test_rebuild_restores_the_commands_rows(
    store: EventStore, db_address: str | Path
) -> None:
    await fill_commands(store)
    before = projections(db_address)
    damage(db_address, "DELETE FROM commands WHERE runtime_id = 'other'")
    assert behind_the_store(db_address, "DELETE FROM commands WHERE runtime_id = 'rt'") == 4
    assert not verified(db_address)

    report = await store.rebuild_projections("rt")
    assert report.changed == {"commands": (0, 4)}
    assert report.remaining == ()
    assert projections(db_address, "rt")["commands"] == [r for r in before["commands"]
                                                         if r[1] == "rt"]
    assert projections(db_address, "other")["commands"] == []  # not rt's to rebuild
    await store.rebuild_projections("other")
    assert projections(db_address) == before
    assert verified(db_address)
    assert len(await store.pending_commands("rt")) == 2


COMMAND_DAMAGE = [
    pytest.param(
        "DELETE FROM commands WHERE command_id = ?", "waiting",
        "commands: 3 rows but the log issued 4 commands for rt",
        id="pending-row-deleted",
    ),
    pytest.param(
        "DELETE FROM commands WHERE command_id = ?", "done",
        "commands: 3 rows but the log issued 4 commands for rt",
        id="settled-row-deleted",
    ),
    pytest.param(
        # The dangerous one: a host would run this command a second time.
        "UPDATE commands SET status = 'pending', outcome_position = NULL WHERE command_id = ?",
        "done",
        "commands: 3 pending but the log leaves 2 of rt's commands unanswered",
        id="settled-row-pending-again",
    ),
    pytest.param(
        "UPDATE commands SET status = 'completed' WHERE command_id = ?", "late",
        "commands: 1 pending but the log leaves 2 of rt's commands unanswered",
        id="pending-row-settled",
    ),
]


@pytest.mark.parametrize(("sql", "which", "expected"), COMMAND_DAMAGE)
async def test_the_check_finds_damaged_commands_and_repair_restores_them(
    store: EventStore, db_address: str | Path, sql: str, which: str, expected: str
) -> None:
    commands = await fill_commands(store)
    before = projections(db_address)
    damage(db_address, sql, (str(commands[which].event_id),))
    assert any(p.startswith("commands:") for p in verify_address(db_address).problems)

    assert expected in await store.projection_problems("rt")
    assert await store.projection_problems("other") == []
    report = await store.repair_projections("rt")
    assert report is not None and report.remaining == ()
    assert projections(db_address) == before
    assert verified(db_address)


async def test_a_second_outcome_written_by_hand_is_named_by_verify_and_rebuild(
    store: EventStore, db_path: Path
) -> None:
    commands = await fill_commands(store)
    command_id = str(commands["done"].event_id)
    payload = dump_payload({"command_id": command_id, "op": "stop_worker"})
    position = await store.last_position() + 1
    seq = insert_raw_event(db_path, "rt", "command.completed", None, payload)

    report = verify_file(db_path)
    assert report.problems[0] == (
        f"log: event {position} (runtime rt seq {seq}, command.completed) settles command"
        f" {command_id}, which is already completed"
    )
    before = whole_file(db_path)
    with pytest.raises(RebuildFailed) as failed:
        await store.rebuild_projections("rt")
    assert f"event seq {seq} (command.completed" in str(failed.value)
    assert f"an outcome for command {command_id}, which is already completed" in str(failed.value)
    assert whole_file(db_path) == before
