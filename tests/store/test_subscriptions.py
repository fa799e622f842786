"""Subscriptions: replay then live with no gap and no duplicate; lag is explicit."""

from __future__ import annotations

import asyncio
import random

import pytest

import store.feed as feed_module
from store.event_store import EventStore
from store.filters import parse_filter
from store.models import Event, Lag
from tests.store.support import collect, eventually, new_event, read_all, step_event


async def _produce(store: EventStore, total: int, rng: random.Random, runtime_id: str = "rt") -> None:
    done = 0
    while done < total:
        size = min(rng.randint(1, 10), total - done)
        await store.append(runtime_id, None, [step_event(done + i) for i in range(size)])
        done += size


async def test_no_gap_and_no_duplicate_at_the_seam(store: EventStore) -> None:
    rng = random.Random(2)
    total = 0
    for round_no in range(6):
        start = total
        per_producer = 150
        producers = [
            asyncio.create_task(_produce(store, per_producer, rng, f"p{i}")) for i in range(3)
        ]
        total += 3 * per_producer
        # Subscribe from 0 somewhere mid-stream: part of the history is replayed from
        # the store, the rest arrives live, and the two must meet exactly.
        mid = start + rng.randint(1, 3 * per_producer - 1)
        await eventually(lambda mid=mid: store.feed.last_position >= mid, what=f"position {mid}")
        with store.subscribe(0) as sub:
            events, lags = await collect(sub, total)
        await asyncio.gather(*producers)
        assert lags == []
        assert [e.position for e in events] == list(range(1, total + 1)), f"round {round_no}"


async def test_subscribing_before_anything_is_written(store: EventStore) -> None:
    with store.subscribe(0) as sub:
        waiting = asyncio.create_task(collect(sub, 30))
        await asyncio.sleep(0.05)
        for _ in range(10):
            await store.append("rt", None, [new_event() for _ in range(3)])
        events, _ = await waiting
    assert [e.position for e in events] == list(range(1, 31))


async def test_resume_after_a_cursor(store: EventStore) -> None:
    await store.append("rt", None, [new_event() for _ in range(20)])
    with store.subscribe(12) as sub:
        await store.append("rt", None, [new_event() for _ in range(5)])
        events, _ = await collect(sub, 13)
    assert [e.position for e in events] == list(range(13, 26))


async def test_slow_subscriber_gets_a_lag_notice_then_every_event_once(store: EventStore) -> None:
    await store.append("rt", None, [new_event() for _ in range(5)])
    with store.subscribe(0, max_queue=10) as sub:
        first, _ = await collect(sub, 5)
        # The subscriber stops reading while 300 events are committed: far more than
        # its queue may hold. Memory stays bounded; it is told, then catches up.
        for _ in range(30):
            await store.append("rt", None, [new_event() for _ in range(10)])
        assert len(sub._queue) <= 10
        rest, lags = await collect(sub, 300)
    assert len(lags) >= 1
    assert lags[0].position == 5 and lags[0].dropped > 0
    positions = [e.position for e in first + rest]
    assert positions == list(range(1, 306))


async def test_lag_notice_is_never_hidden_by_a_filter(store: EventStore) -> None:
    flt = parse_filter("kind:run.*")
    with store.subscribe(0, flt, max_queue=5) as sub:
        await store.append("rt", None, [step_event(1)])
        [first], _ = await collect(sub, 1)
        assert first.kind == "run.step.started"
        # Only non-matching events overflow the queue: nothing the filter would pass
        # was dropped, yet the subscriber is still told it fell behind.
        for _ in range(10):
            await store.append("rt", None, [new_event() for _ in range(3)])  # exec.*
        batch = await asyncio.wait_for(sub.next_batch(), 5)
        assert len(batch) == 1 and isinstance(batch[0], Lag)
        assert batch[0].position == first.position


async def test_filtered_subscription_continues_after_lag(store: EventStore) -> None:
    flt = parse_filter("kind:run.* runtime:a")
    with store.subscribe(0, flt, max_queue=8) as sub:
        sent: list[Event] = []
        for i in range(40):
            sent += await store.append("a", None, [step_event(i), new_event()])  # run.*, exec.*
            sent += await store.append("b", None, [step_event(i)])
        got, lags = await collect(sub, 40)
        assert lags, "the queue of 8 overflowed"
        # Still live after catching up.
        late_tool = new_event("run.tool.started", payload={"step": 1, "tool": "shell"})
        sent += await store.append("a", None, [late_tool])
        late, _ = await collect(sub, 1)
    wanted = [e.position for e in sent if e.runtime_id == "a" and e.kind.startswith("run.")]
    assert [e.position for e in got + late] == wanted
    assert len(wanted) == 41


async def test_live_filter_agrees_with_history(store: EventStore) -> None:
    # worker.restart.failed is an error the kind term leaves out; worker.restarting is not
    # under worker.restart.* but only a warning.
    flt = parse_filter("-kind:worker.restart.* level:error")
    failed = new_event("run.failed", run_id="r-1", payload={"error": "boom"})
    with store.subscribe(0, flt) as sub:
        await store.append("rt", None, [new_event("worker.restart.backoff"), failed])
        await store.append("rt", None, [new_event("run.completed"), new_event("exec.command.timeout")])
        await store.append("rt", None, [new_event("worker.restart.failed"), new_event("worker.restarting")])
        live, _ = await collect(sub, 2)
    history = (await store.read_after(0, 100, flt)).events
    assert [e.kind for e in live] == ["run.failed", "exec.command.timeout"]
    assert live == history
    assert len(await read_all(store)) == 6


async def test_iteration_ends_when_the_subscription_closes(store: EventStore) -> None:
    await store.append("rt", None, [new_event() for _ in range(3)])
    sub = store.subscribe(0)
    seen: list[int] = []

    async def consume() -> None:
        async for item in sub:
            assert not isinstance(item, Lag)
            seen.append(item.position)
            if len(seen) == 3:
                sub.close()

    await asyncio.wait_for(consume(), 5)
    assert seen == [1, 2, 3]


@pytest.mark.parametrize("steps", [0, 1, 2, 3])
async def test_closing_the_feed_as_another_process_rings_does_not_hang(
    store: EventStore, monkeypatch: pytest.MonkeyPatch, steps: int
) -> None:
    """The feed's idle pause waited with asyncio.wait_for, which on Python 3.11 drops a
    cancel that lands as the awaited ring does: close then waited for the loop forever."""
    monkeypatch.setattr(feed_module, "IDLE_HINT_S", 30.0)  # a pause long enough to land in
    feed = store.feed
    feed.hint()  # nothing new: the loop reads, finds nothing, and pauses for a ring
    await asyncio.sleep(0.2)
    feed.rung()
    for _ in range(steps):
        await asyncio.sleep(0)
    async with asyncio.timeout(5):
        await feed.close()
