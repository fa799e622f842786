"""Bounded reads, the free-text indexer, and verify catching a tampered file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from store.errors import LimitTooLarge, StoreError
from store.event_store import EventStore
from store.filters import parse_filter
from store.models import NewEvent, WorkerRef
from tests.store.support import eventually, new_event, step_event


def _output(seq: int, run_id: str | None = None) -> NewEvent:
    return new_event(
        "worker.output", worker_id="w-1", run_id=run_id, run_seq=seq if run_id else None,
        payload={"role": "assistant", "content": f"line {seq}", "sequence": seq},
    )


async def test_reads_by_runtime_run_and_position(store: EventStore) -> None:
    await store.append("a", None, [new_event("worker.created", worker_id="w-1", payload={"spec": {}})])
    await store.append("b", None, [new_event() for _ in range(3)])
    await store.append("a", None, [_output(i, "r-1") for i in range(1, 6)])
    assert [e.seq for e in await store.read_runtime("a", 2, 3)] == [3, 4, 5]
    assert [e.run_seq for e in await store.read_run("a", "r-1", 3, 10)] == [4, 5]
    assert [e.position for e in await store.read_before(5, 3)] == [4, 3, 2]
    batch = await store.read_after(6, 2)
    assert [e.position for e in batch.events] == [7, 8] and batch.has_more
    assert batch.cursor.position == 8
    last = await store.read_after(8, 2)
    assert [e.position for e in last.events] == [9] and not last.has_more
    empty = await store.read_after(9, 5)
    assert empty.events == [] and empty.cursor.position == 9 and not empty.has_more


async def test_transcript_pages(store: EventStore) -> None:
    await store.append("a", None, [new_event("worker.created", worker_id="w-1", payload={"spec": {}})])
    await store.append("a", None, [_output(i) for i in range(1, 13)])
    ref = WorkerRef(runtime_id="a", worker_id="w-1")
    page = await store.transcript(ref, 0, 5)
    assert [t.sequence for t in page.items] == [1, 2, 3, 4, 5]
    assert (page.total_items, page.next_start) == (12, 5)
    tail = await store.transcript(ref, 10, 5)
    assert [t.content for t in tail.items] == ["line 11", "line 12"]
    assert tail.next_start is None


async def test_limits_above_the_maximum_are_refused(store: EventStore) -> None:
    ref = WorkerRef(runtime_id="a", worker_id="w-1")
    with pytest.raises(LimitTooLarge) as caught:
        await store.read_after(0, store.max_batch + 1)
    assert (caught.value.requested, caught.value.maximum) == (store.max_batch + 1, store.max_batch)
    with pytest.raises(LimitTooLarge):
        await store.transcript(ref, 0, store.max_transcript + 1)
    with pytest.raises(LimitTooLarge):
        await store.read_runtime("a", 0, store.max_batch + 1)
    with pytest.raises(StoreError):
        await store.read_after(0, 0)


# SQLite's free-text indexer (index=False holds it back); PostgreSQL has none to hold.
async def test_free_text_search_is_exact_before_and_after_indexing(db_path: Path) -> None:
    words = ["alpha timeout", "beta", "gamma timeout here", "delta"]
    flt = parse_filter("timeout")
    async with await EventStore.open(db_path, watch=False, index=False) as store:
        for i in range(40):
            await store.append("rt", None, [step_event(i, message=words[i % 4])])
        # Nothing indexed yet: the unindexed tail is searched directly.
        assert await store.indexed_position() == 0
        unindexed = (await store.read_after(0, 100, flt)).events
    assert [e.payload["step"] % 4 for e in unindexed] == [0, 2] * 10
    async with await EventStore.open(db_path, watch=False) as store:
        # The indexer catches up on open, off the write path.
        await eventually(lambda: _indexed_all(store), what="the indexer to catch up")
        await store.append("rt", None, [new_event(message="late timeout")])
        indexed = (await store.read_after(0, 100, flt)).events
    assert indexed[:-1] == unindexed
    assert indexed[-1].message == "late timeout"


async def _indexed_all(store: EventStore) -> bool:
    return await store.indexed_position() == await store.last_position() > 0


# Tampers with the file through raw sqlite3.
async def test_verify_reports_a_gap_and_tampered_projections(db_path: Path) -> None:
    async with await EventStore.open(db_path, watch=False) as store:
        await store.append("a", None, [new_event("worker.created", worker_id="w-1", payload={"spec": {}})])
        await store.append("a", None, [_output(i) for i in range(1, 6)])
        assert (await store.verify()).ok
    conn = sqlite3.connect(db_path)
    conn.execute("DELETE FROM events WHERE seq = 3")
    conn.execute("DELETE FROM transcript WHERE sequence = 5")
    conn.execute(
        "INSERT INTO workers SELECT runtime_id, 'w-9', 9, status, spec, transcript_len, queued,"
        " current_run_id, current_run_status, terminal_event_id, last_seq, created_at, updated_at"
        " FROM workers WHERE worker_id = 'w-1'"
    )
    conn.commit()
    conn.close()
    async with await EventStore.open(db_path, read_only=True, watch=False) as store:
        report = await store.verify()
    text = "\n".join(report.problems)
    assert not report.ok
    assert "runtime a: seq runs 1..6 over 5 events" in text
    assert "positions missing" in text
    assert "transcript: the log implies" in text  # sequence 5 is gone from the projection
    assert "workers: the projection has" in text and "w-9" in text
    assert report.summary().startswith(f"{len(report.problems)} problem(s)")
