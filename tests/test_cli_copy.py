"""`agentdeck copy --from ADDRESS --to ADDRESS` (issue 10): real databases, real processes.

Sources are made by real `agentdeck demo` runs or the real store; the PostgreSQL
targets are fresh databases on the session's throwaway server (tests/pg.py).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from store import copy as store_copy
from store.codec import us_from_dt
from store.copy import TargetNotEmpty, copy_database
from store.event_store import EventStore
from store.hosts import LeaseClaim, claim_job
from store.models import Event
from store.open import open_store
from tests.pg import PgServer
from tests.store.test_commands import BASE, Inbox
from tests.store.test_pg_verify import role_without_rights
from tests.test_cli_store import agentdeck as run_agentdeck
from tests.test_cli_store import one_line_error


def agentdeck(*args: object, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return run_agentdeck(*args, timeout=timeout)


def events_json(address: object) -> list[dict[str, object]]:
    done = agentdeck("events", "--db", address, "--json")
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database written by a real `agentdeck demo` (several workers, failures)."""
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    done = agentdeck(
        "demo", "--db", path, "--workers", "3", "--rate", "400", "--duration", "1.5",
        "--fail-rate", "0.2",
    )
    assert done.returncode == 0, done.stderr
    return path


def test_copy_a_demo_database_to_postgresql(demo_db: Path, pg_url: str) -> None:
    source = events_json(demo_db)
    assert len(source) > 100

    done = agentdeck("copy", "--from", demo_db, "--to", pg_url)

    assert done.returncode == 0, done.stdout + done.stderr
    [summary] = done.stdout.splitlines()
    assert summary.startswith(f"copied {len(source)} events of 1 runtimes from {demo_db} to ")
    assert summary.endswith("verified: the target's projections match its log")
    assert "Traceback" not in done.stderr
    # The same events, in the same order, field for field: positions, runtime seqs,
    # event ids, times, messages and payloads.
    assert events_json(pg_url) == source
    verify = agentdeck("verify", "--db", pg_url)
    assert verify.returncode == 0, verify.stdout
    assert verify.stdout.startswith(f"ok: {len(source)} events in 1 runtimes")


def test_copy_refuses_a_target_that_holds_events(demo_db: Path, pg_url: str) -> None:
    assert agentdeck("copy", "--from", demo_db, "--to", pg_url).returncode == 0
    before = events_json(pg_url)

    again = agentdeck("copy", "--from", demo_db, "--to", pg_url)

    assert again.returncode == 2
    line = one_line_error(again)
    assert f"already holds {len(before)} events" in line and "empty database" in line
    assert again.stdout == ""
    assert events_json(pg_url) == before


def test_copy_postgresql_back_to_a_new_sqlite_file(
    demo_db: Path, pg_url: str, tmp_path: Path
) -> None:
    assert agentdeck("copy", "--from", demo_db, "--to", pg_url).returncode == 0
    back = tmp_path / "back.db"

    done = agentdeck("copy", "--from", pg_url, "--to", back)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "verified" in done.stdout
    assert events_json(back) == events_json(demo_db)


def test_copy_errors_are_one_line_and_exit_2(
    demo_db: Path, pg_server: PgServer, pg_url: str, tmp_path: Path
) -> None:
    missing = tmp_path / "missing.db"
    done = agentdeck("copy", "--from", missing, "--to", pg_url)
    assert done.returncode == 2 and "does not exist" in one_line_error(done)
    assert not missing.exists()

    nowhere = pg_server.url("no_such_database_here")
    done = agentdeck("copy", "--from", demo_db, "--to", nowhere)
    assert done.returncode == 2 and "no such database" in one_line_error(done)

    text = tmp_path / "notes.txt"
    text.write_text("not a database\n")
    done = agentdeck("copy", "--from", text, "--to", pg_url)
    assert done.returncode == 2 and "not a SQLite database" in one_line_error(done)
    done = agentdeck("copy", "--from", demo_db, "--to", text)
    assert done.returncode == 2 and "not a SQLite database" in one_line_error(done)
    assert text.read_text() == "not a database\n"

    done = agentdeck("copy", "--from", demo_db, "--to", demo_db)
    assert done.returncode == 2 and "both the source and the target" in one_line_error(done)
    done = agentdeck("copy", "--from", pg_url, "--to", pg_url)
    assert done.returncode == 2 and "both the source and the target" in one_line_error(done)

    # A database another program made (tables, no agentdeck marker) is not a target.
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE theirs (x int)")
    done = agentdeck("copy", "--from", demo_db, "--to", pg_url)
    assert done.returncode == 2 and "did not create" in one_line_error(done)

    done = agentdeck("copy", "--from", demo_db)
    assert done.returncode == 2 and "--to" in one_line_error(done)


