"""`agentdeck bench engine`: what the engine costs per event, next to the store's own cost.

Two figures, each against a baseline measured in the same run with the same
pragmas (a fresh database file in a temp folder under `bench/data/` per
measurement, opened with `EventStore.open(watch=False, index=False)` on both
sides):

- echo: 100 `builtin:echo` workers, N inputs sent concurrently (one sender per
  worker), timed from the first send to the last `run.completed` seen by a
  subscriber. Baseline: the very same append stream (same kinds, payloads,
  grouping: `[input.accepted, run.created]` then one append per run event)
  pushed through `EventStore.append` by the same number of concurrent
  producers (per worker, one input producer handing runs to one run producer),
  with every `NewEvent` built before the clock starts (uuid7 ids from a
  pre-made pool stamped in append order, as the engine's are made at submit
  time), watched by the same subscriber: what the engine could at best do
  per event.
- demo: 50 `builtin:demo` workers with pace 0 and fail rate 0.1, kept busy
  for a fixed window (at most 2 runs outstanding per worker, topped up as
  runs finish); engine events/s against the store appending the same number
  of demo-shaped events (same kinds and mix, the same gating) the same way.

A figure's ratio is engine cost per event / store cost per event (the
store's events/s over the engine's); the goal is <= 2.

`notes` breaks the per-event cost down: CPU µs/event of the event-loop thread
(engine + the store's loop-side work) and of the other threads (the writer's
SQLite transaction), micro-timings of the engine's per-event building blocks,
a cProfile of a short echo run (loop thread only; cProfile inflates per-call
costs, so read its numbers as shares), and two experiments: the echo pair at
synchronous=NORMAL (CPU rather than fsync decides) and the demo baseline with
the engine's loop turns between runs added.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import gc
import math
import os
import pstats
import random
import shutil
import sys
import tempfile
import time
import timeit
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import Goal, data_dir, figure, machine_info, now
from engine.clock import Uuid7Ids
from engine.profiles import BuiltinProfile, ProfileSet
from engine.results import CreateWorkerRequest
from engine.run_context import one_line
from engine.runtime import Runtime
from store.database import OpenOptions
from store.event_store import EventStore
from store.models import Event, NewEvent, RoleIntent

ProgressFn = Callable[[str], None]

RUNTIME = "bench"
ECHO_WORKERS = 100
DEMO_WORKERS = 50
DEMO_SETTINGS: dict[str, float] = {"pace": 0.0, "steps": 3, "fail_rate": 0.1, "tool_rate": 0.7}
DEMO_PROFILE = "bench-demo"
TERMINAL_KINDS = frozenset({"run.completed", "run.failed", "run.cancelled"})
# input.accepted, run.created, planning, executing, worker.output, verifying, completed
ECHO_EVENTS_PER_INPUT = 7
# Runs queued or running per demo worker, so none idles.
OUTSTANDING_PER_DEMO_WORKER = 2
# Event-loop turns from a run's last commit to the next run's first append in the engine's
# worker loop: the run task ends, shield's callback completes its outer future, the loop
# resumes and creates the next run task, whose first step appends run.planning.
ENGINE_RUN_TURNS = 4
COST_GOAL = Goal(
    subject="ratio",
    op="<=",
    threshold=2.0,
    text="engine cost per event <= 2x the store's (ratio <= 2)",
)


@dataclass(frozen=True)
class Sizes:
    echo_inputs: int
    demo_seconds: float
    demo_warmup_s: float
    rounds: int
    profile_inputs: int


def sizes(quick: bool, scale: float) -> Sizes:
    """The run's sizes. Several short alternating rounds rather than one long one: on a
    busy machine the load changes from second to second, and medians ride it out.
    """
    if quick:
        inputs, seconds, rounds, prof = 1_000, 2.0, 3, 600
    else:
        inputs, seconds, rounds, prof = 4_000, 5.0, 5, 2_000
    return Sizes(
        echo_inputs=max(ECHO_WORKERS, round(inputs * scale)),
        demo_seconds=max(0.3, seconds * scale),
        demo_warmup_s=max(0.1, min(1.0, seconds * scale * 0.1)),
        rounds=rounds,
        profile_inputs=max(ECHO_WORKERS, round(prof * scale)),
    )


# -- measurement plumbing ----------------------------------------------------------


@dataclass
class Span:
    """Wall and CPU time of a window, and the events committed in it."""

    wall_s: float = 0.0
    events: int = 0
    loop_cpu_s: float = 0.0
    process_cpu_s: float = 0.0
    runs: int = 0
    commits: int = 0

    @property
    def events_per_s(self) -> float:
        return self.events / self.wall_s if self.wall_s else 0.0

    def as_dict(self) -> dict[str, Any]:
        per = 1e6 / self.events if self.events else 0.0
        return {
            "wall_s": self.wall_s,
            "events": self.events,
            "runs": self.runs,
            "events_per_s": self.events_per_s,
            "commits": self.commits,
            "events_per_commit": self.events / self.commits if self.commits else 0.0,
            "wall_ms_per_commit": self.wall_s * 1e3 / self.commits if self.commits else 0.0,
            "wall_us_per_event": self.wall_s * per,
            "loop_thread_cpu_us_per_event": self.loop_cpu_s * per,
            "other_threads_cpu_us_per_event": (self.process_cpu_s - self.loop_cpu_s) * per,
        }


class Stopwatch:
    """Starts and stops a `Span` against the store's published position.

    Commits are counted with a feed listener: the feed hands each local commit
    over as one batch, so listener calls = group commits.
    """

    def __init__(self, store: EventStore) -> None:
        self._store = store
        self._t0 = self._loop0 = self._proc0 = 0.0
        self._pos0 = 0
        self._commits = 0
        self._counting = False
        store.feed.add_listener(self._on_commit)

    def _on_commit(self, _events: list[Event]) -> None:
        if self._counting:
            self._commits += 1

    def start(self) -> None:
        self._commits = 0
        self._counting = True
        self._pos0 = self._store.feed.last_position
        self._loop0, self._proc0 = time.thread_time(), time.process_time()
        self._t0 = now()

    def stop(self, runs: int = 0) -> Span:
        t1 = now()
        loop1, proc1 = time.thread_time(), time.process_time()
        self._counting = False
        return Span(
            commits=self._commits,
            wall_s=t1 - self._t0,
            events=self._store.feed.last_position - self._pos0,
            loop_cpu_s=loop1 - self._loop0,
            process_cpu_s=proc1 - self._proc0,
            runs=runs,
        )


class RunWatcher:
    """One subscriber on the store (the same on both sides): counts finished runs per worker."""

    def __init__(self, store: EventStore, expected: int | None = None) -> None:
        self.finished = 0
        self.expected = expected
        self.all_done = asyncio.Event()
        self.per_worker: dict[str, asyncio.Semaphore] = {}
        self._sub = store.subscribe(store.feed.last_position)
        self._task = asyncio.create_task(self._watch(), name="bench-watcher")

    async def _watch(self) -> None:
        async for item in self._sub:
            if not isinstance(item, Event):
                continue  # a Lag notice: the replay that follows covers it
            if item.kind in TERMINAL_KINDS:
                self.finished += 1
                sem = self.per_worker.get(item.worker_id or "")
                if sem is not None:
                    sem.release()
                if self.expected is not None and self.finished >= self.expected:
                    self.all_done.set()

    async def close(self) -> None:
        self._sub.close()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@contextlib.asynccontextmanager
async def fresh_store(tag: str, synchronous: str = "FULL") -> Any:
    """A store on a new database file (the store's default pragmas), removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix=f"engine-{tag}-", dir=data_dir()))
    options = OpenOptions(synchronous=synchronous)
    store = await EventStore.open(folder / "bench.db", watch=False, index=False, options=options)
    try:
        yield store
    finally:
        await store.close()
        shutil.rmtree(folder, ignore_errors=True)


def _spread(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


async def _until(condition: Callable[[], bool], step_s: float = 0.01) -> None:
    while not condition():
        await asyncio.sleep(step_s)


async def _cleanup_gc() -> None:
    gc.collect()
    await asyncio.sleep(0)


# -- the engine side -----------------------------------------------------------------


def _profiles() -> ProfileSet:
    demo = BuiltinProfile(name=DEMO_PROFILE, builtin="demo", demo=dict(DEMO_SETTINGS))
    return ProfileSet(profiles={DEMO_PROFILE: demo}, default_profile=None)


async def _host(store: EventStore, workers: int, profile: str) -> tuple[Runtime, list[Any]]:
    runtime = await Runtime.host(store, RUNTIME, profiles=_profiles())
    records = await asyncio.gather(
        *(
            runtime.create_worker(
                CreateWorkerRequest(intent=RoleIntent(role=f"bench-{i + 1}"), profile=profile)
            )
            for i in range(workers)
        )
    )
    return runtime, [r.ref for r in records]


async def engine_echo(store: EventStore, inputs: int, workers: int = ECHO_WORKERS) -> Span:
    runtime, refs = await _host(store, workers, "builtin:echo")
    try:
        await _cleanup_gc()
        watcher = RunWatcher(store, expected=inputs)
        watch = Stopwatch(store)

        async def sender(ref: Any, count: int) -> None:
            for k in range(count):
                await runtime.send_input(ref, f"bench input {k + 1} for {ref.worker_id}")

        watch.start()
        senders = [
            asyncio.create_task(sender(ref, n))
            for ref, n in zip(refs, _spread(inputs, workers), strict=True)
        ]
        await watcher.all_done.wait()
        span = watch.stop(runs=watcher.finished)
        await asyncio.gather(*senders)
        await watcher.close()
        return span
    finally:
        await runtime.close()


async def engine_demo(
    store: EventStore, seconds: float, warmup_s: float, workers: int = DEMO_WORKERS
) -> Span:
    runtime, refs = await _host(store, workers, DEMO_PROFILE)
    try:
        await _cleanup_gc()
        watcher = RunWatcher(store)
        for ref in refs:
            watcher.per_worker[ref.worker_id] = asyncio.Semaphore(OUTSTANDING_PER_DEMO_WORKER)

        sent = 0
        stopping = False

        async def feeder(ref: Any) -> None:
            nonlocal sent
            sem = watcher.per_worker[ref.worker_id]
            k = 0
            while True:
                await sem.acquire()
                if stopping:
                    return
                k += 1
                sent += 1
                await runtime.send_input(ref, f"demo task {k} for {ref.worker_id}")

        feeders = [asyncio.create_task(feeder(ref)) for ref in refs]
        await asyncio.sleep(warmup_s)
        watch = Stopwatch(store)
        finished0 = watcher.finished
        watch.start()
        await asyncio.sleep(seconds)
        span = watch.stop(runs=watcher.finished - finished0)
        # Wind down gently: no feeder is cancelled mid-send_input (that cancels the
        # store's own future: the input and run.created commit, but the run never
        # reaches the worker's queue), and every worker is idle before close().
        stopping = True
        for sem in watcher.per_worker.values():
            sem.release()
        await asyncio.gather(*feeders)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(_until(lambda: watcher.finished >= sent), 60)
        await watcher.close()
        return span
    finally:
        await runtime.close()


# -- the store side (baseline) ------------------------------------------------------------


class Maker:
    """Builds `NewEvent`s like the engine's (validated, uuid7 ids), before any timing."""

    def __init__(self) -> None:
        self._ids = Uuid7Ids()

    def new(
        self,
        kind: str,
        message: str,
        *,
        worker_id: str | None = None,
        run_id: str | None = None,
        run_seq: int | None = None,
        payload: dict[str, Any] | None = None,
    ) -> NewEvent:
        return NewEvent(
            event_id=self._ids.event_id(),
            kind=kind,
            worker_id=worker_id,
            run_id=run_id,
            run_seq=run_seq,
            message=message,
            payload=payload or {},
            at=datetime.now(UTC),
        )


@dataclass
class PlannedRun:
    """One run as the store sees it: the input append, then one append per run event."""

    input_append: list[NewEvent]
    run_events: list[NewEvent] = field(default_factory=list)
    # Indexes of run events the driver sleeps `pace` before (the demo's simulated work).
    pauses: frozenset[int] = frozenset()

    @property
    def size(self) -> int:
        return len(self.input_append) + len(self.run_events)


def _input_append(
    mk: Maker, worker_id: str, run_no: int, content: str
) -> tuple[str, list[NewEvent]]:
    run_id = f"{worker_id}.r{run_no}"
    accepted = mk.new(
        "worker.input.accepted",
        f"user input #{2 * run_no - 1}: {one_line(content)}",
        worker_id=worker_id,
        run_id=run_id,
        run_seq=1,
        payload={"role": "user", "content": content, "sequence": 2 * run_no - 1},
    )
    created = mk.new(
        "run.created",
        f"run {run_id} queued",
        worker_id=worker_id,
        run_id=run_id,
        run_seq=2,
        payload={"prompt": content, "input_sequence": 2 * run_no - 1, "role": "user"},
    )
    return run_id, [accepted, created]


def plan_echo_run(mk: Maker, worker_id: str, run_no: int, content: str) -> PlannedRun:
    run_id, first = _input_append(mk, worker_id, run_no, content)
    answer = f"echo: {content}"
    seq = iter(range(3, 100))

    def ev(kind: str, message: str, payload: dict[str, Any] | None = None) -> NewEvent:
        return mk.new(
            kind, message, worker_id=worker_id, run_id=run_id, run_seq=next(seq), payload=payload
        )

    return PlannedRun(
        first,
        [
            ev("run.planning", f"run {run_id} planning"),
            ev("run.executing", f"run {run_id} executing"),
            ev(
                "worker.output",
                f"assistant: {one_line(answer)}",
                {"role": "assistant", "content": answer, "sequence": 2 * run_no},
            ),
            ev("run.verifying", f"run {run_id} verifying"),
            ev("run.completed", f"run {run_id} completed", {"result": answer}),
        ],
    )


def plan_demo_run(
    mk: Maker, worker_id: str, run_no: int, content: str, rng: random.Random
) -> PlannedRun:
    """A run shaped like `builtin:demo`'s (steps, tool calls 70%, failures 10%)."""
    from engine.drivers.demo import TOOLS, VERBS

    run_id, first = _input_append(mk, worker_id, run_no, content)
    seq = iter(range(3, 1000))

    def ev(kind: str, message: str, payload: dict[str, Any] | None = None) -> NewEvent:
        return mk.new(
            kind, message, worker_id=worker_id, run_id=run_id, run_seq=next(seq), payload=payload
        )

    events = [
        ev("run.planning", f"run {run_id} planning"),
        ev("run.executing", f"run {run_id} executing"),
    ]
    pauses: set[int] = set()
    for step in range(1, int(DEMO_SETTINGS["steps"]) + 1):
        verb = VERBS[rng.randrange(len(VERBS))]
        events.append(ev("run.step.started", f"step {step}: {verb}", {"step": step, "title": verb}))
        if rng.random() < DEMO_SETTINGS["tool_rate"]:
            tool = TOOLS[rng.randrange(len(TOOLS))]
            events.append(ev("run.tool.started", f"tool {tool}", {"step": step, "tool": tool}))
            took = rng.randint(5, 900)
            pauses.add(len(events))  # asyncio.sleep(pace) before the tool completes
            events.append(
                ev(
                    "run.tool.completed",
                    f"tool {tool} done in {took} ms",
                    {"step": step, "tool": tool, "duration_ms": took},
                )
            )
        else:
            pauses.add(len(events))  # asyncio.sleep(pace) before the next step
    events.append(ev("run.verifying", f"run {run_id} verifying"))
    if rng.random() < DEMO_SETTINGS["fail_rate"]:
        reason = "demo failure: the simulated tests did not pass"
        events.append(ev("run.failed", f"run {run_id} failed: {reason}", {"error": reason}))
    else:
        answer = f"done: {content[:60]}"
        events.append(
            ev(
                "worker.output",
                f"assistant: {one_line(answer)}",
                {"role": "assistant", "content": answer, "sequence": 2 * run_no},
            )
        )
        events.append(ev("run.completed", f"run {run_id} completed", {"result": answer}))
    return PlannedRun(first, events, frozenset(pauses))


async def _store_setup(store: EventStore, mk: Maker, workers: int, profile: str) -> list[str]:
    """runtime.started and the workers' creation events, as the engine writes them (untimed)."""
    ids = [f"w-{i + 1}" for i in range(workers)]
    events = [
        mk.new("runtime.started", f"runtime {RUNTIME} started", payload={"display_name": None})
    ]
    for i, worker_id in enumerate(ids):
        spec = CreateWorkerRequest(intent=RoleIntent(role=f"bench-{i + 1}"), profile=profile)
        events.append(
            mk.new(
                "worker.created",
                f"worker {worker_id} created (role: bench-{i + 1}, {profile})",
                worker_id=worker_id,
                payload={"spec": spec.model_dump(mode="json")},
            )
        )
        for code in ("runtime.local_default_resources", "worker.tools_less"):
            events.append(
                mk.new(
                    "diagnostic.raised",
                    f"info: {code}: bench",
                    worker_id=worker_id,
                    payload={"severity": "info", "code": code, "message": "bench"},
                )
            )
    await store.append(RUNTIME, 0, events)
    return ids


async def store_replay(
    store: EventStore,
    plans: Sequence[Sequence[PlannedRun]],
    *,
    outstanding: int | None = None,
    pace: float | None = None,
    hops_between_runs: int = 0,
    fresh_ids: bool = True,
) -> Span:
    """Push planned runs through `EventStore.append` as the engine would, minus the engine.

    Per worker, an input producer appends each run's input and hands the run to
    a run producer that appends its events one append each, in order; the
    runtime sequence is claimed synchronously right before each append, as
    `Runtime._submit` does. With `outstanding`, an input producer keeps at most
    that many runs unfinished, released by the subscriber as the demo feeders
    are; with `pace`, the run producer sleeps where the demo driver sleeps.
    `hops_between_runs` adds that many event-loop turns before each run's first
    event (an experiment: the engine's run-to-run turns, without the engine).
    """
    last = [await store.last_seq(RUNTIME)]
    total = sum(len(runs) for runs in plans)
    # Event ids in append order, as the engine's (uuid7 made at submit time): ids in
    # plan order would land all over the event_id index and cost the store extra.
    id_pool = iter(
        sorted(Uuid7Ids().event_id() for _ in range(sum(r.size for p in plans for r in p)))
    )
    await _cleanup_gc()
    watcher = RunWatcher(store, expected=total)

    async def append(events: list[NewEvent]) -> None:
        if fresh_ids:
            for event in events:
                # Our own pre-built (frozen) events: stamping the id in place costs
                # ~0.1 µs, where model_copy would charge the baseline ~3 µs an event.
                object.__setattr__(event, "event_id", next(id_pool))
        expected = last[0]
        last[0] += len(events)
        await store.append(RUNTIME, expected, events)

    async def inputs(
        worker_id: str, runs: Sequence[PlannedRun], handoff: asyncio.Queue[PlannedRun | None]
    ) -> None:
        gate = watcher.per_worker.get(worker_id)
        for run in runs:
            if gate is not None:
                await gate.acquire()
            await append(run.input_append)
            handoff.put_nowait(run)
        handoff.put_nowait(None)

    async def runner(handoff: asyncio.Queue[PlannedRun | None]) -> None:
        while (run := await handoff.get()) is not None:
            for _ in range(hops_between_runs):
                await asyncio.sleep(0)
            for i, event in enumerate(run.run_events):
                if pace is not None and i in run.pauses:
                    await asyncio.sleep(pace)
                await append([event])

    worker_ids = [runs[0].input_append[0].worker_id or "" if runs else "" for runs in plans]
    if outstanding is not None:
        for worker_id in worker_ids:
            watcher.per_worker[worker_id] = asyncio.Semaphore(outstanding)
    watch = Stopwatch(store)
    watch.start()
    tasks = []
    for worker_id, runs in zip(worker_ids, plans, strict=True):
        handoff: asyncio.Queue[PlannedRun | None] = asyncio.Queue()
        tasks.append(asyncio.create_task(inputs(worker_id, runs, handoff)))
        tasks.append(asyncio.create_task(runner(handoff)))
    await watcher.all_done.wait()
    span = watch.stop(runs=watcher.finished)
    await asyncio.gather(*tasks)
    await watcher.close()
    return span


async def store_echo(store: EventStore, inputs: int, workers: int = ECHO_WORKERS) -> Span:
    mk = Maker()
    ids = await _store_setup(store, mk, workers, "builtin:echo")
    plans = [
        [plan_echo_run(mk, wid, k + 1, f"bench input {k + 1} for {wid}") for k in range(n)]
        for wid, n in zip(ids, _spread(inputs, workers), strict=True)
    ]
    return await store_replay(store, plans)


async def store_demo(
    store: EventStore, events: int, workers: int = DEMO_WORKERS, hops_between_runs: int = 0
) -> Span:
    """About `events` events of demo-shaped runs (whole runs), spread over `workers`."""
    mk = Maker()
    ids = await _store_setup(store, mk, workers, DEMO_PROFILE)
    rng = random.Random(20260101)
    plans: list[list[PlannedRun]] = [[] for _ in ids]
    planned = 0
    k = 0
    while planned < events:
        for i, wid in enumerate(ids):
            run = plan_demo_run(mk, wid, k + 1, f"demo task {k + 1} for {wid}", rng)
            plans[i].append(run)
            planned += run.size
            if planned >= events:
                break
        k += 1
    return await store_replay(
        store,
        plans,
        outstanding=OUTSTANDING_PER_DEMO_WORKER,
        pace=float(DEMO_SETTINGS["pace"]),
        hops_between_runs=hops_between_runs,
    )


# -- micro-timings and profile -------------------------------------------------------------


def micro_costs() -> dict[str, float]:
    """µs per call of the building blocks the engine adds to every event (loop thread)."""
    ids = Uuid7Ids()
    at = datetime.now(UTC)
    eid = ids.event_id()
    payload = {"role": "assistant", "content": "echo: bench input", "sequence": 2}

    def validated() -> NewEvent:
        return NewEvent(
            event_id=eid,
            kind="worker.output",
            worker_id="w-1",
            run_id="w-1.r1",
            run_seq=5,
            message="assistant: echo: bench input",
            payload=payload,
            at=at,
        )

    def constructed() -> NewEvent:
        return NewEvent.model_construct(
            event_id=eid,
            kind="worker.output",
            worker_id="w-1",
            run_id="w-1.r1",
            run_seq=5,
            message="assistant: echo: bench input",
            payload=payload,
            at=at,
        )

    def loop_overhead() -> None:
        async def noop() -> None:
            return None

        async def many() -> None:
            for _ in range(1000):
                await asyncio.create_task(noop())

        asyncio.run(many())

    def one(fn: Callable[[], Any], n: int = 10_000) -> float:
        return min(timeit.repeat(fn, number=n, repeat=3)) / n * 1e6

    return {
        "NewEvent(...) validated": one(validated),
        "NewEvent.model_construct": one(constructed),
        "uuid7 event id": one(ids.event_id),
        "datetime.now(UTC)": one(lambda: datetime.now(UTC)),
        "one_line(message)": one(lambda: one_line("assistant: echo: bench input 12 for w-3")),
        "create_task+await (per task)": min(timeit.repeat(loop_overhead, number=1, repeat=3))
        / 1000
        * 1e6,
    }


_ENGINE_FILES = ("engine/", "store/", "asyncio/", "pydantic", "uuid", "json/", "sqlite3")


async def profile_echo(inputs: int) -> dict[str, Any]:
    """cProfile (loop thread only) of an echo run; top functions by own time, in µs/event."""
    async with fresh_store("profile") as store:
        prof = cProfile.Profile()
        runtime, refs = await _host(store, ECHO_WORKERS, "builtin:echo")
        try:
            watcher = RunWatcher(store, expected=inputs)
            pos0 = store.feed.last_position

            async def sender(ref: Any, count: int) -> None:
                for k in range(count):
                    await runtime.send_input(ref, f"bench input {k + 1} for {ref.worker_id}")

            prof.enable()
            senders = [
                asyncio.create_task(sender(ref, n))
                for ref, n in zip(refs, _spread(inputs, ECHO_WORKERS), strict=True)
            ]
            await watcher.all_done.wait()
            prof.disable()
            events = store.feed.last_position - pos0
            await asyncio.gather(*senders)
            await watcher.close()
        finally:
            await runtime.close()
    stats = pstats.Stats(prof)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    rows = []
    categories: dict[str, float] = {}
    for (filename, line, name), (_cc, ncalls, tt, ct, _callers) in raw.items():
        function = f"{_short(filename)}:{line}({name})"
        category = _category(function)
        categories[category] = categories.get(category, 0.0) + tt
        rows.append(
            {
                "function": function,
                "category": category,
                "calls_per_event": ncalls / events,
                "own_us_per_event": tt / events * 1e6,
                "cum_us_per_event": ct / events * 1e6,
            }
        )
    busy = sum(t for c, t in categories.items() if c != "idle (epoll wait)") or 1.0
    by_own = sorted(
        (r for r in rows if r["category"] != "idle (epoll wait)"),
        key=lambda r: r["own_us_per_event"],
        reverse=True,
    )[:20]
    wanted = (
        "runtime.py",
        "run_context.py",
        "drivers/echo.py",
        "store/writer.py",
        "store/feed.py",
        "store/event_store.py",
        "clock.py",
    )
    by_cum = sorted(
        (r for r in rows if any(w in r["function"] for w in wanted)),
        key=lambda r: r["cum_us_per_event"],
        reverse=True,
    )[:20]
    return {
        "desc": (
            "cProfile of the event-loop thread only (the writer's SQLite work runs in its own "
            "thread and is not in here); cProfile inflates per-call costs about 2-3x, so read "
            "the shares, and the unprofiled micro_us_per_call for absolute costs"
        ),
        "events": events,
        "busy_loop_us_per_event": busy / events * 1e6,
        "own_time_share_by_category": {
            c: t / busy
            for c, t in sorted(categories.items(), key=lambda kv: -kv[1])
            if c != "idle (epoll wait)"
        },
        "top_own_time": by_own,
        "top_cumulative_engine_store": by_cum,
    }


_CATEGORIES = (
    ("idle (epoll wait)", ("select.epoll",)),
    ("uuid7 event ids", ("uuid6/", "uuid.py", "posix.urandom", "engine/clock.py")),
    ("pydantic (NewEvent validation, Event construction)", ("pydantic", "store/models.py")),
    ("engine/", ("engine/",)),
    ("store/ (loop side: submit, settle, rows to Events, feed)", ("store/",)),
    ("bench/ (the watcher, senders)", ("bench/",)),
    ("asyncio machinery", ("asyncio/", "_asyncio", "_contextvars", "heapq", "SimpleQueue")),
)


def _category(function: str) -> str:
    for name, markers in _CATEGORIES:
        if any(m in function for m in markers):
            return name
    return "other (datetime, json, re, builtins)"


def _short(filename: str) -> str:
    for marker in ("/engine/", "/store/", "/bench/", "/site-packages/", "/lib/python3"):
        i = filename.find(marker)
        if i >= 0:
            return filename[i + 1 :]
    return filename


# -- the suite ---------------------------------------------------------------------


def _median(spans: list[Span]) -> Span:
    """The round with the median rate (the upper one of an even count)."""
    return sorted(spans, key=lambda s: s.events_per_s)[len(spans) // 2]


def _paired(engine: list[Span], store: list[Span]) -> list[float]:
    """Per-round ratios (store rate / engine rate) of back-to-back measurements."""
    return [
        s.events_per_s / e.events_per_s if e.events_per_s else math.nan
        for e, s in zip(engine, store, strict=True)
    ]


def _rates(spans: list[Span]) -> list[float]:
    return [s.events_per_s for s in spans]


async def run_engine_bench(
    quick: bool, progress: ProgressFn | None = None, scale: float = 1.0
) -> dict[str, Any]:
    """Run the engine benchmarks; the JSON-able result (figures, baselines, ratios, notes)."""
    say = progress or (lambda _m: None)
    size = sizes(quick, scale)
    started = now()
    machine = machine_info(data_dir())

    # 1. echo: inputs through 100 echo workers vs the same append stream straight into the store.
    echo_engine: list[Span] = []
    echo_store: list[Span] = []
    for r in range(size.rounds):
        order = ("store", "engine") if r % 2 == 0 else ("engine", "store")
        for side in order:
            async with fresh_store(f"echo-{side}") as store:
                if side == "engine":
                    span = await engine_echo(store, size.echo_inputs)
                    echo_engine.append(span)
                else:
                    span = await store_echo(store, size.echo_inputs)
                    echo_store.append(span)
            say(
                f"echo round {r + 1}/{size.rounds} {side:6}: {span.runs} runs, {span.events} events "
                f"in {span.wall_s:.2f}s = {span.events_per_s:,.0f} events/s"
            )

    # 2. demo: busy demo workers for a window vs the store appending as many demo-shaped events.
    demo_engine: list[Span] = []
    demo_store: list[Span] = []
    for r in range(size.rounds):
        async with fresh_store("demo-engine") as store:
            span = await engine_demo(store, size.demo_seconds, size.demo_warmup_s)
        demo_engine.append(span)
        say(
            f"demo round {r + 1}/{size.rounds} engine: {span.runs} runs, {span.events} events "
            f"in {span.wall_s:.2f}s = {span.events_per_s:,.0f} events/s"
        )
        async with fresh_store("demo-store") as store:
            span = await store_demo(store, span.events)
        demo_store.append(span)
        say(
            f"demo round {r + 1}/{size.rounds} store : {span.runs} runs, {span.events} events "
            f"in {span.wall_s:.2f}s = {span.events_per_s:,.0f} events/s"
        )

    # 3. the same echo comparison without the per-commit fsync (synchronous=NORMAL on both
    #    sides): how much of the gap is CPU rather than commit latency.
    nosync_engine: list[Span] = []
    nosync_store: list[Span] = []
    nosync_inputs = max(ECHO_WORKERS, min(size.echo_inputs, 3_000))
    for side in ("store", "engine"):
        async with fresh_store(f"echo-normal-{side}", synchronous="NORMAL") as store:
            if side == "engine":
                span = await engine_echo(store, nosync_inputs)
                nosync_engine.append(span)
            else:
                span = await store_echo(store, nosync_inputs)
                nosync_store.append(span)
        say(
            f"echo synchronous=NORMAL {side:6}: {span.events} events in {span.wall_s:.2f}s "
            f"= {span.events_per_s:,.0f} events/s"
        )

    # 4. the demo gap without the engine: the store baseline with the loop turns the
    #    engine spends between one run's last commit and the next run's first append.
    async with fresh_store("demo-turns") as store:
        turns = await store_demo(
            store, _median(demo_engine).events, hops_between_runs=ENGINE_RUN_TURNS
        )
    say(
        f"demo store with {ENGINE_RUN_TURNS} loop turns between runs: {turns.events_per_s:,.0f} "
        f"events/s, {turns.as_dict()['events_per_commit']:.1f} events/commit"
    )

    # 5. where the time goes.
    say("micro-timings of the engine's per-event building blocks")
    micro = await asyncio.to_thread(micro_costs)
    say(f"cProfile of an echo run with {size.profile_inputs} inputs")
    profile = await profile_echo(size.profile_inputs)

    ee, es = _median(echo_engine), _median(echo_store)
    de, ds = _median(demo_engine), _median(demo_store)
    echo_inputs_s = ee.runs / ee.wall_s if ee.wall_s else 0.0
    store_inputs_s = es.runs / es.wall_s if es.wall_s else 0.0
    echo_ratio = es.events_per_s / ee.events_per_s if ee.events_per_s else float("nan")
    demo_ratio = ds.events_per_s / de.events_per_s if de.events_per_s else float("nan")

    figures = {
        "echo_inputs_per_s": figure(
            value=echo_inputs_s,
            unit="inputs/s",
            baseline=store_inputs_s,
            baseline_desc="the same input+run append stream straight through EventStore.append",
            desc=f"inputs through {ECHO_WORKERS} echo workers, first send to last run.completed",
            goal=COST_GOAL,
            ratio=store_inputs_s / echo_inputs_s if echo_inputs_s else float("nan"),
            inputs=size.echo_inputs,
            rounds_value=[s.runs / s.wall_s for s in echo_engine],
            rounds_baseline=[s.runs / s.wall_s for s in echo_store],
        ),
        "echo_events_per_s": figure(
            value=ee.events_per_s,
            unit="events/s",
            baseline=es.events_per_s,
            baseline_desc="EventStore.append of the same events, same grouping, same concurrency",
            desc=f"engine events/s with {ECHO_WORKERS} echo workers; ratio = store rate / engine rate",
            goal=COST_GOAL,
            ratio=echo_ratio,
            cpu_ratio=_cpu_ratio(ee, es),
            engine=ee.as_dict(),
            store=es.as_dict(),
            rounds_value=_rates(echo_engine),
            rounds_baseline=_rates(echo_store),
            paired_round_ratios=_paired(echo_engine, echo_store),
        ),
        "demo_events_per_s": figure(
            value=de.events_per_s,
            unit="events/s",
            baseline=ds.events_per_s,
            baseline_desc="EventStore.append of as many demo-shaped events, same grouping",
            desc=(
                f"engine events/s with {DEMO_WORKERS} demo workers (pace 0, fail rate 0.1) over "
                f"{size.demo_seconds:g}s; ratio = store rate / engine rate"
            ),
            goal=COST_GOAL,
            ratio=demo_ratio,
            cpu_ratio=_cpu_ratio(de, ds),
            engine=de.as_dict(),
            store=ds.as_dict(),
            rounds_value=_rates(demo_engine),
            rounds_baseline=_rates(demo_store),
            paired_round_ratios=_paired(demo_engine, demo_store),
        ),
    }
    notes = {
        "findings": _findings(ee, es, de, ds, turns, micro),
        "method": (
            "Each side on a fresh database file (same pragmas: EventStore.open defaults, "
            "synchronous=FULL, watch=False, index=False), one subscriber counting finished runs "
            "on both sides. Each side's figure is its median round (echo rounds alternate which "
            "side goes first); paired_round_ratios are the per-round ratios. The baseline's NewEvents are built (validated) before its clock starts and "
            "get pre-made uuid7 ids in append order as they are appended (ids in plan order "
            "would scatter over the event_id index and cost the writer ~20 µs/event more), so "
            "its figure is the store alone. Ratios: store events/s over engine events/s (wall); "
            "cpu_ratio: engine process CPU per event over the store's."
        ),
        "per_event_cost_us": {
            "echo_engine": ee.as_dict(),
            "echo_store": es.as_dict(),
            "demo_engine": de.as_dict(),
            "demo_store": ds.as_dict(),
            "echo_engine_minus_store_wall_us": _diff_us(ee, es),
            "echo_engine_minus_store_loop_cpu_us": _diff_cpu(ee, es),
            "demo_engine_minus_store_wall_us": _diff_us(de, ds),
            "demo_engine_minus_store_loop_cpu_us": _diff_cpu(de, ds),
        },
        "echo_synchronous_normal": {
            "desc": (
                "informational, not a goal: the echo comparison with synchronous=NORMAL on "
                "both sides (no fsync per commit), so CPU rather than commit latency decides"
            ),
            "engine_events_per_s": nosync_engine[0].events_per_s,
            "store_events_per_s": nosync_store[0].events_per_s,
            "ratio": (
                nosync_store[0].events_per_s / nosync_engine[0].events_per_s
                if nosync_engine[0].events_per_s
                else None
            ),
            "engine": nosync_engine[0].as_dict(),
            "store": nosync_store[0].as_dict(),
        },
        "demo_store_with_engine_run_turns": {
            "desc": (
                f"the demo baseline again with {ENGINE_RUN_TURNS} event-loop turns before each "
                "run's first append (what the engine's worker loop spends between runs: run "
                "task ends, shield callback, loop resumes and creates the next run task, the "
                "task's first step); compare events_per_commit with demo_engine's"
            ),
            **turns.as_dict(),
        },
        "micro_us_per_call": micro,
        "profile": profile,
    }
    return {
        "suite": "engine",
        "quick": quick,
        "scale": scale,
        "sizes": size.__dict__,
        "machine": machine,
        "loadavg_1m_at_end": _loadavg(),
        "elapsed_s": now() - started,
        "figures": figures,
        "notes": notes,
    }


def _cpu(span: Span) -> float:
    return span.process_cpu_s / span.events * 1e6 if span.events else 0.0


def _cpu_ratio(engine: Span, store: Span) -> float | None:
    """Engine process CPU per event over the store's: steadier than wall on a busy machine."""
    return _cpu(engine) / _cpu(store) if _cpu(store) else None


def _findings(
    ee: Span, es: Span, de: Span, ds: Span, turns: Span, micro: dict[str, float]
) -> list[str]:
    """What the numbers say, in words (computed from this run's measurements)."""
    e, s, d, b, t = ee.as_dict(), es.as_dict(), de.as_dict(), ds.as_dict(), turns.as_dict()
    return [
        (
            f"Wall time per event is well above this process's CPU per event, so commit "
            f"latency (one fsync per group commit) and the machine's other load set the pace: "
            f"echo engine {e['wall_ms_per_commit']:.1f} ms/commit carrying "
            f"{e['events_per_commit']:.0f} events vs store {s['wall_ms_per_commit']:.1f} ms/commit "
            f"carrying {s['events_per_commit']:.0f}; process CPU {_cpu(ee):.0f} vs {_cpu(es):.0f} "
            f"µs/event against {e['wall_us_per_event']:.0f} vs {s['wall_us_per_event']:.0f} µs "
            "of wall time per event."
        ),
        (
            f"demo: the engine's commits carry {d['events_per_commit']:.0f} events vs the "
            f"store's {b['events_per_commit']:.0f}; the store baseline given "
            f"{ENGINE_RUN_TURNS} extra loop turns between runs drops to "
            f"{t['events_per_commit']:.0f} events/commit ({t['events_per_s']:,.0f} events/s): the "
            "turns between a run's last commit and the next run's first append make that "
            "append miss the writer's next batch, and the workers split into cohorts that "
            "commit alternately."
        ),
        (
            f"CPU the engine adds on the event-loop thread: echo "
            f"{_diff_cpu(ee, es):.0f} µs/event, demo {_diff_cpu(de, ds):.0f} µs/event "
            f"(NewEvent validated {micro['NewEvent(...) validated']:.1f} µs, uuid7 id "
            f"{micro['uuid7 event id']:.1f} µs, a task per run "
            f"{micro['create_task+await (per task)']:.1f} µs; see profile)."
        ),
    ]


def _loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def _diff_us(engine: Span, store: Span) -> float:
    e = engine.wall_s / engine.events if engine.events else 0.0
    s = store.wall_s / store.events if store.events else 0.0
    return (e - s) * 1e6


def _diff_cpu(engine: Span, store: Span) -> float:
    e = engine.loop_cpu_s / engine.events if engine.events else 0.0
    s = store.loop_cpu_s / store.events if store.events else 0.0
    return (e - s) * 1e6


async def run_engine_command(quick: bool, json_only: bool, scale: float = 1.0) -> int:
    """`agentdeck bench engine [--json] [--quick]`: JSON on stdout, progress on stderr."""
    from bench.common import Progress, emit_json, summary_lines

    progress = Progress(quiet=json_only)
    result = await run_engine_bench(quick, progress, scale)
    emit_json(result)
    if not json_only:
        for line in summary_lines(result["figures"]):
            print(line, file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m bench.engine [--json] [--quick] [--scale X]`."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.engine")
    parser.add_argument("--json", action="store_true", help="only the JSON on stdout")
    parser.add_argument("--quick", action="store_true", help="a shorter run (< 1 minute)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the sizes")
    args = parser.parse_args(argv)
    return asyncio.run(run_engine_command(args.quick, args.json, args.scale))


if __name__ == "__main__":
    raise SystemExit(main())
