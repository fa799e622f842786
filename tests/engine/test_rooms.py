"""Rooms and subscriptions: filters over the one feed, live, resumable, no gap, no duplicate."""

from __future__ import annotations

import asyncio
from typing import Any

from engine.results import CreateWorkerRequest, EventCursor
from engine.rooms import Room
from store.event_store import EventStore
from store.models import Event, Lag, RunStatus
from tests.engine.conftest import (
    HostFactory,
    all_events,
    collect,
    demo_profile,
    profile_set,
    run_events,
    wait_run,
)


def ids(items: list[Any]) -> list[str]:
    return [str(e.event_id) for e in items if isinstance(e, Event)]


async def log_after(store: EventStore, position: int) -> list[Event]:
    return list((await store.read_after(position, 10_000)).events)


async def test_each_room_gets_exactly_its_events_live(store: EventStore, host: HostFactory) -> None:
    a = await host("a")
    b = await host("b")
    w1 = await a.create_worker(CreateWorkerRequest())
    w2 = await a.create_worker(CreateWorkerRequest())
    wb = await b.create_worker(CreateWorkerRequest())
    start = await store.last_position()

    runtime_room = a.subscribe(Room("a"), start)
    worker_room = a.subscribe(Room("a", "w-1"), start)
    run_room = a.subscribe(Room("a", "w-1", "w-1.r2"), start)
    try:
        acks = [
            await a.send_input(w1.ref, "first"),
            await a.send_input(w2.ref, "other worker"),
            await b.send_input(wb.ref, "other runtime"),
            await a.send_input(w1.ref, "second"),
        ]
        for ack in acks:
            runtime = a if ack.ref.runtime_id == "a" else b
            await wait_run(runtime, ack.run_id)
        await a.stop_worker(w2.ref)

        log = await log_after(store, start)
        expected = {
            "runtime": [e for e in log if e.runtime_id == "a"],
            "worker": [e for e in log if e.runtime_id == "a" and e.worker_id == "w-1"],
            "run": [e for e in log if e.runtime_id == "a" and e.run_id == "w-1.r2"],
        }
        assert {e.runtime_id for e in log} == {"a", "b"}
        assert len(expected["run"]) == 7
        for name, sub in (("runtime", runtime_room), ("worker", worker_room), ("run", run_room)):
            last = expected[name][-1].event_id
            got = await collect(sub, lambda e, last=last: e.event_id == last)  # type: ignore[misc]
            assert ids(got) == ids(expected[name]), name
    finally:
        for sub in (runtime_room, worker_room, run_room):
            sub.close()


async def test_a_subscription_resumes_at_a_runtime_cursor(host: HostFactory) -> None:
    rt = await host()
    w = await rt.create_worker(CreateWorkerRequest())
    first = await rt.send_input(w.ref, "one")
    await wait_run(rt, first.run_id)
    resume_at = 6
    with await rt.subscribe_cursor(EventCursor(runtime_id="local", next_seq=resume_at)) as sub:
        second = await rt.send_input(w.ref, "two")
        await wait_run(rt, second.run_id)
        got = await collect(sub, lambda e: e.run_id == second.run_id and e.kind == "run.completed")
    seqs = [e.seq for e in got]
    total = (await rt.cursor_now()).next_seq - 1
    assert seqs == list(range(resume_at, total + 1))

    # From "now": only what comes after.
    now = await rt.cursor_now()
    with await rt.subscribe_cursor(now, Room("local", "w-1")) as sub:
        third = await rt.send_input(w.ref, "three")
        got = await collect(sub, lambda e: e.kind == "run.completed")
    assert got[0].seq == now.next_seq
    assert {e.run_id for e in got} == {third.run_id}


async def test_a_run_stream_resumes_at_run_id_and_run_seq(host: HostFactory) -> None:
    rt = await host(profiles=profile_set(demo_profile(pace=0.02, steps=4)))
    w = await rt.create_worker(CreateWorkerRequest(profile="slow"))
    other = await rt.create_worker(CreateWorkerRequest(profile="slow"))
    ack = await rt.send_input(w.ref, "work")
    noise = await rt.send_input(other.ref, "noise")
    await wait_run(rt, ack.run_id, RunStatus.EXECUTING)

    # Resume mid-run: the stored part, then the live part, contiguous.
    with await rt.subscribe_run(ack.run_id, after_run_seq=3) as sub:
        got = await collect(sub, lambda e: e.kind == "run.completed")
    assert [e.run_seq for e in got] == list(range(4, len(got) + 4))
    assert {e.run_id for e in got} == {ack.run_id}
    full = await run_events(rt, ack.run_id)
    assert ids(got) == ids(full[3:])

    # Resume a finished run from its start and from its middle.
    with await rt.subscribe_run(ack.run_id) as sub:
        got = await collect(sub, lambda e: e.kind == "run.completed")
    assert ids(got) == ids(full)
    with await rt.subscribe_run(ack.run_id, after_run_seq=len(full) - 2) as sub:
        got = await collect(sub, lambda e: e.kind == "run.completed")
    assert ids(got) == ids(full[-2:])
    await wait_run(rt, noise.run_id)


async def test_no_gap_and_no_duplicate_at_the_seam_under_load(
    store: EventStore, host: HostFactory
) -> None:
    rt = await host(profiles=profile_set(demo_profile(pace=0.002, steps=15)))
    workers = [await rt.create_worker(CreateWorkerRequest(profile="slow")) for _ in range(3)]
    acks = [await rt.send_input(w.ref, f"load {i}") for i, w in enumerate(workers)]
    await asyncio.sleep(0.02)  # subscribe while the events are pouring in
    with rt.subscribe() as everything, rt.subscribe(Room("local", "w-2")) as one_worker:
        for ack in acks:
            await wait_run(rt, ack.run_id)
        log = await all_events(rt)
        got_all = await collect(everything, lambda e: e.event_id == log[-1].event_id)
        mine = [e for e in log if e.worker_id == "w-2"]
        got_mine = await collect(one_worker, lambda e: e.event_id == mine[-1].event_id)
    assert [e.seq for e in got_all] == list(range(1, len(log) + 1))
    assert ids(got_all) == ids(log)
    assert ids(got_mine) == ids(mine)


async def test_a_slow_room_subscriber_gets_a_lag_notice_and_catches_up(
    store: EventStore, host: HostFactory
) -> None:
    rt = await host()
    w = await rt.create_worker(CreateWorkerRequest())
    start = await store.last_position()
    room = Room("local", "w-1")
    # A room is a store filter: the store's bounded queue and lag notice apply to it.
    with store.subscribe(start, room.filter(), max_queue=3) as sub:
        acks = [await rt.send_input(w.ref, f"input {i}") for i in range(3)]
        for ack in acks:
            await wait_run(rt, ack.run_id)
        expected = [e for e in await log_after(store, start) if e.worker_id == "w-1"]
        got = await collect(sub, lambda e: e.event_id == expected[-1].event_id)
    lags = [item for item in got if isinstance(item, Lag)]
    events = [item for item in got if isinstance(item, Event)]
    assert ids(events) == ids(expected), "caught up from the store: no gap, no duplicate"
    assert len(lags) == 1 and lags[0].dropped > 0


def test_rooms_name_themselves() -> None:
    assert str(Room("local")) == "runtime:local"
    assert str(Room("local", "w-1")) == "worker:local/w-1"
    assert str(Room("local", "w-1", "w-1.r2")) == "run:w-1.r2"