def test_copy_as_a_user_who_cannot_create_tables(demo_db: Path, pg_url: str) -> None:
    with role_without_rights(pg_url) as url:
        done = agentdeck("copy", "--from", demo_db, "--to", url)
    assert done.returncode == 2
    assert "permission denied" in one_line_error(done)


async def _with_commands_and_hosts(path: Path) -> list[Event]:
    inbox = Inbox()
    async with await EventStore.open(path, watch=False) as store:
        await store.append("rt", None, [inbox.started()])
        settled = inbox.issue(worker_id="w-1")
        pending = inbox.issue(worker_id="w-2", expires_in=timedelta(hours=1))
        await store.append("rt", None, [settled])
        await store.append("other", None, [inbox.started()])
        await store.append("rt", None, [pending])
        await store.append("rt", None, [inbox.worker_stopped(), inbox.completed(settled)])
        claim = LeaseClaim("rt", 4242, "box", "token-1", us_from_dt(BASE))
        await store.run_job(claim_job(claim, lambda holder, token: True))
        assert await store.hosts()
        return (await store.read_after(0, 100)).events


def test_copy_carries_commands_and_leaves_host_leases(pg_url: str, tmp_path: Path) -> None:
    path = tmp_path / "inbox.db"
    events = asyncio.run(_with_commands_and_hosts(path))

    done = agentdeck("copy", "--from", path, "--to", pg_url)

    assert done.returncode == 0, done.stdout + done.stderr
    assert f"copied {len(events)} events of 2 runtimes" in done.stdout
    assert events_json(pg_url) == events_json(path)
    with psycopg.connect(pg_url) as conn:
        commands = conn.execute(
            "SELECT command_id, runtime_id, op, status, worker_id, issued_position,"
            " outcome_position FROM commands ORDER BY issued_position"
        ).fetchall()
        hosts = conn.execute("SELECT count(*) FROM hosts").fetchone()
    src = sqlite_commands(path)
    assert commands == src
    assert [c[3] for c in commands] == ["completed", "pending"]
    # A lease is a live process's hold on the source, not a fact of the log.
    assert hosts == (0,)


def sqlite_commands(path: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT command_id, runtime_id, op, status, worker_id, issued_position,"
            " outcome_position FROM commands ORDER BY issued_position"
        ).fetchall()
    finally:
        conn.close()


async def test_a_source_written_during_the_copy_is_copied_up_to_its_start(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_copy, "WINDOW", 3)  # several windows from a small log
    inbox = Inbox()
    path = tmp_path / "live.db"
    source = await EventStore.open(path, watch=False)
    try:
        await source.append("rt", None, [inbox.started()])
        for n in range(1, 10):
            await source.append("rt", None, [inbox.worker_stopped(f"w-{n}")])
        written: list[asyncio.Future[list[Event]]] = []

        def progress(copied: int, total: int) -> None:
            # Another writer appends while the copy runs.
            written.append(source.submit("rt", None, [inbox.worker_stopped("w-99")]))

        report = await copy_database(path, pg_url, progress)
        await asyncio.gather(*written)
    finally:
        await source.close()

    assert report.ok and report.events == 10 and report.last_position == 10
    # Those committed by the end of the copy (the last may still be on its way then).
    assert 0 < report.left_out <= len(written)
    assert f"copied up to position 10, its {report.left_out} newer events were not copied" in (
        report.summary()
    )
    target = await open_store(pg_url, read_only=True, watch=False)
    try:
        assert await target.last_position() == 10
    finally:
        await target.close()


async def test_copy_into_a_non_empty_target_is_refused_before_writing(
    tmp_path: Path, pg_url: str
) -> None:
    inbox = Inbox()
    async with await EventStore.open(tmp_path / "a.db", watch=False) as store:
        await store.append("rt", None, [inbox.started()])
    target = await open_store(pg_url, watch=False)
    try:
        await target.append("x", None, [inbox.started()])
    finally:
        await target.close()
    with pytest.raises(TargetNotEmpty):
        await copy_database(tmp_path / "a.db", pg_url)
