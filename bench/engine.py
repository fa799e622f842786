"""`agentdeck bench engine`: what the engine costs per event, next to the store's own cost.

Each figure stands next to the store alone doing the same appends, measured in
the same run on a fresh database file with the same pragmas
(`EventStore.open(watch=False, index=False)`, synchronous=FULL) on both sides:

- echo: 100 `builtin:echo` workers, N inputs sent concurrently (one sender per
  worker), timed from the first send to the last `run.completed` seen by a
  subscriber.
- demo: 50 `builtin:demo` workers (pace 0, fail rate 0.1) kept busy for a
  fixed window (at most 2 runs outstanding per worker, topped up as runs
  finish); the baseline appends as many events of the same kind of runs.

The baseline replays the engine's own events: those an engine run of the same
kind committed, read back and rebuilt through `store.catalog.event`, appended
with the engine's grouping (input + run.created together, then one append per
run event) by the same concurrency (per worker, one input producer handing
runs to one run producer, the demo's gating and pace sleeps kept), ids made
before the clock starts and stamped in append order (as the engine's are made
at submit time), watched by the same subscriber: what the engine could at
best do per event. A figure's ratio is the store's events/s over the engine's
(engine cost per event / store cost per event); the goal is <= 2.

`notes` breaks the cost down: CPU µs/event of the event-loop thread and of
the other threads (the writer's SQLite work), micro-timings of the engine's
per-event building blocks, and two experiments: the echo pair at
synchronous=NORMAL and the demo baseline with the engine's loop turns between
runs added. (For where the loop's time goes, run it under a profiler.)

Commands (bench.commands): `send_input` issued through the command inbox to a
host in another process, from the call until its answer is back, beside the
same call made locally (goal: p99 <= 50 ms); and the commands answered per
second with five issuing processes at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import math
import shutil
import tempfile
import time
import timeit
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.commands import ISSUERS, command_latency, command_throughput
from bench.common import Goal, Progress, data_dir, figure, finish, loadavg, machine_info, now
from engine.clock import Uuid7Ids
from engine.profiles import BuiltinProfile, ProfileSet
from engine.results import CreateWorkerRequest
from engine.run_context import one_line
from engine.runtime import Runtime
from store import catalog
from store.database import OpenOptions
from store.event_store import EventStore
from store.models import Event, NewEvent, Role, RoleIntent

ProgressFn = Callable[[str], None]

RUNTIME = "bench"
ECHO_WORKERS = 100
DEMO_WORKERS = 50
DEMO_PROFILE = "bench-demo"
DEMO_SETTINGS: dict[str, float] = {"pace": 0.0, "steps": 3, "fail_rate": 0.1, "tool_rate": 0.7}
TERMINAL_KINDS = frozenset({"run.completed", "run.failed", "run.cancelled"})
# input.accepted, run.created, planning, executing, worker.output, verifying, completed
ECHO_EVENTS_PER_INPUT = 7
OUTSTANDING_PER_DEMO_WORKER = 2  # runs queued or running per demo worker, so none idles
# Event-loop turns from a run's last commit to the next run's first append in the engine's
# worker loop: the run task ends, shield's callback completes its outer future, the loop
# resumes and creates the next run task, whose first step appends run.planning.
ENGINE_RUN_TURNS = 4
COST_GOAL = Goal("ratio", "<=", 2.0, "engine cost per event <= 2x the store's (ratio <= 2)")
COMMAND_GOAL = Goal("value", "<=", 50.0, "a command's answer back at its issuer within 50 ms (p99)")


@dataclass(frozen=True)
class Sizes:
    echo_inputs: int
    demo_seconds: float
    demo_warmup_s: float
    rounds: int
    command_samples: int
    commands_per_issuer: int


def sizes(quick: bool, scale: float) -> Sizes:
    """Several short alternating rounds rather than one long one: on a busy machine the
    load changes from second to second, and medians ride it out."""
    inputs, seconds, rounds = (1_000, 2.0, 3) if quick else (4_000, 5.0, 5)
    return Sizes(
        echo_inputs=max(ECHO_WORKERS, round(inputs * scale)),
        demo_seconds=max(0.3, seconds * scale),
        demo_warmup_s=max(0.1, min(1.0, seconds * scale * 0.1)),
        rounds=rounds,
        command_samples=max(50, round((300 if quick else 1_000) * scale)),
        commands_per_issuer=max(20, round((100 if quick else 400) * scale)),
    )


# -- measurement plumbing ----------------------------------------------------------


@dataclass
class Span:
    """Wall and CPU time of a window, and the events, runs and commits in it."""

    wall_s: float = 0.0
    events: int = 0
    loop_cpu_s: float = 0.0
    process_cpu_s: float = 0.0
    runs: int = 0
    commits: int = 0

    @property
    def events_per_s(self) -> float:
        return self.events / self.wall_s if self.wall_s else 0.0

    def per_event_us(self, seconds: float) -> float:
        return seconds / self.events * 1e6 if self.events else 0.0

    def as_dict(self) -> dict[str, Any]:
        per_commit = 1 / self.commits if self.commits else 0.0
        return {
            "wall_s": self.wall_s,
            "events": self.events,
            "runs": self.runs,
            "events_per_s": self.events_per_s,
            "commits": self.commits,
            "events_per_commit": self.events * per_commit,
            "wall_ms_per_commit": self.wall_s * 1e3 * per_commit,
            "wall_us_per_event": self.per_event_us(self.wall_s),
            "loop_thread_cpu_us_per_event": self.per_event_us(self.loop_cpu_s),
            "other_threads_cpu_us_per_event": self.per_event_us(
                self.process_cpu_s - self.loop_cpu_s
            ),
        }


class Stopwatch:
    """Times a `Span` against the store's published position; a feed listener counts
    commits (the feed hands each local commit over as one batch)."""

    def __init__(self, store: EventStore) -> None:
        self._store = store
        self._commits = 0
        self._counting = False
        store.feed.add_listener(self._on_commit)

    def _on_commit(self, _events: list[Event]) -> None:
        self._commits += self._counting

    def start(self) -> None:
        self._commits, self._counting = 0, True
        self._pos0 = self._store.feed.last_position
        self._loop0, self._proc0, self._t0 = time.thread_time(), time.process_time(), now()

    def stop(self, runs: int = 0) -> Span:
        t1, loop1, proc1 = now(), time.thread_time(), time.process_time()
        self._counting = False
        return Span(
            wall_s=t1 - self._t0,
            events=self._store.feed.last_position - self._pos0,
            loop_cpu_s=loop1 - self._loop0,
            process_cpu_s=proc1 - self._proc0,
            runs=runs,
            commits=self._commits,
        )


class RunWatcher:
    """One subscriber (the same on both sides): counts finished runs, releases per-worker gates."""

    def __init__(self, store: EventStore, expected: int | None = None) -> None:
        self.finished = 0
        self.expected = expected
        self.all_done = asyncio.Event()
        self.per_worker: dict[str, asyncio.Semaphore] = {}
        self._sub = store.subscribe(store.feed.last_position)
        self._task = asyncio.create_task(self._watch(), name="bench-watcher")

    async def _watch(self) -> None:
        async for item in self._sub:
            # (a Lag notice is not an Event: the replay that follows covers it)
            if isinstance(item, Event) and item.kind in TERMINAL_KINDS:
                self.finished += 1
                if (gate := self.per_worker.get(item.worker_id or "")) is not None:
                    gate.release()
                if self.expected is not None and self.finished >= self.expected:
                    self.all_done.set()

    async def close(self) -> None:
        self._sub.close()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@contextlib.asynccontextmanager
async def fresh_store(tag: str, synchronous: str = "FULL") -> AsyncIterator[EventStore]:
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


async def _cleanup_gc() -> None:
    gc.collect()
    await asyncio.sleep(0)


# -- the engine side -----------------------------------------------------------------


async def _host(store: EventStore, workers: int, profile: str) -> tuple[Runtime, list[Any]]:
    demo = BuiltinProfile(name=DEMO_PROFILE, builtin="demo", demo=dict(DEMO_SETTINGS))
    profiles = ProfileSet(profiles={DEMO_PROFILE: demo}, default_profile=None)
    runtime = await Runtime.host(store, RUNTIME, profiles=profiles)
    records = await asyncio.gather(*(
        runtime.create_worker(
            CreateWorkerRequest(intent=RoleIntent(role=f"bench-{i + 1}"), profile=profile)
        )
        for i in range(workers)
    ))
    return runtime, [r.ref for r in records]


async def engine_echo(store: EventStore, inputs: int) -> Span:
    runtime, refs = await _host(store, ECHO_WORKERS, "builtin:echo")
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
            for ref, n in zip(refs, _spread(inputs, ECHO_WORKERS), strict=True)
        ]
        await watcher.all_done.wait()
        span = watch.stop(runs=watcher.finished)
        await asyncio.gather(*senders)
        await watcher.close()
        return span
    finally:
        await runtime.close()


async def engine_demo(store: EventStore, seconds: float, warmup_s: float) -> Span:
    runtime, refs = await _host(store, DEMO_WORKERS, DEMO_PROFILE)
    try:
        await _cleanup_gc()
        watcher = RunWatcher(store)
        sent = 0
        stopping = False

        async def feeder(ref: Any) -> None:
            nonlocal sent
            gate = watcher.per_worker[ref.worker_id] = asyncio.Semaphore(
                OUTSTANDING_PER_DEMO_WORKER
            )
            for k in itertools.count(1):
                await gate.acquire()
                if stopping:
                    return
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
        for gate in watcher.per_worker.values():
            gate.release()
        await asyncio.gather(*feeders)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(60):
                while watcher.finished < sent:
                    await asyncio.sleep(0.01)
        await watcher.close()
        return span
    finally:
        await runtime.close()


# -- the store side (baseline): the engine's own events, replayed ---------------------


@dataclass(frozen=True)
class PlannedRun:
    """One run as the store sees it: the input append, then one append per run event."""

    input_append: list[NewEvent]
    run_events: list[NewEvent]
    pauses: frozenset[int]  # run events the demo driver sleeps `pace` before

    @property
    def worker_id(self) -> str:
        return self.input_append[0].worker_id or ""

    @property
    def size(self) -> int:
        return len(self.input_append) + len(self.run_events)


@dataclass(frozen=True)
class Recording:
    """What an engine run committed: setup events, then its finished runs in input order."""

    setup: list[NewEvent]
    runs: list[PlannedRun]

    def plans(self, events: float = math.inf) -> list[list[PlannedRun]]:
        """Per worker, its runs in order: whole runs, in input order, until `events`."""
        per_worker: dict[str, list[PlannedRun]] = {}
        total = 0
        for run in self.runs:
            if total >= events:
                break
            per_worker.setdefault(run.worker_id, []).append(run)
            total += run.size
        return list(per_worker.values())


def _renewed(event: Event) -> NewEvent:
    """A committed event built again through the catalog, as its producer built it."""
    return catalog.event(
        event.kind, catalog.payload_of(event), event_id=event.event_id, at=event.at,
        message=event.message, worker_id=event.worker_id, run_id=event.run_id,
        run_seq=event.run_seq,
    )


def _paused_before(events: Sequence[Event], i: int) -> bool:
    """Where `builtin:demo` sleeps `pace`: before a tool completes, after a step without one."""
    kind, before = events[i].kind, events[i - 1].kind if i else ""
    return kind == "run.tool.completed" or (
        before == "run.step.started" and kind != "run.tool.started"
    )


async def record(store: EventStore) -> Recording:
    """Read back what the engine committed to `store` (untimed)."""
    events: list[Event] = []
    while batch := (await store.read_after(events[-1].position if events else 0, 10_000)).events:
        events += batch
    first_run = next((i for i, e in enumerate(events) if e.run_id is not None), len(events))
    runs: dict[str, list[Event]] = {}
    for event in events[first_run:]:
        if event.run_id is not None:
            runs.setdefault(event.run_id, []).append(event)
    planned = []
    for run in runs.values():  # in the order their inputs committed
        if run[-1].kind in TERMINAL_KINDS and run[0].kind == "worker.input.accepted":
            rest = run[2:]
            pauses = frozenset(i for i in range(len(rest)) if _paused_before(rest, i))
            planned.append(PlannedRun([_renewed(e) for e in run[:2]], [_renewed(e) for e in rest],
                                      pauses))
    return Recording([_renewed(e) for e in events[:first_run]], planned)


async def store_replay(
    store: EventStore,
    recording: Recording,
    plans: Sequence[Sequence[PlannedRun]],
    *,
    outstanding: int | None = None,
    pace: float | None = None,
    hops_between_runs: int = 0,
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
    await store.append(RUNTIME, 0, recording.setup)
    last = len(recording.setup)
    # Event ids in append order, as the engine's (uuid7 made at submit time): ids in
    # plan order would land all over the event_id index and cost the store extra.
    ids = Uuid7Ids()
    id_pool = iter(sorted(ids.event_id() for p in plans for r in p for _ in range(r.size)))
    await _cleanup_gc()
    watcher = RunWatcher(store, expected=sum(map(len, plans)))

    async def append(events: list[NewEvent]) -> None:
        nonlocal last
        for event in events:
            # Stamping the id in place costs ~0.1 µs, model_copy would charge ~3 µs an event.
            object.__setattr__(event, "event_id", next(id_pool))
        expected, last = last, last + len(events)
        await store.append(RUNTIME, expected, events)

    async def inputs(runs: Sequence[PlannedRun], handoff: asyncio.Queue[PlannedRun | None]) -> None:
        gate = watcher.per_worker.get(runs[0].worker_id)
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

    if outstanding is not None:
        for runs in plans:
            watcher.per_worker[runs[0].worker_id] = asyncio.Semaphore(outstanding)
    watch = Stopwatch(store)
    watch.start()
    tasks = []
    for runs in plans:
        handoff: asyncio.Queue[PlannedRun | None] = asyncio.Queue()
        tasks += [asyncio.create_task(inputs(runs, handoff)), asyncio.create_task(runner(handoff))]
    await watcher.all_done.wait()
    span = watch.stop(runs=watcher.finished)
    await asyncio.gather(*tasks)
    await watcher.close()
    return span


async def store_demo(store: EventStore, recording: Recording, events: int, hops: int = 0) -> Span:
    """Whole demo runs of the recording, about `events` events, gated and paced like the demo."""
    return await store_replay(
        store, recording, recording.plans(events), outstanding=OUTSTANDING_PER_DEMO_WORKER,
        pace=DEMO_SETTINGS["pace"], hops_between_runs=hops,
    )


# -- micro-timings and profile -------------------------------------------------------------


def micro_costs() -> dict[str, float]:
    """µs per call of the building blocks the engine adds to every event (loop thread)."""
    ids = Uuid7Ids()
    at = datetime.now(UTC)
    where: dict[str, Any] = {
        "event_id": ids.event_id(), "at": at, "message": "assistant: echo: bench input",
        "worker_id": "w-1", "run_id": "w-1.r1", "run_seq": 5,
    }
    payload = catalog.TranscriptAppended(role=Role.ASSISTANT, content="echo: input", sequence=2)
    as_dict = payload.as_dict()

    async def tasks() -> None:
        async def noop() -> None:
            return None

        for _ in range(1000):
            await asyncio.create_task(noop())

    def one(fn: Callable[[], Any], n: int = 10_000) -> float:
        return min(timeit.repeat(fn, number=n, repeat=3)) / n * 1e6

    return {
        "catalog.event(...) validated": one(
            lambda: catalog.event("worker.output", payload, **where)
        ),
        "NewEvent.model_construct": one(lambda: NewEvent.model_construct(
            kind="worker.output", payload=as_dict, **where
        )),
        "uuid7 event id": one(ids.event_id),
        "datetime.now(UTC)": one(lambda: datetime.now(UTC)),
        "one_line(message)": one(lambda: one_line("assistant: echo: bench input 12 for w-3")),
        "create_task+await (per task)": one(lambda: asyncio.run(tasks()), 1) / 1000,
    }


# -- the suite ---------------------------------------------------------------------


def _median(spans: list[Span]) -> Span:
    """The round with the median rate (the upper one of an even count)."""
    return sorted(spans, key=lambda s: s.events_per_s)[len(spans) // 2]


def _ratio(store: float, engine: float) -> float:
    return store / engine if engine else math.nan


def _compared(
    engine: list[Span], store: list[Span], baseline_desc: str, desc: str
) -> dict[str, Any]:
    """An events/s figure: the median rounds, per-event costs, every round's rates."""
    e, s = _median(engine), _median(store)
    return figure(
        value=e.events_per_s, unit="events/s", baseline=s.events_per_s,
        baseline_desc=baseline_desc, desc=desc, goal=COST_GOAL,
        ratio=_ratio(s.events_per_s, e.events_per_s),
        cpu_ratio=_cpu(e) / _cpu(s) if _cpu(s) else None,
        engine=e.as_dict(),
        store=s.as_dict(),
        rounds_value=[x.events_per_s for x in engine],
        rounds_baseline=[x.events_per_s for x in store],
        paired_round_ratios=[_ratio(b.events_per_s, a.events_per_s)
                             for a, b in zip(engine, store, strict=True)],
    )


