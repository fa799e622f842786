"""`agentdeck verify` on PostgreSQL (issue 10): store.verify's check, read from one snapshot.

Real databases on the session's throwaway server (tests/pg.py), written by real
`agentdeck demo` processes and by the real store; tampered with plain SQL.
"""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import sql

from store.errors import MissingDatabase
from store.open import open_store
from store.postgres.errors import ForeignPgDatabase
from store.postgres.verify import verify_database
from tests.store.support import AGENTDECK, child_env
from tests.store.test_commands import Inbox
from tests.test_cli_store import agentdeck as run_agentdeck
from tests.test_cli_store import one_line_error, verify_problems


def agentdeck(*args: object, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return run_agentdeck(*args, timeout=timeout)


@pytest.fixture
def demo_url(pg_url: str) -> str:
    """A PostgreSQL database written by a real `agentdeck demo` run."""
    done = agentdeck(
        "demo", "--db", pg_url, "--workers", "3", "--rate", "300", "--duration", "1",
        "--fail-rate", "0.2",
    )
    assert done.returncode == 0, done.stderr
    return pg_url


def count(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM events").fetchone()
    assert row is not None
    return int(row[0])


def test_verify_a_demo_database_on_postgresql(demo_url: str) -> None:
    done = agentdeck("verify", "--db", demo_url)

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == [
        f"ok: {count(demo_url)} events in 1 runtimes, projections match the log"
    ]
    assert done.stderr == ""


def test_verify_lists_a_tampered_projection_row(demo_url: str) -> None:
    with psycopg.connect(demo_url) as conn:
        conn.execute("UPDATE workers SET status = 'cancelled' WHERE worker_id = 'w-1'")
        conn.execute("DELETE FROM transcript WHERE sequence = 1 AND worker_id = 'w-2'")

    details = verify_problems(demo_url)

    assert "workers: the projection has ('demo', 'w-1'" in details and "cancelled" in details
    assert "workers: the log implies ('demo', 'w-1'" in details
    assert "transcript: the log implies ('demo', 'w-2', 1," in details


def test_verify_finds_a_sequence_gap(demo_url: str) -> None:
    total = count(demo_url)
    with psycopg.connect(demo_url) as conn:
        conn.execute(
            "UPDATE events SET seq = seq + 5 WHERE runtime_id = 'demo'"
            " AND seq = (SELECT max(seq) FROM events)"
        )

    report = verify_database(demo_url)

    assert not report.ok
    assert f"runtime demo: seq runs 1..{total + 5} over {total} events (gap or hole)" in (
        report.problems
    )


def test_verify_stays_ok_while_a_writer_appends(pg_url: str) -> None:
    """The check reads one snapshot, without the append lock: a live writer neither
    blocks on it nor makes it see a log and projections from two moments."""
    demo = subprocess.Popen(
        [str(AGENTDECK), "demo", "--db", pg_url, "--workers", "4", "--rate", "400",
         "--duration", "20"],
        env=child_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 15
        while count_or_zero(pg_url) < 50:
            assert time.monotonic() < deadline, "the demo wrote nothing"
            time.sleep(0.1)
        seen = []
        for _ in range(4):
            report = verify_database(pg_url)
            assert report.ok, report.problems
            seen.append(report.events)
        assert seen == sorted(seen) and seen[-1] > seen[0]  # the writer kept going meanwhile
    finally:
        demo.send_signal(signal.SIGINT)  # Ctrl-C: the demo ends its work and exits 0
        demo.wait(20)
    assert demo.returncode == 0, demo.stderr.read() if demo.stderr else ""


def count_or_zero(url: str) -> int:
    try:
        return count(url)
    except psycopg.errors.UndefinedTable:
        return 0


async def test_verify_sees_commands_from_the_store(pg_url: str) -> None:
    inbox = Inbox()
    store = await open_store(pg_url, watch=False)
    try:
        await store.append("rt", None, [inbox.started()])
        command = inbox.issue(worker_id="w-1")
        await store.append("rt", None, [command])
        await store.append("rt", None, [inbox.worker_stopped(), inbox.completed(command)])
    finally:
        await store.close()
    report = verify_database(pg_url)
    assert report.ok and report.events == 4 and report.runtimes == 1
    with psycopg.connect(pg_url) as conn:
        conn.execute("UPDATE commands SET status = 'pending'")
    problems = verify_database(pg_url).problems
    assert any(p.startswith("commands: the projection has (") and "'pending'" in p for p in problems)


@pytest.mark.parametrize("command", [("events",), ("verify",), ("events", "--follow")])
def test_a_database_agentdeck_never_set_up_is_one_line_and_exit_2(
    pg_url: str, command: tuple[str, ...]
) -> None:
    done = agentdeck(*command, "--db", pg_url, timeout=30)

    assert done.returncode == 2
    line = one_line_error(done)
    assert "no agentdeck database here yet (the database holds no agentdeck data)" in line
    assert done.stdout == ""
    with psycopg.connect(pg_url) as conn:  # an observer created nothing
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"
        ).fetchone()
    assert tables == (0,)


async def test_an_observer_is_refused_an_empty_or_foreign_database(pg_url: str) -> None:
    with pytest.raises(MissingDatabase):
        await open_store(pg_url, read_only=True, watch=False)
    with pytest.raises(MissingDatabase):
        verify_database(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE theirs (x int)")
    with pytest.raises(ForeignPgDatabase):
        await open_store(pg_url, read_only=True, watch=False)
    done = agentdeck("verify", "--db", pg_url)
    assert done.returncode == 2 and "did not create" in one_line_error(done)


@contextmanager
def role_without_rights(url: str) -> Iterator[str]:
    """`url` as a new login role that owns nothing and was granted nothing (CONNECT and
    TEMP come from PUBLIC; since PostgreSQL 15, no CREATE on the public schema)."""
    role = f"nosy_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        yield url.replace("postgresql://postgres@", f"postgresql://{role}@", 1)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_a_user_without_rights_is_one_line_and_exit_2(demo_url: str) -> None:
    """Verify needs SELECT on agentdeck's tables; a user without it is told so in one line."""
    with role_without_rights(demo_url) as url:
        done = agentdeck("verify", "--db", url)
    assert done.returncode == 2
    line = one_line_error(done)
    assert "permission denied" in line and "agentdeck's user needs" in line
    assert done.stdout == ""
