"""The PostgreSQL schema and append path (store.postgres), on a real throwaway server.

Each test gets a fresh empty database from the `pg_url` fixture (tests/pg.py).
The fold is store.projector's, shared with SQLite: the projections are
compared row for row with what a SQLite EventStore makes of the same events.
The position order is checked for holes with two OS processes appending at
once while a third reader polls.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from store.errors import (
    CommandAlreadySettled,
    DuplicateEvent,
    ForeignDatabase,
    HostFenced,
    NewerSchema,
    SequenceConflict,
)
from store.event_store import EventStore
from store.hosts import LeaseClaim, claim_job
from store.models import Event, NewEvent
from store.postgres.errors import (
    AuthenticationFailed,
    PermissionDenied,
    PgDatabaseMissing,
    ServerUnreachable,
    safe_url,
)
from store.postgres.schema import LATEST_VERSION, migrate, schema_version
from store.postgres.writer import PgWriter
from store.schema import PROJECTIONS
from tests.store.support import child_env, new_event
from tests.store.test_commands import Inbox
from tests.store.test_rebuild import fill, projections

TABLES = {"agentdeck_meta", "events", "runtimes", "workers", "runs", "transcript", "diagnostics",
          "hosts", "commands", "activity", "checkpoints", "checkpoint_runtimes",
          "checkpoint_workers", "checkpoint_runs", "checkpoint_commands"}


@pytest.fixture
async def writer(pg_url: str) -> AsyncIterator[PgWriter]:
    w = PgWriter(pg_url)
    await w.start()
    try:
        yield w
    finally:
        await w.close()


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        ).fetchall()
    return {r[0] for r in rows}


def _log(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT position, runtime_id, seq, event_id FROM events ORDER BY position"
        ).fetchall()


# ---------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------


def test_migrate_sets_up_an_empty_database_once(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert schema_version(conn, pg_url) == 0
        assert migrate(conn, pg_url) == LATEST_VERSION
        assert migrate(conn, pg_url) == LATEST_VERSION  # again: nothing to do
        assert schema_version(conn, pg_url) == LATEST_VERSION
        meta: dict[str, str] = dict(conn.execute("SELECT key, value FROM agentdeck_meta").fetchall())
    assert meta == {"application": "agentdeck", "schema_version": str(LATEST_VERSION)}
    assert _tables(pg_url) == TABLES


def test_two_processes_creating_one_database_take_turns(pg_url: str) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def create() -> None:
        try:
            with psycopg.connect(pg_url, autocommit=True) as conn:
                barrier.wait()
                migrate(conn, pg_url)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert _tables(pg_url) == TABLES


def test_a_foreign_database_is_refused_untouched(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE invoices (id int)")
        with pytest.raises(ForeignDatabase) as caught:
            migrate(conn, pg_url)
    assert "did not create" in str(caught.value) and "PostgreSQL" in str(caught.value)
    assert _tables(pg_url) == {"invoices"}


def test_a_marker_of_another_application_is_foreign(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE agentdeck_meta (key text primary key, value text)")
        conn.execute("INSERT INTO agentdeck_meta VALUES ('application', 'other')")
        with pytest.raises(ForeignDatabase):
            migrate(conn, pg_url)


def test_a_newer_schema_is_refused(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        migrate(conn, pg_url)
        conn.execute(
            "UPDATE agentdeck_meta SET value = %s WHERE key = 'schema_version'",
            (str(LATEST_VERSION + 1),),
        )
        with pytest.raises(NewerSchema) as caught:
            migrate(conn, pg_url)
    assert (caught.value.found, caught.value.supported) == (LATEST_VERSION + 1, LATEST_VERSION)


async def test_server_errors_are_one_clear_line(pg_url: str, tmp_path: Path) -> None:
    parts = urlsplit(pg_url)
    missing = urlunsplit(parts._replace(path="/no_such_database"))
    with pytest.raises(PgDatabaseMissing) as no_db:
        await PgWriter(missing).start()
    nowhere = f"postgresql://u:secret@/db?host={tmp_path}&port=5999"
    with pytest.raises(ServerUnreachable) as no_server:
        await PgWriter(nowhere).start()
    for exc in (no_db.value, no_server.value):
        assert "\n" not in str(exc) and "secret" not in str(exc)
    assert safe_url("postgresql://u:secret@h/db") == "postgresql://u:***@h/db"
    assert "secret" not in safe_url("host=h password=secret dbname=db")


# ---------------------------------------------------------------------------
# Appends
# ---------------------------------------------------------------------------


async def test_appends_get_positions_in_order_and_seqs_per_runtime(
    writer: PgWriter, pg_url: str
) -> None:
    first = await writer.append("a", 0, [new_event(), new_event()])
    second, third = await asyncio.gather(
        writer.submit("b", None, [new_event()]), writer.submit("a", 2, [new_event(message="50%")])
    )
    assert [(e.position, e.runtime_id, e.seq) for e in first + second + third] == [
        (1, "a", 1), (2, "a", 2), (3, "b", 1), (4, "a", 3),
    ]
    assert third[0].message == "50%"
    log = _log(pg_url)
    assert [r[:3] for r in log] == [(1, "a", 1), (2, "a", 2), (3, "b", 1), (4, "a", 3)]
    assert [r[3] for r in log] == [str(e.event_id) for e in first + second + third]


async def test_each_refusal_fails_only_its_own_append_in_a_shared_batch(pg_url: str) -> None:
    commits: list[list[Event]] = []
    writer = PgWriter(pg_url, on_commit=lambda events: commits.append(list(events)))
    await writer.start()
    try:
        inbox = Inbox()
        command = inbox.issue()
        taken = new_event()
        await writer.append("rt", None, [inbox.started(), command])
        await writer.append("rt", None, [taken, inbox.completed(command)])
        claim = LeaseClaim("hosted", 1, "box", "token-now", 0)
        # store.hosts types its jobs for sqlite3.Connection; they run unchanged on the adapter.
        await writer.run_job(claim_job(claim, lambda holder, token: True))  # type: ignore[arg-type]
        commits.clear()

        appends: list[tuple[str, int | None, list[NewEvent], str | None]] = [
            ("rt", None, [new_event()], None),  # lands
            ("rt", 1, [new_event()], None),  # SequenceConflict: the log is at 5 by then
            ("rt", None, [new_event(), new_event(event_id=taken.event_id)], None),  # Duplicate
            ("rt", None, [inbox.worker_stopped(), inbox.completed(command)], None),  # settled
            ("hosted", None, [new_event()], "token-old"),  # HostFenced
            ("hosted", None, [new_event()], "token-now"),  # lands
            ("other", 0, [new_event(), new_event()], None),  # lands
        ]
        results = await asyncio.gather(
            *(writer.submit(rt, seq, evs, fence=fence) for rt, seq, evs, fence in appends),
            return_exceptions=True,
        )
    finally:
        await writer.close()

    ok1, conflict, duplicate, settled, fenced, ok2, ok3 = results
    assert isinstance(conflict, SequenceConflict) and (conflict.expected, conflict.actual) == (1, 5)
    assert isinstance(duplicate, DuplicateEvent)
    assert isinstance(settled, CommandAlreadySettled) and settled.status == "completed"
    assert isinstance(fenced, HostFenced) and fenced.runtime_id == "hosted"
    assert isinstance(ok1, list) and isinstance(ok2, list) and isinstance(ok3, list)
    assert [(e.runtime_id, e.seq, e.position) for e in ok1 + ok2 + ok3] == [
        ("rt", 5, 5), ("hosted", 1, 6), ("other", 1, 7), ("other", 2, 8),
    ]
    assert len(commits) == 1, "the survivors committed in one transaction"
    assert [r[0] for r in _log(pg_url)] == list(range(1, 9))


async def test_projections_equal_the_sqlite_fold_of_the_same_events(
    pg_url: str, tmp_path: Path
) -> None:
    """The same appends to SQLite and PostgreSQL: every projection table row for row."""

    class Recorder:
        def __init__(self) -> None:
            self.appends: list[tuple[str, list[NewEvent]]] = []

        async def append(self, runtime_id: str, expected: None, events: list[NewEvent]) -> None:
            self.appends.append((runtime_id, list(events)))

    recorder = Recorder()
    await fill(recorder)  # type: ignore[arg-type]
    inbox = Inbox()
    one, two = inbox.issue(worker_id="w-1"), inbox.issue()
    recorder.appends += [
        ("alpha", [one, two]),
        ("alpha", [inbox.worker_stopped("w-2"), inbox.completed(one, worker_id="w-1")]),
        ("alpha", [inbox.failed(two)]),
    ]

    db_path = tmp_path / "agentdeck.db"
    sqlite_store = await EventStore.open(db_path, watch=False)
    pg = PgWriter(pg_url)
    await pg.start()
    try:
        for runtime_id, events in recorder.appends:
            a = await sqlite_store.append(runtime_id, None, events)
            b = await pg.append(runtime_id, None, events)
            assert a == b
    finally:
        await pg.close()
        await sqlite_store.close()

    expected = projections(db_path)
    with psycopg.connect(pg_url) as conn:
        got = {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()
            for table, order in PROJECTIONS.items()
        }
    assert all(expected[t] for t in PROJECTIONS), "every projection has rows to compare"
    for table in PROJECTIONS:
        assert [tuple(r) for r in got[table]] == [tuple(r) for r in expected[table]], table


# ---------------------------------------------------------------------------
# No holes, with two appending processes
# ---------------------------------------------------------------------------

BATCHES = 300


def _appender_main() -> None:
    """Child process: append BATCHES small batches (1-3 events) to one runtime, then report."""
    url, runtime_id = sys.argv[1], sys.argv[2]

    async def run() -> None:
        writer = PgWriter(url)
        await writer.start()
        print("ready", flush=True)
        sys.stdin.readline()  # "go": both children start together
        started = time.perf_counter()
        try:
            for i in range(BATCHES):
                await writer.append(runtime_id, None, [new_event() for _ in range(i % 3 + 1)])
        finally:
            await writer.close()
        print(f"done {time.perf_counter() - started:.3f}", flush=True)

    asyncio.run(run())


def _spawn_appender(url: str, runtime_id: str) -> subprocess.Popen[str]:
    code = "from tests.store.test_pg_writer import _appender_main; _appender_main()"
    return subprocess.Popen(
        [sys.executable, "-c", code, url, runtime_id], env=child_env(), text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_readers_never_see_a_hole_while_two_processes_append(pg_url: str) -> None:
    per_process = sum(i % 3 + 1 for i in range(BATCHES))
    total = 2 * per_process
    with psycopg.connect(pg_url, autocommit=True) as conn:
        migrate(conn, pg_url)
    children = [_spawn_appender(pg_url, rt) for rt in ("east", "west")]
    try:
        for child in children:
            assert child.stdout is not None
            line = child.stdout.readline()
            assert line.startswith("ready"), (line, child.stderr.read() if child.stderr else "")
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()

        last, reads, nonempty = 0, 0, 0
        deadline = time.monotonic() + 120
        with psycopg.connect(pg_url, autocommit=True) as reader:
            while last < total:
                assert time.monotonic() < deadline, f"stuck at position {last} of {total}"
                got = [r[0] for r in reader.execute(
                    "SELECT position FROM events WHERE position > %s ORDER BY position", (last,)
                ).fetchall()]
                reads += 1
                if got:
                    nonempty += 1
                    # The read starts right after what was seen, with no gap in it:
                    # position N+1 is never visible before N.
                    assert got == list(range(last + 1, last + 1 + len(got))), (last, got[:10])
                    last = got[-1]
                if any(c.poll() not in (None, 0) for c in children):
                    break
        outputs = [c.communicate(timeout=60) for c in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait(10)
    for child, (out, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err
        assert "done" in out
    assert last == total
    assert nonempty > 10, "the reader saw the log grow while it was written"
    log = _log(pg_url)
    assert [r[0] for r in log] == list(range(1, total + 1))
    for rt in ("east", "west"):
        assert [r[2] for r in log if r[1] == rt] == list(range(1, per_process + 1))
    elapsed = [float(out.split()[-1]) for out, _ in outputs]
    rate = 2 * BATCHES / max(elapsed)
    print(f"\n{2 * BATCHES} appends from 2 processes, {reads} reads: {rate:.0f} appends/s")


# ---------------------------------------------------------------------------
# The adapter, NOTIFY, and a user without rights
# ---------------------------------------------------------------------------


def test_the_adapter_speaks_question_marks_and_keeps_percent_signs(pg_url: str) -> None:
    from store.postgres.adapter import PgConnection

    with psycopg.connect(pg_url, autocommit=True) as raw:
        conn = PgConnection(raw)
        assert conn.execute("SELECT '100%'").fetchone() == ("100%",)
        assert conn.execute("SELECT ? || '%', ?", ("50", 7)).fetchone() == ("50%", 7)
        conn.execute("CREATE TEMP TABLE t (a int)")
        conn.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])
        conn.executemany("INSERT INTO t VALUES (?)", [])
        assert conn.execute("UPDATE t SET a = a + 1").rowcount == 2


async def test_each_commit_notifies_its_last_position(writer: PgWriter, pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as listener:
        listener.execute("LISTEN agentdeck")
        await writer.append("a", None, [new_event(), new_event()])
        await writer.append("b", None, [new_event()])
        heard = [n.payload for n in listener.notifies(timeout=5, stop_after=2)]
    assert heard == ["2", "3"]


async def test_a_user_without_create_rights_gets_permission_denied(pg_url: str) -> None:
    role = f"nobody_{os.getpid()}"
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN")
    try:
        url = pg_url.replace("postgresql://postgres@", f"postgresql://{role}@", 1)
        with pytest.raises(PermissionDenied) as caught:
            await PgWriter(url).start()
        assert "permission denied" in str(caught.value) and "\n" not in str(caught.value)
    finally:
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(f"DROP ROLE {role}")


def test_a_refused_password_is_told_apart() -> None:
    from store.postgres.errors import translate

    exc = psycopg.OperationalError(
        'connection failed: FATAL:  password authentication failed for user "u"'
    )
    assert isinstance(translate(exc, "postgresql://u:pw@h/db"), AuthenticationFailed)


async def test_a_writer_holding_the_lock_too_long_fails_appends_with_a_clear_error(
    pg_url: str,
) -> None:
    from store.postgres.errors import AppendLockTimeout
    from store.postgres.schema import APPEND_LOCK_KEY

    writer = PgWriter(pg_url, lock_timeout_s=0.3)
    await writer.start()
    try:
        with psycopg.connect(pg_url) as other:  # another process, stuck mid-append
            other.execute("SELECT pg_advisory_xact_lock(%s)", (APPEND_LOCK_KEY,))
            with pytest.raises(AppendLockTimeout) as caught:
                await writer.append("a", None, [new_event()])
            assert "\n" not in str(caught.value)
            other.rollback()
        [landed] = await writer.append("a", None, [new_event()])  # the writer lives on
        assert (landed.position, landed.seq) == (1, 1)
    finally:
        await writer.close()


async def test_positions_follow_a_commit_made_while_waiting_for_the_lock(pg_url: str) -> None:
    """The next holder reads the log after the lock is granted, even when the server's
    default isolation is REPEATABLE READ (whose snapshot would predate the wait)."""
    from store.postgres.adapter import PgConnection
    from store.postgres.schema import APPEND_LOCK_KEY
    from store.projector import INSERT_EVENT

    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(
            f'ALTER DATABASE "{admin.info.dbname}"'
            " SET default_transaction_isolation = 'repeatable read'"
        )
    writer = PgWriter(pg_url)
    tries: list[bool] = []  # each attempt at the batch: isolate (a replay) or not
    apply = writer._apply

    def spy(conn: Any, batch: Any, isolate: bool) -> Any:
        tries.append(isolate)
        return apply(conn, batch, isolate)

    writer._apply = spy  # type: ignore[method-assign,assignment]
    await writer.start()
    try:
        with psycopg.connect(pg_url) as other:  # another process, mid-append
            other.execute("SELECT pg_advisory_xact_lock(%s)", (APPEND_LOCK_KEY,))
            waiting = writer.submit("a", None, [new_event()])
            await asyncio.sleep(0.3)  # the writer is now waiting for the lock
            assert not waiting.done()
            PgConnection(other).execute(
                INSERT_EVENT, (1, "b", 1, "e-1", "exec.session.input", 0, None, None, None, "",
                               "{}", 0),
            )
            other.commit()
            [landed] = await waiting
    finally:
        await writer.close()
    assert (landed.position, landed.runtime_id, landed.seq) == (2, "a", 1)
    assert tries == [False], "right the first time: no stale position, no replay"
    assert [r[0] for r in _log(pg_url)] == [1, 2]