async def run_engine_bench(
    quick: bool, progress: ProgressFn | None = None, scale: float = 1.0
) -> dict[str, Any]:
    """Run the engine benchmarks; the JSON-able result (figures, baselines, ratios, notes)."""
    say = progress or (lambda _m: None)
    size = sizes(quick, scale)
    started = now()
    machine = machine_info(data_dir())

    def said(what: str, span: Span) -> Span:
        say(f"{what}: {span.runs} runs, {span.events} events in {span.wall_s:.2f}s"
            f" = {span.events_per_s:,.0f} events/s, {span.as_dict()['events_per_commit']:.1f}"
            " events/commit")
        return span

    # 1. echo: inputs through 100 echo workers vs the same append stream straight into the
    #    store (recorded from the first engine round; the sides alternate going first).
    echo_engine: list[Span] = []
    echo_store: list[Span] = []
    echo = Recording([], [])
    for r in range(size.rounds):
        for side in ("engine", "store") if r % 2 == 0 else ("store", "engine"):
            what = f"echo round {r + 1}/{size.rounds} {side:6}"
            async with fresh_store(f"echo-{side}") as store:
                if side == "engine":
                    echo_engine.append(said(what, await engine_echo(store, size.echo_inputs)))
                    echo = echo if echo.runs else await record(store)
                else:
                    echo_store.append(said(what, await store_replay(store, echo, echo.plans())))

    # 2. demo: busy demo workers for a window vs the store appending as many of their events.
    demo_engine: list[Span] = []
    demo_store: list[Span] = []
    for r in range(size.rounds):
        async with fresh_store("demo-engine") as store:
            span = said(f"demo round {r + 1}/{size.rounds} engine",
                        await engine_demo(store, size.demo_seconds, size.demo_warmup_s))
            demo = await record(store)
        demo_engine.append(span)
        async with fresh_store("demo-store") as store:
            demo_store.append(said(f"demo round {r + 1}/{size.rounds} store ",
                                   await store_demo(store, demo, span.events)))

    # 3. the echo pair without the per-commit fsync (synchronous=NORMAL on both sides):
    #    how much of the gap is CPU rather than commit latency.
    nosync_inputs = max(ECHO_WORKERS, min(size.echo_inputs, 3_000))
    async with fresh_store("echo-normal-store", synchronous="NORMAL") as store:
        plans = [runs[:n] for runs, n in zip(
            echo.plans(), _spread(nosync_inputs, ECHO_WORKERS), strict=True)]
        nosync_store = said("echo synchronous=NORMAL store ", await store_replay(store, echo, plans))
    async with fresh_store("echo-normal-engine", synchronous="NORMAL") as store:
        nosync_engine = said("echo synchronous=NORMAL engine",
                             await engine_echo(store, nosync_inputs))

    # 4. the demo gap without the engine: the store baseline with the loop turns the
    #    engine spends between one run's last commit and the next run's first append.
    async with fresh_store("demo-turns") as store:
        turns = said(f"demo store with {ENGINE_RUN_TURNS} loop turns between runs",
                     await store_demo(store, demo, _median(demo_engine).events, ENGINE_RUN_TURNS))

    # 5. where the time goes.
    say("micro-timings of the engine's per-event building blocks")
    micro = await asyncio.to_thread(micro_costs)

    # 6. commands through the inbox, host in another process.
    work = Path(tempfile.mkdtemp(prefix="engine-commands-", dir=data_dir()))
    try:
        say(f"command latency: {size.command_samples} inputs through the inbox and locally")
        latency = await command_latency(work, size.command_samples)
        say(f"command latency p50/p99 {latency['command']['p50']:.1f}/"
            f"{latency['command']['p99']:.1f} ms (local {latency['local']['p50']:.1f}/"
            f"{latency['local']['p99']:.1f} ms)")
        throughput = await command_throughput(work, size.commands_per_issuer)
        say(f"command throughput: {throughput['per_s']:,.0f} commands/s from {ISSUERS} processes")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    ee, es = _median(echo_engine), _median(echo_store)
    de, ds = _median(demo_engine), _median(demo_store)
    echo_inputs_s, store_inputs_s = ee.runs / ee.wall_s, es.runs / es.wall_s
    figures = {
        "echo_inputs_per_s": figure(
            value=echo_inputs_s,
            unit="inputs/s",
            baseline=store_inputs_s,
            baseline_desc="the same input+run append stream straight through EventStore.append",
            desc=f"inputs through {ECHO_WORKERS} echo workers, first send to last run.completed",
            goal=COST_GOAL,
            ratio=_ratio(store_inputs_s, echo_inputs_s),
            inputs=size.echo_inputs,
            rounds_value=[s.runs / s.wall_s for s in echo_engine],
            rounds_baseline=[s.runs / s.wall_s for s in echo_store],
        ),
        "echo_events_per_s": _compared(
            echo_engine, echo_store,
            "EventStore.append of the engine's own echo events, same grouping, same concurrency",
            f"engine events/s with {ECHO_WORKERS} echo workers; ratio = store rate / engine rate",
        ),
        "demo_events_per_s": _compared(
            demo_engine, demo_store,
            "EventStore.append of as many of the engine's own demo events (whole runs), same"
            " grouping, gating and pace",
            f"engine events/s with {DEMO_WORKERS} demo workers (pace 0, fail rate 0.1) over"
            f" {size.demo_seconds:g}s; ratio = store rate / engine rate",
        ),
        "command_latency_ms": figure(
            value=latency["command"]["p99"],
            unit="ms",
            baseline=latency["local"]["p99"],
            baseline_desc="the same send_input called on a runtime hosted in this process,"
            " same database file",
            desc="send_input issued through the command inbox to a host in another process,"
            " from the call until its answer is back at the issuer (p99)",
            goal=COMMAND_GOAL,
            command=latency["command"],
            local=latency["local"],
        ),
        "command_throughput_per_s": figure(
            value=throughput["per_s"],
            unit="commands/s",
            baseline=latency["local"]["p50"] and 1000.0 / latency["local"]["p50"],
            baseline_desc="one local send_input at a time in this process (1 / its p50):"
            " what a single local caller gets, for scale",
            goal=None,
            desc=f"send_input commands answered per second, {ISSUERS} issuing processes with"
            " 10 in flight each, one host process with one echo worker running every input",
            **throughput,
        ),
    }
    notes = {
        "findings": _findings(ee, es, de, ds, turns, micro),
        "method": (
            "Each side on a fresh database file (same pragmas: EventStore.open defaults, "
            "synchronous=FULL, watch=False, index=False), one subscriber counting finished runs "
            "on both sides. Each side's figure is its median round (echo rounds alternate which "
            "side goes first); paired_round_ratios are the per-round ratios. The baseline "
            "replays the events an engine run committed (echo: the first round's; demo: the same "
            "round's), rebuilt through store.catalog.event before its clock starts, with "
            "pre-made uuid7 ids stamped in append order (ids in plan order would scatter over "
            "the event_id index and cost the writer ~20 µs/event more), so its figure is the "
            "store alone. Ratios: store events/s over engine events/s (wall); cpu_ratio: engine "
            "process CPU per event over the store's."
        ),
        "per_event_cost_us": {
            "echo_engine": ee.as_dict(),
            "echo_store": es.as_dict(),
            "demo_engine": de.as_dict(),
            "demo_store": ds.as_dict(),
            "echo_engine_minus_store_wall_us": _diff(ee, es, "wall_s"),
            "echo_engine_minus_store_loop_cpu_us": _diff(ee, es, "loop_cpu_s"),
            "demo_engine_minus_store_wall_us": _diff(de, ds, "wall_s"),
            "demo_engine_minus_store_loop_cpu_us": _diff(de, ds, "loop_cpu_s"),
        },
        "echo_synchronous_normal": {
            "desc": "informational, not a goal: the echo comparison with synchronous=NORMAL on"
            " both sides (no fsync per commit), so CPU rather than commit latency decides",
            "engine_events_per_s": nosync_engine.events_per_s,
            "store_events_per_s": nosync_store.events_per_s,
            "ratio": _ratio(nosync_store.events_per_s, nosync_engine.events_per_s),
            "engine": nosync_engine.as_dict(),
            "store": nosync_store.as_dict(),
        },
        "demo_store_with_engine_run_turns": {
            "desc": f"the demo baseline again with {ENGINE_RUN_TURNS} event-loop turns before"
            " each run's first append (what the engine's worker loop spends between runs: run"
            " task ends, shield callback, loop resumes and creates the next run task, the task's"
            " first step); compare events_per_commit with demo_engine's",
            **turns.as_dict(),
        },
        "micro_us_per_call": micro,
    }
    return {
        "suite": "engine",
        "quick": quick,
        "scale": scale,
        "sizes": size.__dict__,
        "machine": machine,
        "loadavg_1m_at_end": loadavg(),
        "elapsed_s": now() - started,
        "figures": figures,
        "notes": notes,
    }


