"""Two real processes on one database (each back end): the change feed, and racing appends."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

from store.event_store import EventStore
from store.feed import ChangeWatcher
from store.models import Event
from store.open import open_store
from tests.store.support import collect, new_event, read_all, spawn, step_event, wait_for_line


def _go(*procs: subprocess.Popen[str]) -> None:
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()


def _finish(proc: subprocess.Popen[str], timeout: float = 30) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return out


async def test_another_process_commits_arrive_interleaved_in_order(db_address: str | Path) -> None:
    async with await open_store(db_address, watch=True) as store:
        child = spawn("appender.py", db_address, "child", 200, 0.002)
        try:
            await asyncio.to_thread(wait_for_line, child, "ready")
            with store.subscribe(0) as sub:
                _go(child)
                mine: list[Event] = []
                for i in range(100):
                    mine += await store.append("parent", None, [step_event(i)])
                    await asyncio.sleep(0.003)
                events, lags = await collect(sub, 300, timeout=20)
            await asyncio.to_thread(_finish, child)
        finally:
            if child.poll() is None:
                child.kill()
        log = await read_all(store)
    assert lags == []
    # Exactly the log, in position order: local and foreign commits interleaved as committed.
    assert events == log
    assert [e.position for e in events] == list(range(1, 301))
    theirs = [e for e in events if e.runtime_id == "child"]
    assert [e.payload["step"] for e in theirs] == list(range(200))
    assert [e.seq for e in theirs] == list(range(1, 201))
    assert [e.event_id for e in events if e.runtime_id == "parent"] == [e.event_id for e in mine]
    # The two streams did overlap: some child commit landed between two of ours.
    first_mine, last_mine = mine[0].position, mine[-1].position
    assert any(first_mine < e.position < last_mine for e in theirs)


async def test_a_read_only_observer_sees_another_process_live(db_address: str | Path) -> None:
    async with await open_store(db_address, watch=False) as writer:
        await writer.append("seed", None, [new_event() for _ in range(3)])
    async with await open_store(db_address, read_only=True, watch=True) as observer:
        child = spawn("appender.py", db_address, "child", 120, 0.005)
        try:
            await asyncio.to_thread(wait_for_line, child, "ready")
            with observer.subscribe(3) as sub:
                _go(child)
                # Nothing in this process writes: only the change watcher (PostgreSQL: LISTEN)
                # can wake the feed.
                events, _ = await collect(sub, 120, timeout=20)
            await asyncio.to_thread(_finish, child)
        finally:
            if child.poll() is None:
                child.kill()
    assert [e.position for e in events] == list(range(4, 124))
    assert [e.payload["step"] for e in events] == list(range(120))


class _PollOnly(ChangeWatcher):
    """A watcher where the folder watch is unavailable (no inotify): data_version alone."""

    async def _watch(self) -> None:
        return


# SQLite's own fallback (PRAGMA data_version); PostgreSQL is told by LISTEN/NOTIFY.
async def test_data_version_polling_alone_finds_foreign_commits(db_path: Path) -> None:
    async with await EventStore.open(db_path, read_only=False, watch=False) as store:
        watcher = _PollOnly(store.path, store.feed, store, poll_s=0.05)
        await watcher.start()
        child = spawn("appender.py", db_path, "child", 40, 0.01)
        try:
            await asyncio.to_thread(wait_for_line, child, "ready")
            with store.subscribe(0) as sub:
                _go(child)
                events, _ = await collect(sub, 40, timeout=20)
            await asyncio.to_thread(_finish, child)
        finally:
            await watcher.close()
            if child.poll() is None:
                child.kill()
    assert [e.position for e in events] == list(range(1, 41))


def test_two_processes_racing_on_one_runtime_win_each_seq_once(db_address: str | Path) -> None:
    target = 300
    async def create() -> None:
        async with await open_store(db_address, watch=False):
            pass

    asyncio.run(create())
    racers = [spawn("seq_racer.py", db_address, "race", name, target) for name in ("left", "right")]
    try:
        for racer in racers:
            wait_for_line(racer, "ready")
        _go(*racers)
        results = [json.loads(_finish(racer, timeout=60).strip().splitlines()[-1]) for racer in racers]
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()

    async def read() -> tuple[list[Event], bool]:
        async with await open_store(db_address, watch=False) as store:
            return await read_all(store), (await store.verify()).ok

    log, ok = asyncio.run(read())
    assert ok
    assert len(log) >= target
    assert [e.seq for e in log] == list(range(1, len(log) + 1))
    wins = {r["name"]: r["wins"] for r in results}
    # Exactly one winner for each seq, and each process's claims match the log.
    assert sorted(wins["left"] + wins["right"]) == list(range(1, len(log) + 1))
    for e in log:
        # seq_racer: the title names the writer, the step is the seq it expected
        assert e.payload["title"] in wins and e.seq in wins[e.payload["title"]]
        assert e.payload["step"] == e.seq - 1
    assert all(r["wins"] for r in results), f"one process never won: {results}"
    assert sum(r["conflicts"] for r in results) > 0, "the processes never actually raced"
