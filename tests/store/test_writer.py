"""The group-commit writer: every caller gets its own answer, and answers are durable."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from store.errors import (
    AppendRejected,
    DuplicateEvent,
    InvalidEvent,
    SequenceConflict,
    StoreClosed,
    StoreError,
)
from store.event_store import EventStore
from store.models import Event, NewEvent
from store.open import open_store
from tests.store.support import eventually, new_event, read_all, step_event


def _listen(store: EventStore) -> list[list[Event]]:
    """Record each published commit: one list per group-commit transaction."""
    commits: list[list[Event]] = []
    store.feed.add_listener(lambda events: commits.append(list(events)))
    return commits


async def test_concurrent_appenders_each_get_their_own_result(store: EventStore) -> None:
    rng = random.Random(7)
    runtimes = ["a", "b", "c"]
    requests = [
        (rng.choice(runtimes), [step_event(j, f"caller {i}") for j in range(rng.randint(1, 5))])
        for i in range(300)
    ]
    commits = _listen(store)

    results = await asyncio.gather(*(store.append(rt, None, evs) for rt, evs in requests))

    total = sum(len(evs) for _, evs in requests)
    for (runtime_id, sent), got in zip(requests, results, strict=True):
        # Its own events, in its own order, in one contiguous run of positions and seqs.
        assert [e.event_id for e in got] == [e.event_id for e in sent]
        assert all(e.runtime_id == runtime_id for e in got)
        assert [e.position for e in got] == list(range(got[0].position, got[0].position + len(got)))
        assert [e.seq for e in got] == list(range(got[0].seq, got[0].seq + len(got)))
    positions = sorted(e.position for got in results for e in got)
    assert positions == list(range(1, total + 1))
    for runtime_id in runtimes:
        seqs = sorted((e.position, e.seq) for got in results for e in got if e.runtime_id == runtime_id)
        assert [s for _, s in seqs] == list(range(1, len(seqs) + 1)), "seq follows position order"
    # Group commit really grouped: far fewer transactions than appends.
    assert sum(len(c) for c in commits) == total
    assert len(commits) < len(requests) / 2, f"{len(commits)} commits for {len(requests)} appends"
    assert (await store.verify()).ok


async def test_sequence_conflict_in_a_batch_fails_alone_and_writes_nothing(store: EventStore) -> None:
    await store.append("rt", 0, [new_event(), new_event()])
    commits = _listen(store)
    first, stale, third = [new_event()], [new_event(), new_event()], [new_event()]

    # submit() queues synchronously, so the three are in the writer's queue together
    # and go into one BEGIN IMMEDIATE transaction.
    futures = [
        store.submit("rt", 2, first),
        store.submit("rt", 1, stale),  # the log is at 2 (3 after `first`)
        store.submit("rt", 3, third),
    ]
    results = await asyncio.gather(*futures, return_exceptions=True)

    assert [e.seq for e in results[0]] == [3]  # type: ignore[union-attr]
    assert isinstance(results[1], SequenceConflict)
    assert (results[1].expected, results[1].actual) == (1, 3)
    assert [e.seq for e in results[2]] == [4]  # type: ignore[union-attr]
    assert len(commits) == 1, "the neighbours committed in the same transaction"
    log = await read_all(store)
    assert [e.seq for e in log] == [1, 2, 3, 4]
    assert not {e.event_id for e in stale} & {e.event_id for e in log}
    assert await store.last_seq("rt") == 4


async def test_duplicate_event_id_fails_alone(store: EventStore) -> None:
    [old] = await store.append("rt", None, [new_event()])
    commits = _listen(store)
    again = new_event(event_id=old.event_id)
    twin = new_event()
    futures = [
        store.submit("rt", None, [new_event()]),
        store.submit("rt", None, [new_event(), again]),  # collides with the log
        store.submit("other", None, [twin]),
        store.submit("rt", None, [new_event(event_id=twin.event_id)]),  # collides in the batch
        store.submit("rt", None, [new_event()]),
    ]
    results = await asyncio.gather(*futures, return_exceptions=True)

    assert isinstance(results[1], DuplicateEvent)
    assert isinstance(results[3], DuplicateEvent)
    assert str(twin.event_id) in str(results[3])
    ok = [r for i, r in enumerate(results) if i not in (1, 3)]
    assert all(isinstance(r, list) for r in ok)
    assert len(commits) == 1
    log = await read_all(store)
    assert len(log) == 4
    assert [e.position for e in log] == [1, 2, 3, 4]
    assert [e.seq for e in log if e.runtime_id == "rt"] == [1, 2, 3]
    assert sum(1 for e in log if e.event_id == twin.event_id) == 1
    assert (await store.verify()).ok


async def test_an_append_with_a_repeated_event_id_lands_nothing(store: EventStore) -> None:
    ev = new_event()
    with pytest.raises(DuplicateEvent):
        await store.append("rt", 0, [new_event(), ev, ev])
    assert await read_all(store) == []
    [landed] = await store.append("rt", 0, [new_event()])
    assert (landed.position, landed.seq) == (1, 1)


async def test_expected_none_appends_at_the_end(store: EventStore) -> None:
    await store.append("rt", 0, [new_event() for _ in range(3)])
    await store.append("other", 0, [new_event()])
    got = await store.append("rt", None, [new_event(), new_event()])
    assert [(e.seq, e.position) for e in got] == [(4, 5), (5, 6)]
    # ...and an explicit expectation still applies right after.
    with pytest.raises(SequenceConflict):
        await store.append("rt", 4, [new_event()])
    assert [e.seq for e in await store.append("rt", 5, [new_event()])] == [6]


async def test_unstorable_append_fails_alone(store: EventStore) -> None:
    """An event the catalog accepts but the projection cannot fold, or JSON cannot encode,
    fails only its append.

    Before the fix in store/writer.py this killed the writer task: every caller in
    the batch, and every later one, waited forever.
    """
    await store.append("rt", None, [new_event("worker.created", worker_id="w-1", payload={"spec": {}})])
    futures = [
        store.submit("rt", None, [new_event()]),
        # worker.created without the worker id its projection needs
        store.submit("rt", None, [new_event("worker.created", payload={"spec": {}})]),
        # a payload that fits its model (a Decimal is a float to pydantic) but not JSON
        store.submit("rt", None, [new_event(payload={"duration_s": Decimal("1.5")})]),
        store.submit("rt", None, [new_event()]),
        # a lone surrogate (undecodable input passed through): SQLite cannot encode it
        store.submit("rt", None, [new_event(message="bad \udc80 byte")]),
    ]
    results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), 10)
    assert isinstance(results[1], AppendRejected)
    assert "worker.created" in str(results[1])
    assert isinstance(results[2], AppendRejected)
    assert isinstance(results[4], AppendRejected)
    assert [e.seq for e in results[0]] == [2]  # type: ignore[union-attr]
    assert [e.seq for e in results[3]] == [3]  # type: ignore[union-attr]
    # The writer lives on.
    [later] = await asyncio.wait_for(store.append("rt", 3, [new_event()]), 10)
    assert later.seq == 4
    assert (await store.verify()).ok


async def test_an_event_the_catalog_refuses_is_refused_at_submit(store: EventStore) -> None:
    """submit() checks every event against the catalog before queuing anything: an unknown
    kind or a payload that does not fit raises InvalidEvent at once (one line naming the
    kind and the problem), the whole append is refused, and nothing reaches the log."""
    commits = _listen(store)
    with pytest.raises(InvalidEvent) as unknown:
        store.submit("rt", None, [new_event(), new_event("note.written")])
    assert str(unknown.value) == (
        "event kind 'note.written' refused: this kind is not in the event catalog"
        " (store/catalog.py); nothing was written"
    )
    missing = new_event("worker.output", worker_id="w-1", payload={"role": "user", "sequence": 1})
    with pytest.raises(InvalidEvent) as wrong:
        store.submit("rt", 0, [new_event(), missing])
    assert str(wrong.value) == (
        "event kind 'worker.output' refused: content: Field required; nothing was written"
    )
    with pytest.raises(InvalidEvent) as extra:
        await store.append("rt", None, [
            new_event("run.step.started", payload={"step": 1, "title": "t", "extra": "not in it"})
        ])
    assert (extra.value.kind, extra.value.problem) == (
        "run.step.started", "extra: Extra inputs are not permitted",
    )
    with pytest.raises(InvalidEvent, match="step: Input should be a valid integer"):
        await store.append("rt", None, [new_event("run.step.started", payload={"step": "two", "title": "t"})])
    for refused in (unknown, wrong, extra):
        assert "\n" not in str(refused.value)
    # Nothing was queued or written: the next good append lands at seq 1, position 1.
    good = [new_event(), step_event(1)]
    got = await store.append("rt", 0, good)
    assert [(e.seq, e.position) for e in got] == [(1, 1), (2, 2)]
    assert [e.event_id for e in got] == [e.event_id for e in good]
    assert await read_all(store) == got
    assert [[e.event_id for e in c] for c in commits] == [[e.event_id for e in got]]
    assert (await store.verify()).ok


async def test_a_transcript_sequence_clash_is_rejected_alone(store: EventStore) -> None:
    def output(seq: int) -> NewEvent:
        return new_event(
            "worker.output", worker_id="w-1",
            payload={"role": "assistant", "content": f"line {seq}", "sequence": seq},
        )

    await store.append(
        "rt", None, [new_event("worker.created", worker_id="w-1", payload={"spec": {}}), output(1)]
    )
    results = await asyncio.gather(
        store.submit("rt", None, [output(2)]),
        store.submit("rt", None, [output(2)]),
        return_exceptions=True,
    )
    assert isinstance(results[0], list)
    assert isinstance(results[1], StoreError) and not isinstance(results[1], SequenceConflict)
    assert [e.seq for e in await read_all(store)] == [1, 2, 3]
    assert (await store.verify()).ok


async def test_results_are_durable(db_address: str | Path) -> None:
    async with await open_store(db_address, watch=False) as store:
        sent = [
            new_event(
                "run.failed", worker_id="w-3", run_id="r-1", run_seq=i + 1,
                message=f"step {i} ✓ \x1b[31m",
                payload={
                    "error": f"step {i} ✓", "exit_code": i, "stderr_tail": ["one", "two"],
                    "ended_processes": [{"pid": 7, "pgid": None, "command": "sleep ✓"}],
                },
            )
            for i in range(5)
        ]
        got = (await store.append("ci", 0, sent[:2])) + (await store.append("ci", 2, sent[2:]))
    async with await open_store(db_address, watch=False) as reopened:
        assert await read_all(reopened) == got
        for event, new in zip(got, sent, strict=True):
            assert (event.event_id, event.kind, event.payload, event.at) == (
                new.event_id, new.kind, new.payload, new.at,
            )
        assert await reopened.last_seq("ci") == 5
        assert [e.seq for e in await reopened.read_run("ci", "r-1", 2, 10)] == [3, 4, 5]
        assert (await reopened.verify()).ok


async def test_append_after_close_is_refused(db_address: str | Path) -> None:
    store = await open_store(db_address, watch=False)
    await store.close()
    with pytest.raises(StoreClosed):
        await store.append("rt", None, [new_event()])
    with pytest.raises(StoreClosed):
        await store.read_after(0, 10)


async def test_the_wal_is_checkpointed_when_idle(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The log file does not grow without bound: an idle writer truncates the WAL."""
    import store.writer as writer_module

    monkeypatch.setattr(writer_module, "CHECKPOINT_EVERY_S", 0.2)
    wal = db_path.with_name(db_path.name + "-wal")
    async with await EventStore.open(db_path, watch=False, index=False) as store:
        for _ in range(20):
            await store.append("rt", None, [new_event(message="x" * 2000) for _ in range(20)])
        assert wal.stat().st_size > 100_000
        await eventually(lambda: wal.stat().st_size == 0, timeout=5, what="an idle checkpoint")
        assert len(await read_all(store)) == 400  # everything is in the main file now
    assert wal.stat().st_size == 0


@pytest.mark.parametrize(
    "nul",
    [
        {"message": "a\x00b"},
        {"payload": {"reason": "a\x00b"}},
        {"payload": {"argv": ["sh", "-c", "echo \x00"]}},
    ],
    ids=["message", "payload-string", "payload-list"],
)
async def test_a_nul_is_refused_alike_on_both_back_ends_and_alone(
    store: EventStore, nul: dict[str, Any]
) -> None:
    # PostgreSQL's text cannot hold a NUL (SQLite's could): both stores refuse such an
    # event at submit, queuing nothing, so they never disagree about what was kept.
    # (engine.drivers.output keeps NULs out of program output; engine.validation out of requests.)
    before = store.submit("rt", None, [new_event(message="before")])
    with pytest.raises(InvalidEvent, match="NUL"):
        store.submit("rt", None, [new_event(**nul)])
    after = store.submit("rt", None, [new_event(message="after")])
    await asyncio.gather(before, after)
    assert [e.message for e in await read_all(store)] == ["before", "after"]
    assert (await store.verify()).ok