def _cpu(span: Span) -> float:
    return span.per_event_us(span.process_cpu_s)


def _diff(engine: Span, store: Span, field: str) -> float:
    """µs per event the engine adds over the store, of wall time or loop-thread CPU."""
    return engine.per_event_us(getattr(engine, field)) - store.per_event_us(getattr(store, field))


def _findings(
    ee: Span, es: Span, de: Span, ds: Span, turns: Span, micro: dict[str, float]
) -> list[str]:
    """What the numbers say, in words (computed from this run's measurements)."""
    e, s, d, b, t = ee.as_dict(), es.as_dict(), de.as_dict(), ds.as_dict(), turns.as_dict()
    return [
        f"Wall time per event is well above this process's CPU per event, so commit latency"
        f" (one fsync per group commit) and the machine's other load set the pace: echo engine"
        f" {e['wall_ms_per_commit']:.1f} ms/commit carrying {e['events_per_commit']:.0f} events"
        f" vs store {s['wall_ms_per_commit']:.1f} ms/commit carrying"
        f" {s['events_per_commit']:.0f}; process CPU {_cpu(ee):.0f} vs {_cpu(es):.0f} µs/event"
        f" against {e['wall_us_per_event']:.0f} vs {s['wall_us_per_event']:.0f} µs of wall time"
        " per event.",
        f"demo: the engine's commits carry {d['events_per_commit']:.0f} events vs the store's"
        f" {b['events_per_commit']:.0f}; the store baseline given {ENGINE_RUN_TURNS} extra loop"
        f" turns between runs drops to {t['events_per_commit']:.0f} events/commit"
        f" ({t['events_per_s']:,.0f} events/s): the turns between a run's last commit and the"
        " next run's first append make that append miss the writer's next batch, and the"
        " workers split into cohorts that commit alternately.",
        f"CPU the engine adds on the event-loop thread: echo {_diff(ee, es, 'loop_cpu_s'):.0f}"
        f" µs/event, demo {_diff(de, ds, 'loop_cpu_s'):.0f} µs/event (catalog.event validated"
        f" {micro['catalog.event(...) validated']:.1f} µs, uuid7 id"
        f" {micro['uuid7 event id']:.1f} µs, a task per run"
        f" {micro['create_task+await (per task)']:.1f} µs).",
    ]


async def run_engine_command(quick: bool, json_only: bool, scale: float = 1.0) -> int:
    """`python -m bench engine [--json] [--quick]`: JSON on stdout, progress on stderr."""
    return finish(await run_engine_bench(quick, Progress(quiet=json_only), scale), json_only)
