"""Several consoles started at the same moment on a database that does not exist yet."""

from __future__ import annotations

import asyncio
import fcntl
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from store.database import open_writer, prepare
from store.errors import ForeignDatabase, NewerSchema
from store.event_store import EventStore
from store.schema import LATEST_VERSION, migrate
from tests.store.support import AGENTDECK, child_env, new_event, read_all, spawn, wait_for_line

PROCESSES = 8
ROUNDS = 5


def _race(path: Path, barrier: Path, processes: int) -> list[tuple[int, str, str]]:
    """Start `processes` openers, release them together, return (status, stdout, stderr) of each."""
    barrier.touch()
    with barrier.open("rb") as gate:
        fcntl.flock(gate, fcntl.LOCK_EX)
        children = [spawn("concurrent_opener.py", path, barrier, f"p{i}") for i in range(processes)]
        try:
            for child in children:
                wait_for_line(child, "ready", timeout=30)
            # `ready` is printed just before the flock call: give every child the
            # moment it needs to be blocked in it, so one unlock releases them all.
            time.sleep(0.2)
            fcntl.flock(gate, fcntl.LOCK_UN)
            results = []
            for child in children:
                out, err = child.communicate(timeout=60)
                results.append((child.returncode, out, err))
            return results
        finally:
            for child in children:
                if child.poll() is None:
                    child.kill()
                    child.wait()


@pytest.mark.slow
@pytest.mark.parametrize("round_no", range(ROUNDS))
def test_consoles_racing_to_create_a_database_all_open_it(tmp_path: Path, round_no: int) -> None:
    """Issue 7 item 9: N processes released at one instant on a missing file all open it.

    One creates the file and migrates it; the others find it being created
    (the O_EXCL create fails; the file may be empty, or hold only the page the
    switch to WAL writes, with the schema still in the -wal) and wait for that
    instead of failing: the switch to WAL waits out the creator, and `migrate`
    finds the work done. Every process appends one event, nobody prints a
    traceback, and the file verifies (in process and with `agentdeck verify`).
    """
    path = tmp_path / "new" / f"round{round_no}.db"
    results = _race(path, tmp_path / "barrier", PROCESSES)
    failures = [
        f"exit {status}: {out!r} {err!r}"
        for status, out, err in results
        if status != 0 or err != "" or not out.startswith("ok ")
    ]
    assert not failures, "\n".join(failures)
    assert not any("Traceback" in err for _, _, err in results)

    async def check() -> None:
        async with await EventStore.open(path, read_only=True, watch=False) as store:
            log = await read_all(store)
            assert sorted(e.payload["title"] for e in log) == sorted(f"p{i}" for i in range(PROCESSES))
            assert [e.seq for e in log] == list(range(1, PROCESSES + 1))
            assert (await store.verify()).ok

    asyncio.run(check())
    seqs = sorted(int(out.split()[1]) for _, out, _ in results)
    assert seqs == list(range(1, PROCESSES + 1))
    verify = subprocess.run(
        [str(AGENTDECK), "--db", str(path), "verify"],
        capture_output=True, text=True, timeout=60, env=child_env(), check=False,
    )
    assert verify.returncode == 0 and verify.stderr == "", verify


async def test_a_migration_that_another_process_finished_is_skipped(tmp_path: Path) -> None:
    """Issue 7 item 9: `migrate` called with a stale view (version 0, what the loser of a
    creation race saw before the winner committed) finds the schema there under the
    write lock and changes nothing, instead of failing on "table events already exists"."""
    path = tmp_path / "agentdeck.db"
    async with await EventStore.open(path, watch=False) as store:
        await store.append("rt", None, [new_event() for _ in range(3)])
    conn = open_writer(path)
    try:
        migrate(conn, 0)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 3
        assert not conn.in_transaction
    finally:
        conn.close()
    async with await EventStore.open(path, read_only=True, watch=False) as store:
        assert (await store.verify()).ok


def test_a_file_made_foreign_before_the_migration_is_refused(tmp_path: Path) -> None:
    """Issue 7 item 9: if another program put its tables in the new empty file after
    `prepare` looked, `migrate` refuses it (ForeignDatabase) and writes nothing."""
    path = tmp_path / "agentdeck.db"
    path.touch()
    other = sqlite3.connect(path)
    other.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
    other.commit()
    other.close()
    conn = open_writer(path)
    try:
        with pytest.raises(ForeignDatabase) as caught:
            migrate(conn, 0)
        assert str(path) in str(caught.value)
        assert not conn.in_transaction
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master")]
        assert names == ["customers"]
        assert conn.execute("PRAGMA application_id").fetchone()[0] == 0
    finally:
        conn.close()


def test_a_file_migrated_by_a_newer_agentdeck_meanwhile_is_refused(tmp_path: Path) -> None:
    """Issue 7 item 9: if a newer agentdeck migrated the file after `prepare` looked,
    `migrate` refuses it (NewerSchema) instead of running old steps over it."""
    path = tmp_path / "agentdeck.db"
    conn = open_writer(prepare(path))
    conn.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    try:
        with pytest.raises(NewerSchema) as caught:
            migrate(conn, 0)
        assert (caught.value.found, caught.value.supported) == (LATEST_VERSION + 1, LATEST_VERSION)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION + 1
    finally:
        conn.close()
