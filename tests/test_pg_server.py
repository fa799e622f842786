"""The throwaway PostgreSQL of tests/pg.py: a fresh database per test, NOTIFY across processes, durability."""

from __future__ import annotations

import asyncio
import sys
import time

import psycopg
import pytest

from tests.pg import PgServer

_seen_databases: list[str] = []


@pytest.mark.parametrize("round_", [1, 2])
def test_each_test_gets_a_fresh_empty_database(
    pg_server: PgServer, pg_url: str, round_: int
) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        name = conn.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ).fetchone()[0]  # type: ignore[index]
        assert tables == 0, f"round {round_}: database {name} is not empty"
        conn.execute("CREATE TABLE marker (round int NOT NULL)")
        conn.execute("INSERT INTO marker VALUES (%s)", (round_,))
    with psycopg.connect(pg_server.admin_url) as admin:
        existing = {row[0] for row in admin.execute("SELECT datname FROM pg_database")}
    assert name in existing
    assert name not in _seen_databases
    # The databases of earlier tests are gone: dropped at their teardown.
    assert not existing.intersection(_seen_databases)
    _seen_databases.append(name)


# Runs in a second OS process: two NOTIFYs inside one transaction held open until told to commit.
_NOTIFIER = """
import sys, psycopg
with psycopg.connect(sys.argv[1]) as conn:
    conn.execute("SELECT pg_notify('agentdeck_test', 'one')")
    conn.execute("NOTIFY agentdeck_test, 'two'")
    print(conn.info.backend_pid, flush=True)
    sys.stdin.readline()
    conn.commit()
"""


async def test_notify_from_another_process_reaches_an_async_listener_at_commit(
    pg_url: str,
) -> None:
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as listener:
        await listener.execute("LISTEN agentdeck_test")
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _NOTIFIER,
            pg_url,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert child.stdin is not None and child.stdout is not None
            line = await asyncio.wait_for(child.stdout.readline(), timeout=30)
            assert line, (await child.communicate())[1].decode()
            notifier_pid = int(line)
            # Sent but not committed: nothing may arrive yet.
            early = [n async for n in listener.notifies(timeout=0.3)]
            assert early == []

            child.stdin.write(b"commit\n")
            await child.stdin.drain()
            committed_at = time.monotonic()
            received = [n async for n in listener.notifies(timeout=10, stop_after=2)]
            latency = time.monotonic() - committed_at
            _, err = await asyncio.wait_for(child.communicate(), timeout=30)
            assert child.returncode == 0, err.decode()
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()

    assert [(n.channel, n.payload) for n in received] == [
        ("agentdeck_test", "one"),
        ("agentdeck_test", "two"),
    ]
    assert {n.pid for n in received} == {notifier_pid}
    assert latency < 5, f"notifications took {latency:.3f}s after the commit was asked"


def test_commits_are_durable(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        settings = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings"
                " WHERE name IN ('synchronous_commit', 'fsync', 'server_version_num')"
            ).fetchall()
        )
    assert settings["synchronous_commit"] == "on"
    assert settings["fsync"] == "on"
    assert int(settings["server_version_num"]) >= 160000
