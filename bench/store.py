"""`agentdeck bench store`: the store's figures, each next to a raw-sqlite3 baseline.

Every baseline is measured in the same run, on the same disk, with the store's
own pragmas (the raw connections are opened by `store.database`) and writes
the very rows the store writes (`bench.common.row_of` of the same NewEvents).
The figures:

- append_throughput: 50 concurrent producers through the group-commit writer,
  projections and indexer on, vs raw `executemany` batches of 1000 rows.
- append_latency: per-append latency at a steady 1,000 appends/s.
- read_after_1000: `read_after(cursor, 1000)` on the big log vs the raw query.
- text_filter_first_100: the newest 100 matches of a free-text filter.
- indexer_append_cost: append throughput with the FTS indexer on vs off.
- cross_process_visibility: a child process commits, this one has read it.

The big log (1M events; 50k with --quick) is built once with raw sqlite3, the
real schema, projector and FTS indexer step, and cached under bench/data/.
`python -m bench.store child DB COUNT RATE SEED` is the visibility figure's
committing child (DB a path, or `-` for a URL in $AGENTDECK_BENCH_CHILD_DB).

With `--db postgresql://…` the same figures run on that server instead, next
to raw psycopg (bench.store_pg, built from this module's workloads,
measurements and figure builders, which take either store).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from uuid6 import uuid7

from bench.common import (
    Goal,
    Progress,
    build_cached_db,
    data_dir,
    figure,
    finish,
    fresh_raw_db,
    latency_ms,
    machine_info,
    median,
    now,
    peak_rss_mb,
    percentile,
    raw_commit,
    raw_insert,
    remove_db,
    row_of,
)
from bench.store_checkpoints import checkpoint_figures
from bench.store_pictures import pictures_figures
from store import catalog as c
from store.database import open_reader
from store.event_store import EventStore
from store.filters import parse_filter
from store.models import Capability, Event, NewEvent, Role, Severity, TaskIntent, WorkerSpec
from store.open import is_server_address, open_store, parse_address
from store.projector import Row
from store.reader import EVENT_COLUMNS
from store.schema import LATEST_VERSION

if TYPE_CHECKING:
    from store.open import AnyStore

__all__ = ["Spec", "fresh_raw_db", "raw_insert", "run_store_bench"]  # bench.console imports these

SIZE_ENV = "AGENTDECK_BENCH_SIZE"  # hidden: "tiny" for the smoke test, or "quick"/"full"
GENERATOR_VERSION = 2  # bump when the dataset's content changes: the cache key has it
RAW_BATCH = 1000
CHUNKED_EVENTS = 20
READ_LIMIT = 1000
MATCH_LIMIT = 100
POLL_S = 0.001
PROJECT_ROOT = str(Path(__file__).resolve().parent.parent)
CHILD_DB_ENV = "AGENTDECK_BENCH_CHILD_DB"

Address = str | Path  # a SQLite file, or a PostgreSQL URL (store.open)


class Spec(NamedTuple):
    """An event before its id and time, as bench.console still builds its rows (dict payload)."""

    kind: str
    worker_id: str | None
    run_id: str | None
    run_seq: int | None
    message: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class Sizes:
    name: str
    dataset_events: int
    producers: int
    events_per_producer: int
    repeats: int
    latency_producers: int
    latency_rate: float  # appends per second, all producers together
    latency_seconds: float
    read_cursors: int
    search_repeats: int
    visibility_samples: int
    visibility_rate: float  # the child's commits per second


SIZES = {
    "full": Sizes("full", 1_000_000, 50, 2_000, 3, 10, 1000.0, 15.0, 300, 15, 600, 50.0),
    "quick": Sizes("quick", 50_000, 50, 300, 2, 10, 1000.0, 3.0, 100, 7, 120, 50.0),
    "tiny": Sizes("tiny", 2_000, 50, 24, 1, 10, 1000.0, 0.3, 8, 2, 12, 100.0),
}


# ---------------------------------------------------------------------------
# What the workers say: a deterministic, realistic mix of catalog events
# ---------------------------------------------------------------------------

# Roughly Zipf-distributed: the first words are the most frequent.
_VOCAB_TEXT = (
    "the to a of in and is for file test that it with on this be not as from at are line by"
    " function return value error should run if all or use module import check build path"
    " code an new data config can we now will tests has was failed passed output which"
    " then read write type call class method string list dict update fix add remove change"
    " version install package request response server client query database table index"
    " cache user input result step plan next first last missing found expected got assert"
    " warning debug info log trace stack frame exception raise handler event worker runtime"
    " queue task job retry timeout connection refused closed reset socket port host network"
    " commit branch merge diff patch review pull push tag release deploy container image"
    " volume mount permission denied directory folder source target compile link binary"
    " library dependency lock upgrade downgrade pin range schema migration column row key"
    " primary foreign constraint unique null default field model view template render"
    " parse token lexer grammar syntax semantic scope closure async await thread process"
    " signal memory leak allocation buffer overflow pointer reference borrow lifetime trait"
    " generic interface protocol abstract concrete factory builder adapter proxy decorator"
    " observer strategy visitor iterator generator coroutine future promise callback"
    " benchmark profile flame latency throughput percentile median"
)
VOCAB = tuple(_VOCAB_TEXT.split())
_CUM_WEIGHTS = list(itertools.accumulate(1.0 / (rank + 1) for rank in range(len(VOCAB))))
COMMANDS = (
    "pytest -q tests/unit", "ruff check .", "mypy store engine", "make build", "npm run test",
    "cargo test --all", "git diff --stat", "ls -la src/", "curl -s http://localhost:8080/health",
    "docker compose up -d db",
)
HOSTS = ("db:5432", "redis:6379", "api.internal:443", "localhost:8080")
RARE_WORD = "segfault"  # about 2 events in 100,000
NO_MATCH_WORD = "xylophone"  # never written

Clock = Callable[[], datetime]


def _words(rng: random.Random, lo: int, hi: int) -> str:
    return " ".join(rng.choices(VOCAB, cum_weights=_CUM_WEIGHTS, k=rng.randint(lo, hi)))


def _event(kind: str, payload: c.Payload, message: str, at: datetime, **where: Any) -> NewEvent:
    return c.event(kind, payload, event_id=uuid7(), at=at, message=message, **where)


def runtime_started(runtime_id: str, clock: Clock) -> NewEvent:
    return _event("runtime.started", c.RuntimeStarted(display_name=runtime_id),
                  f"runtime {runtime_id} started", clock())


def worker_script(rng: random.Random, w: str, tag: str, clock: Clock) -> Iterator[list[NewEvent]]:
    """One worker's appends, forever: created once, then runs of about 16 events.

    Each item is one append (most are one event; input + run.created is two),
    built through the catalog: a contiguous transcript, run phases, step, tool
    and command events, some failures and diagnostics. Times come from `clock`
    as each append is made, so interleaved scripts interleave their times.
    """
    def ev(kind: str, payload: c.Payload, message: str, run: str | None = None) -> NewEvent:
        return _event(kind, payload, message, clock(), worker_id=w, run_id=run,
                      run_seq=next(rseq) if run else None)

    rseq = itertools.count(1)
    yield [ev("worker.created", c.WorkerCreated(spec=WorkerSpec(
        intent=TaskIntent(objective=_words(rng, 4, 12)), capabilities=[Capability(name="shell")],
    )), f"worker {w} created (profile default)")]
    transcript = 0
    for run_no in itertools.count(1):
        run = f"r-{tag}-{w[2:]}-{run_no}"
        rseq = itertools.count(1)
        transcript += 1
        prompt = _words(rng, 6, 24)
        yield [
            ev("worker.input.accepted", c.TranscriptAppended(
                role=Role.USER, content=prompt, sequence=transcript), f"input to {w}: {prompt[:60]}",
               run),
            ev("run.created", c.RunCreated(prompt=prompt, input_sequence=transcript),
               f"run {run} created", run),
        ]
        for phase in ("planning", "executing"):
            yield [ev(f"run.{phase}", c.Empty(), f"run {run} {phase}", run)]
        failed = False
        for step in range(1, rng.randint(1, 2) + 1):
            title = _words(rng, 2, 5)
            yield [ev("run.step.started", c.StepStarted(step=step, title=title),
                      f"step {step}: {title}", run)]
            cmd = rng.choice(COMMANDS)
            argv = cmd.split()
            yield [ev("run.tool.started", c.ToolStarted(step=step, tool="shell"),
                      f"tool shell started: {cmd}", run)]
            yield [ev("exec.command.started", c.ProcessFacts(argv=argv, cwd=f"/workspace/{tag}/{w}"),
                      f"$ {cmd}", run)]
            roll = rng.random()
            output = _words(rng, 5, 40)
            if roll < 0.01:
                failed = True
                output += f" timeout waiting for {rng.choice(HOSTS)}"
                yield [ev("exec.command.timeout", c.ProcessFacts(argv=argv, timeout_s=30),
                          f"$ {cmd} timed out after 30 s", run)]
            elif roll < 0.05:
                failed = True
                code = rng.choice((1, 2, 127))
                output += f" connection refused by {rng.choice(HOSTS)}" if roll < 0.03 else ""
                yield [ev("exec.command.failed", c.ProcessFacts(
                    argv=argv, exit_code=code, stderr_tail=[output[-200:]]),
                    f"$ {cmd} exited {code}", run)]
            else:
                took = rng.randint(20, 9000)
                yield [ev("exec.command.completed", c.ProcessFacts(
                    argv=argv, exit_code=0, duration_s=took / 1000),
                    f"$ {cmd} exited 0 in {took} ms", run)]
            if rng.random() < 0.0002:
                output += f" {RARE_WORD} in worker pool"
            yield [ev("run.tool.completed", c.ToolCompleted(
                step=step, tool="shell", duration_ms=rng.randint(20, 9000)),
                f"tool shell {'failed' if failed else 'completed'}", run)]
            transcript += 1
            yield [ev("worker.output", c.TranscriptAppended(
                role=Role.TOOL, content=output, sequence=transcript), f"{w} tool: {output[:70]}",
                run)]
        for _ in range(rng.randint(1, 2)):
            transcript += 1
            answer = _words(rng, 10, 60)
            yield [ev("worker.output", c.TranscriptAppended(
                role=Role.ASSISTANT, content=answer, sequence=transcript), f"{w}: {answer[:70]}",
                run)]
        if rng.random() < 0.03:
            text = f"output of {w} was cut at 64 KiB"
            yield [ev("diagnostic.raised", c.DiagnosticRaised(
                severity=Severity.WARNING, code="worker.output_truncated", message=text), text)]
        yield [ev("run.verifying", c.Empty(), f"run {run} verifying", run)]
        if failed or rng.random() < 0.02:
            error = f"step failed: {_words(rng, 3, 10)}"
            yield [ev("run.failed", c.RunFailed(error=error), f"run {run} failed: {error}", run)]
        else:
            yield [ev("run.completed", c.RunCompleted(result=_words(rng, 5, 20)),
                      f"run {run} completed", run)]


Append = tuple[str, list[NewEvent]]  # (runtime_id, events) of one append call


@dataclass
class Workload:
    """What producers append: untimed setup, then each producer's own appends."""

    setup: list[Append] = field(default_factory=list)
    producers: list[tuple[str, list[list[NewEvent]]]] = field(default_factory=list)

    @property
    def events(self) -> int:
        return sum(len(evs) for _, appends in self.producers for evs in appends)

    @property
    def appends(self) -> int:
        return sum(len(appends) for _, appends in self.producers)

    def regrouped(self, min_events: int) -> Workload:
        """The same events, each producer joining consecutive appends up to `min_events`."""
        producers = []
        for rt, appends in self.producers:
            joined: list[list[NewEvent]] = []
            for events in appends:
                if joined and len(joined[-1]) < min_events:
                    joined[-1] = joined[-1] + events
                else:
                    joined.append(list(events))
            producers.append((rt, joined))
        return Workload(self.setup, producers)

    def raw_rows(self) -> tuple[list[Row], list[list[Row]]]:
        """The same events as stored rows: setup rows, then one list per timed append, in
        round-robin order (every producer's k-th append before anyone's (k+1)-th)."""
        seqs: dict[str, int] = {}
        position = itertools.count(1)

        def rows(rt: str, events: list[NewEvent]) -> list[Row]:
            out = []
            for ev in events:
                seqs[rt] = seqs.get(rt, 0) + 1
                out.append(row_of(next(position), rt, seqs[rt], ev))
            return out

        setup = [r for rt, evs in self.setup for r in rows(rt, evs)]
        rounds = itertools.zip_longest(*(appends for _, appends in self.producers))
        order = [(self.producers[p][0], a) for rnd in rounds for p, a in enumerate(rnd) if a]
        return setup, [rows(rt, evs) for rt, evs in order]


def make_workload(
    *, producers: int, tag: str, seed: int, events_each: int = 0, appends_each: int = 0,
    created_in_setup: bool = False,
) -> Workload:
    """`producers` workers spread over runtimes of ten workers each, built round-robin so
    event ids and times interleave as they would live."""
    runtimes = [f"{tag}-{i}" for i in range(max(1, producers // 10))]
    ticks = itertools.count()
    base = datetime.now(UTC)

    def clock() -> datetime:
        return base + timedelta(microseconds=50 * next(ticks))

    load = Workload(setup=[(rt, [runtime_started(rt, clock)]) for rt in runtimes])
    scripts = []
    for p in range(producers):
        rt = runtimes[p % len(runtimes)]
        script = worker_script(random.Random(seed * 7919 + p), f"w-{p // len(runtimes) + 1}", rt,
                               clock)
        if created_in_setup:
            load.setup.append((rt, next(script)))
        scripts.append(script)
        load.producers.append((rt, []))
    counts = [0] * producers
    active = list(range(producers))
    while active:
        for p in active:
            load.producers[p][1].append(next(scripts[p]))
            counts[p] += len(load.producers[p][1][-1])
        active = [p for p in active if counts[p] < events_each
                  or len(load.producers[p][1]) < appends_each]
    return load


# ---------------------------------------------------------------------------
# 1 and 4b: append throughput, indexer on and off
# ---------------------------------------------------------------------------


def raw_append_throughput(
    path: Path, setup: list[Row], batches: list[list[Row]], projections: bool
) -> float:
    """Events/s of raw executemany, one BEGIN IMMEDIATE/COMMIT per batch."""
    values = [[r.column_values() for r in batch] for batch in batches]
    conn = fresh_raw_db(path)
    try:
        raw_insert(conn, setup, projections=True)
        start = now()
        for batch, vals in zip(batches, values, strict=True):
            raw_commit(conn, vals, batch if projections else ())
        return sum(map(len, batches)) / (now() - start)
    finally:
        conn.close()


async def producers_rate(store: AnyStore, load: Workload) -> float:
    """Events/s of `load`'s producers appending concurrently to `store`, setup untimed."""
    async def produce(runtime_id: str, appends: list[list[NewEvent]]) -> None:
        for events in appends:
            await store.append(runtime_id, None, events)

    for rt, evs in load.setup:
        await store.append(rt, None, evs)
    start = now()
    await asyncio.gather(*(produce(rt, appends) for rt, appends in load.producers))
    return load.events / (now() - start)


async def store_append_throughput(path: Path, load: Workload, index: bool) -> dict[str, float]:
    store = await EventStore.open(path, index=index)
    try:
        out = {"events_per_s": await producers_rate(store, load)}
        if index:
            out["unindexed_at_end"] = await store.last_position() - await store.indexed_position()
            start = now()
            await store.index_now()
            out["index_catch_up_s"] = now() - start
        return out
    finally:
        await store.close()


class ThroughputRows(NamedTuple):
    """The throughput figure's workload, and its events as the raw baselines write them."""

    load: Workload
    setup: list[Row]
    batches: list[list[Row]]  # RAW_BATCH rows each
    # One transaction per round of appends, one per producer: the most the
    # group-commit writer can gather when every producer awaits its append.
    rounds: list[list[Row]]


def throughput_rows(sizes: Sizes, progress: Progress) -> ThroughputRows:
    load = make_workload(
        producers=sizes.producers, tag="bench", seed=1, events_each=sizes.events_per_producer
    )
    setup, appends = load.raw_rows()
    rows = [r for a in appends for r in a]
    progress(
        f"append throughput: {sizes.producers} producers, {load.events} events"
        f" in {load.appends} appends, {sizes.repeats} round(s)"
    )
    return ThroughputRows(
        load, setup, [rows[i : i + RAW_BATCH] for i in range(0, len(rows), RAW_BATCH)], [
            [r for a in appends[i : i + sizes.producers] for r in a]
            for i in range(0, len(appends), sizes.producers)
        ],
    )


async def append_throughput(
    work: Path, sizes: Sizes, progress: Progress
) -> tuple[dict[str, Any], dict[str, Any]]:
    load, setup, batches, rounds = throughput_rows(sizes, progress)
    chunked = load.regrouped(CHUNKED_EVENTS)
    raw: list[float] = []
    raw_proj: list[float] = []
    raw_rounds: list[float] = []
    on: list[dict[str, float]] = []
    off: list[dict[str, float]] = []
    big: list[dict[str, float]] = []
    for r in range(sizes.repeats):
        raw.append(raw_append_throughput(work / "raw.db", setup, batches, projections=False))
        raw_proj.append(raw_append_throughput(work / "rawp.db", setup, batches, projections=True))
        raw_rounds.append(raw_append_throughput(work / "rawr.db", setup, rounds, projections=True))
        # Alternate which store variant goes first, so neither always gets the warmer disk.
        variants = [(True, on), (False, off)] if r % 2 == 0 else [(False, off), (True, on)]
        for index, results in variants:
            results.append(await store_append_throughput(work / f"store-{index}.db", load, index))
        big.append(await store_append_throughput(work / "store-big.db", chunked, True))
        progress(
            f"  round {r + 1}: raw {raw[-1]:,.0f}/s, raw+projections {raw_proj[-1]:,.0f}/s,"
            f" raw+projections grouped like the writer {raw_rounds[-1]:,.0f}/s;"
            f" store {on[-1]['events_per_s']:,.0f}/s, without indexer"
            f" {off[-1]['events_per_s']:,.0f}/s, appends of {CHUNKED_EVENTS}+ events"
            f" {big[-1]['events_per_s']:,.0f}/s"
        )
        for name in ("raw", "rawp", "rawr", "store-True", "store-False", "store-big"):
            remove_db(work / f"{name}.db")
    on_rates = [x["events_per_s"] for x in on]
    off_rates = [x["events_per_s"] for x in off]
    on_rate, off_rate, big_rate = median(on_rates), median(off_rates), median(
        [x["events_per_s"] for x in big])
    base, grouped = median(raw), median(raw_rounds)
    throughput = figure(
        value=on_rate,
        unit="events/s",
        desc=f"EventStore.append through the group-commit writer with projections and the"
        f" indexer (the default store), {load.events} events; {sizes.producers} asyncio"
        f" producers (one worker each, {max(1, sizes.producers // 10)} runtimes), each awaiting"
        " its own append before the next; a worker's run is ~16 catalog events in ~15 appends"
        " (input+run.created, phases, step/tool/command events, transcript output,"
        " diagnostics); expected_seq=None",
        baseline=base,
        baseline_desc="raw sqlite3 executemany of the same event rows in batches of 1000, one"
        " BEGIN IMMEDIATE/COMMIT per batch, fresh file with the real schema and the store's"
        " pragmas (WAL, synchronous=FULL), no projections",
        goal=Goal("ratio", ">=", 0.5, "ratio >= 0.5"),
        baseline_with_projections=median(raw_proj),
        baseline_with_projections_desc="the same raw batches of 1000 plus store.projector.project"
        " on each batch (the projection work the store does, without the store)",
        baseline_grouped_like_writer=grouped,
        baseline_grouped_like_writer_desc=f"raw sqlite3 with projections, one transaction per"
        f" round of {sizes.producers} appends (one per producer,"
        f" ~{load.events * sizes.producers / max(1, load.appends):.0f} events): the most group"
        " commit can gather when every producer awaits its own append, so store/this = the"
        " store's own overhead",
        ratio_to_grouped_like_writer=on_rate / grouped,
        value_big_appends=big_rate,
        value_big_appends_desc=f"the store with the same events, each producer joining"
        f" consecutive appends into appends of {CHUNKED_EVENTS}+ events ({chunked.appends}"
        " appends): how the figure depends on events per append",
        ratio_big_appends=big_rate / base,
        runs=on_rates,
        baseline_runs=raw,
        events=load.events,
        appends=load.appends,
    )
    indexer = figure(
        value=on_rate,
        unit="events/s",
        desc="append throughput (same workload as append_throughput) with the FTS indexer on;"
        " ratio = on/off, slowdown_pct = how much the indexer slows appends",
        baseline=off_rate,
        baseline_desc="the same store and workload opened with index=False",
        goal=Goal("ratio", ">=", 0.9, "ratio >= 0.9 (slows appends by <= 10%)"),
        slowdown_pct=(1 - on_rate / off_rate) * 100,
        runs=on_rates,
        baseline_runs=off_rates,
        unindexed_when_appends_ended=median([x["unindexed_at_end"] for x in on]),
        index_catch_up_s=median([x["index_catch_up_s"] for x in on]),
    )
    return throughput, indexer


# ---------------------------------------------------------------------------
# 2: per-append latency at a steady rate
# ---------------------------------------------------------------------------


async def _paced(
    store: AnyStore, runtime_id: str, appends: list[list[NewEvent]], first_due: float,
    interval: float, service: list[float], from_schedule: list[float],
) -> None:
    """Make each append on its schedule; record its service time and its lateness."""
    for k, events in enumerate(appends):
        due = first_due + k * interval
        if (delay := due - now()) > 0:
            await asyncio.sleep(delay)
        start = now()
        await store.append(runtime_id, None, events)
        end = now()
        service.append(end - start)
        from_schedule.append(end - due)


Paced = tuple[list[float], list[float], float]  # service times, lateness, achieved appends/s


def raw_paced(
    commit: Callable[[list[tuple[Any, ...]]], None], appends: list[list[Row]], interval: float
) -> Paced:
    """`commit` of each append's event values in turn, one every `interval` seconds."""
    service: list[float] = []
    from_schedule: list[float] = []
    values = [[r.column_values() for r in a] for a in appends]
    first_due = now() + 0.05
    for k, rows in enumerate(values):
        due = first_due + k * interval
        if (delay := due - now()) > 0:
            time.sleep(delay)
        start = now()
        commit(rows)
        end = now()
        service.append(end - start)
        from_schedule.append(end - due)
    return service, from_schedule, len(values) / (now() - first_due)


def raw_append_latency(
    path: Path, setup: list[Row], appends: list[list[Row]], interval: float
) -> Paced:
    """One thread, one raw connection: each append its own BEGIN IMMEDIATE/INSERT/COMMIT."""
    conn = fresh_raw_db(path)
    try:
        raw_insert(conn, setup, projections=True)
        return raw_paced(lambda rows: raw_commit(conn, rows), appends, interval)
    finally:
        conn.close()


async def append_latency(work: Path, sizes: Sizes, progress: Progress) -> dict[str, Any]:
    load = latency_workload(sizes, progress)
    store = await EventStore.open(work / "latency.db")
    try:
        paced = await paced_appends(store, load, sizes)
    finally:
        await store.close()
    setup_rows, append_rows = load.raw_rows()
    raw = raw_append_latency(
        work / "latency-raw.db", setup_rows, append_rows, 1.0 / sizes.latency_rate
    )
    remove_db(work / "latency.db")
    remove_db(work / "latency-raw.db")
    return latency_figure(
        paced, raw, load, sizes, store_desc="EventStore.append, defaults",
        baseline_desc="the same appends on the same 1,000/s schedule from one thread with one raw"
        " sqlite3 connection (store pragmas), each append its own BEGIN IMMEDIATE/INSERT/COMMIT"
        " (synchronous=FULL, so one fsync each), no projections: the floor for making one event"
        " durable without batching",
    )


def latency_workload(sizes: Sizes, progress: Progress) -> Workload:
    """The latency figure's appends: `latency_producers` workers, created in the setup."""
    per_producer = max(1, int(sizes.latency_rate / sizes.latency_producers * sizes.latency_seconds))
    progress(
        f"append latency: {sizes.latency_producers} producers, {sizes.latency_rate:.0f} appends/s"
        f" for {sizes.latency_seconds:g}s"
    )
    return make_workload(
        producers=sizes.latency_producers, tag="lat", seed=2, appends_each=per_producer,
        created_in_setup=True,
    )



async def paced_appends(store: AnyStore, load: Workload, sizes: Sizes) -> Paced:
    """`load`'s producers each appending on a fixed schedule, `latency_rate` in all."""
    interval = sizes.latency_producers / sizes.latency_rate
    service: list[float] = []
    from_schedule: list[float] = []
    for rt, evs in load.setup:
        await store.append(rt, None, evs)
    first = now() + 0.05
    await asyncio.gather(*(
        _paced(store, rt, appends, first + i * interval / len(load.producers), interval,
               service, from_schedule)
        for i, (rt, appends) in enumerate(load.producers)
    ))
    return service, from_schedule, load.appends / (now() - first)


def latency_figure(
    paced: Paced, raw: Paced, load: Workload, sizes: Sizes, *, store_desc: str,
    baseline_desc: str,
) -> dict[str, Any]:
    (service, from_schedule, achieved), (raw_service, raw_sched, raw_achieved) = paced, raw
    mine, base = latency_ms(service), latency_ms(raw_service)
    return figure(
        value=mine["p99"],
        unit="ms (p99)",
        desc=f"per-append latency (call to durable commit) of {store_desc},"
        f" {sizes.latency_producers} producers each pacing"
        f" {sizes.latency_rate / sizes.latency_producers:g} appends/s on a fixed schedule"
        " (1-2 events an append), each append awaited",
        baseline=base["p99"],
        baseline_desc=baseline_desc,
        goal=None,
        p50=mine["p50"],
        p90=mine["p90"],
        max=mine["max"],
        baseline_p50=base["p50"],
        baseline_p90=base["p90"],
        baseline_max=base["max"],
        p99_from_schedule=percentile([x * 1000 for x in from_schedule], 99),
        baseline_p99_from_schedule=percentile([x * 1000 for x in raw_sched], 99),
        achieved_appends_per_s=achieved,
        baseline_achieved_appends_per_s=raw_achieved,
        appends=load.appends,
    )


# ---------------------------------------------------------------------------
# The big log, built once and cached
# ---------------------------------------------------------------------------

DATASET_RUNTIMES = ("local", "ci", "nightly", "research")
WORKERS_PER_RUNTIME = 50


def dataset_path(events: int) -> Path:
    return data_dir() / f"store-{events}-g{GENERATOR_VERSION}-v{LATEST_VERSION}.db"


def dataset_batches(events: int, seed: int, batch: int) -> Iterator[list[Row]]:
    """The log: 200 workers on 4 runtimes taking turns at random, about 1.5 s apart."""
    rng = random.Random(seed)
    at = [datetime(2026, 1, 5, tzinfo=UTC)]

    def clock() -> datetime:
        at[0] += timedelta(microseconds=rng.randint(1_000, 3_000_000))
        return at[0]

    scripts = [
        (rt, worker_script(random.Random(rng.random()), f"w-{i}", rt, clock))
        for rt in DATASET_RUNTIMES
        for i in range(1, WORKERS_PER_RUNTIME + 1)
    ]
    seqs: dict[str, int] = {}
    out: list[Row] = []
    position = 0

    def add(rt: str, new: list[NewEvent]) -> None:
        nonlocal position
        for ev in new[: events - position]:
            position += 1
            seqs[rt] = seqs.get(rt, 0) + 1
            out.append(row_of(position, rt, seqs[rt], ev))

    for rt in DATASET_RUNTIMES:
        add(rt, [runtime_started(rt, clock)])
    while position < events:
        rt, script = rng.choice(scripts)
        add(rt, next(script))
        if len(out) >= batch:
            yield out
            out = []
    if out:
        yield out


def _dataset_ok(path: Path, events: int) -> bool:
    try:
        conn = open_reader(path)
    except Exception:
        return False
    try:
        last = conn.execute("SELECT max(position) FROM events").fetchone()[0]
        indexed = conn.execute("SELECT indexed_position FROM search_state").fetchone()[0]
        return bool(last == events and indexed == events)
    except sqlite3.Error:
        return False
    finally:
        conn.close()


def ensure_dataset(events: int, progress: Progress) -> tuple[Path, float]:
    """The cached big log (built now if missing); returns it and the seconds spent building."""
    path = dataset_path(events)
    if path.exists() and _dataset_ok(path, events):
        return path, 0.0
    remove_db(path)
    progress(f"building the {events:,}-event database (once; cached as {path})")
    start = now()
    build_cached_db(path, dataset_batches(events, seed=42, batch=20_000), progress)
    return path, now() - start


# ---------------------------------------------------------------------------
# 3: read 1000 events after a cursor
# ---------------------------------------------------------------------------


READ_SQL = f"SELECT {EVENT_COLUMNS} FROM events e WHERE e.position > ? ORDER BY e.position LIMIT ?"

RawFetch = Callable[[str, tuple[Any, ...]], list[Any]]  # (SQL with `?`, params) -> rows


async def read_after(dataset: Path, sizes: Sizes, progress: Progress) -> dict[str, Any]:
    store = await EventStore.open(dataset, read_only=True, watch=False)
    raw = open_reader(dataset)
    try:
        return await read_after_figure(
            store, lambda sql, params: raw.execute(sql, params).fetchall(), sizes, progress,
            store_desc="read-only store",
            baseline_desc="the same SELECT (store.reader.EVENT_COLUMNS, position > ?, LIMIT 1001)"
            " fetchall on a raw read-only sqlite3 connection in this thread, interleaved with the"
            " store's reads",
            fetch_only_desc="the same SELECT through the store's aiosqlite connection"
            " (Reader.fetchall: thread hop + rows to tuples), without building Event objects",
        )
    finally:
        raw.close()
        await store.close()


async def read_after_figure(
    store: AnyStore, raw_fetch: RawFetch, sizes: Sizes, progress: Progress, *, store_desc: str,
    baseline_desc: str, fetch_only_desc: str,
) -> dict[str, Any]:
    """`store.read_after(cursor, 1000)` at random cursors, interleaved with `raw_fetch` of the
    same SELECT and with the store's own `fetchall` of it."""
    progress(f"read_after(cursor, {READ_LIMIT}): {sizes.read_cursors} cursors")
    sql = READ_SQL
    last = await store.last_position()
    rng = random.Random(3)
    cursors = [rng.randrange(0, max(1, last - READ_LIMIT)) for _ in range(sizes.read_cursors)]
    mine: list[float] = []
    base: list[float] = []
    fetch_only: list[float] = []
    for i, cursor in enumerate([*cursors[:3], *cursors]):
        warm = i < 3
        for which in ((0, 1, 2) if i % 2 else (2, 1, 0)):
            start = now()
            if which == 0:
                rows = raw_fetch(sql, (cursor, READ_LIMIT + 1))
                assert len(rows) == READ_LIMIT + 1 or cursor + READ_LIMIT >= last
            elif which == 1:
                batch = await store.read_after(cursor, READ_LIMIT)
                assert len(batch.events) == min(READ_LIMIT, last - cursor)
            else:
                await store.fetchall(sql, (cursor, READ_LIMIT + 1))
            if not warm:
                (base, mine, fetch_only)[which].append(now() - start)
    m, b, f = (median(x) * 1000 for x in (mine, base, fetch_only))
    return figure(
        value=m,
        unit="ms (median)",
        desc=f"{type(store).__name__}.read_after(cursor, {READ_LIMIT}) ({store_desc}) at"
        f" {last:,} events, median over {len(cursors)} random cursors spread over the log",
        baseline=b,
        baseline_desc=baseline_desc,
        goal=Goal("ratio", "<=", 1.5, "ratio <= 1.5"),
        p90=percentile([x * 1000 for x in mine], 90),
        baseline_p90=percentile([x * 1000 for x in base], 90),
        store_fetch_only_ms=f,
        store_fetch_only_desc=fetch_only_desc,
        log_events=last,
    )


# ---------------------------------------------------------------------------
# 4: free-text filter, newest 100 matches
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchQuery:
    label: str
    text: str  # the filter an operator types
    fts: str  # the FTS5 query the best hand-written SQL uses
    extra_sql: str = ""  # structured terms, over `events e`
    extra_params: tuple[Any, ...] = ()


SEARCHES = (
    SearchQuery("common word", "error", '"error"*'),
    SearchQuery("less common word", "timeout", '"timeout"*'),
    SearchQuery("two words", "connection refused", '"connection"* AND "refused"*'),
    SearchQuery("quoted phrase", '"connection refused"', '"connection refused"'),
    SearchQuery("kind and word", "kind:exec.command.* pytest", '"pytest"*',
                " AND e.kind GLOB ?", ("exec.command.*",)),
    SearchQuery("worker and word", "worker:w-7 failed", '"failed"*',
                " AND e.worker_id = ?", ("w-7",)),
    SearchQuery("rare word", RARE_WORD, f'"{RARE_WORD}"*'),
    SearchQuery("no match", NO_MATCH_WORD, f'"{NO_MATCH_WORD}"*'),
)


async def text_filter(dataset: Path, sizes: Sizes, progress: Progress) -> dict[str, Any]:
    store = await EventStore.open(dataset, read_only=True, watch=False)
    raw = open_reader(dataset)

    def newest(q: SearchQuery, before: int) -> list[Any]:
        sql = (
            f"SELECT {EVENT_COLUMNS} FROM events_fts f JOIN events e ON e.position = f.rowid"
            f" WHERE events_fts MATCH ? AND f.rowid < ?{q.extra_sql}"
            " ORDER BY f.rowid DESC LIMIT ?"
        )
        return raw.execute(sql, (q.fts, before, *q.extra_params, MATCH_LIMIT)).fetchall()

    def count(q: SearchQuery) -> int:
        sql = "SELECT count(*) FROM events_fts WHERE events_fts MATCH ?"
        return int(raw.execute(sql, (q.fts,)).fetchone()[0])

    try:
        return await text_filter_figure(
            store, newest, count, sizes, progress, all_indexed=True,
            baseline_desc="the hand-written best SQL for the same answer on a raw read-only"
            " connection: events_fts MATCH joined to events, ORDER BY rowid DESC LIMIT 100"
            " (structured terms as plain WHERE), for the same (worst) query",
        )
    finally:
        raw.close()
        await store.close()


async def text_filter_figure(
    store: AnyStore, newest: Callable[[SearchQuery, int], list[Any]],
    count: Callable[[SearchQuery], int], sizes: Sizes, progress: Progress, *,
    all_indexed: bool, baseline_desc: str, budget_s: float = math.inf, **details: Any,
) -> dict[str, Any]:
    """Each of SEARCHES through `store.read_before`, then raw (`newest(q, before)`: the newest
    matching rows; `count(q)`: the word matches in the log). A query is repeated
    `search_repeats` times, or fewer once both sides have spent `budget_s` on it."""
    progress(f"free-text filter, newest {MATCH_LIMIT} matches: {len(SEARCHES)} queries")
    last = await store.last_position()
    per_query: list[dict[str, Any]] = []
    for q in SEARCHES:
        flt = parse_filter(q.text)
        mine: list[float] = []
        base: list[float] = []
        got: list[int] = []
        want: list[int] = []
        spent = now()
        for _ in range(sizes.search_repeats):
            start = now()
            events = await store.read_before(last + 1, MATCH_LIMIT, flt)
            mine.append(now() - start)
            start = now()
            rows = newest(q, last + 1)
            base.append(now() - start)
            got, want = [e.position for e in events], [r[0] for r in rows]
            if now() - spent > budget_s:
                break
        matches = count(q)
        per_query.append({
            "label": q.label,
            "filter": q.text,
            "ms": median(mine) * 1000,
            "baseline_ms": median(base) * 1000,
            "repeats": len(mine),
            "returned": len(got),
            "word_matches_in_log": matches,
            "same_answer_as_baseline": got == want,
        })
        progress(
            f"  {q.text!r}: {per_query[-1]['ms']:.1f} ms (raw {per_query[-1]['baseline_ms']:.1f}"
            f" ms), {len(got)} returned, {matches:,} word matches"
        )
    worst = max(per_query, key=lambda x: float(x["ms"]))
    return figure(
        value=float(worst["ms"]),
        unit="ms (worst query's median)",
        desc=f"read_before(last + 1, {MATCH_LIMIT}, parse_filter(...)) at {last:,} events"
        f"{', all indexed' if all_indexed else ''}: the newest matches first, as an operator"
        f" scrolling back wants them; value = the slowest of {len(SEARCHES)} queries (each the"
        f" median of up to {sizes.search_repeats}), worst: {worst['filter']!r}",
        baseline=float(worst["baseline_ms"]),
        baseline_desc=baseline_desc,
        goal=Goal("value", "<=", 20.0, "value <= 20 ms"),
        queries=per_query,
        all_same_answer=all(bool(x["same_answer_as_baseline"]) for x in per_query),
        log_events=last,
        **details,
    )


# ---------------------------------------------------------------------------
# 5: cross-process visibility
# ---------------------------------------------------------------------------


async def _child_main(db: str, count: int, rate: float, seed: int) -> None:
    """Commit `count` events at about `rate`/s; print `position monotonic_time` after each.

    `db` is a path or a URL, or `-` for the address in $AGENTDECK_BENCH_CHILD_DB (a URL
    that may hold a password is passed so, never in argv)."""
    rng = random.Random(seed)
    address = parse_address(os.environ[CHILD_DB_ENV] if db == "-" else db)
    store = await open_store(address, watch=False, index=False)
    try:
        rt = "xproc"

        def clock() -> datetime:
            return datetime.now(UTC)

        await store.append(rt, None, [runtime_started(rt, clock), *next(
            worker_script(rng, "w-1", rt, clock))])
        print("ready", flush=True)
        for i in range(1, count + 1):
            await asyncio.sleep(rng.uniform(0.5, 1.5) / rate)
            text = _words(rng, 5, 30)
            [event] = await store.append(rt, None, [_event(
                "worker.output", c.TranscriptAppended(role=Role.TOOL, content=text, sequence=i),
                f"w-1 tool: {text[:60]}", clock(), worker_id="w-1",
            )])
            # CLOCK_MONOTONIC is system-wide on Linux: comparable with the parent's.
            print(f"{event.position} {time.monotonic()!r}", flush=True)
    finally:
        await store.close()


async def _run_child(db: Address, count: int, rate: float, seed: int) -> dict[int, float]:
    """Start the committing child; return {position: commit time} once it has finished."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PROJECT_ROOT, env.get("PYTHONPATH")) if p)
    if is_server_address(db):
        env[CHILD_DB_ENV], db = str(db), "-"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.store", "child", str(db), str(count), str(rate), str(seed),
        stdout=asyncio.subprocess.PIPE, env=env,
    )
    assert proc.stdout is not None
    commits: dict[int, float] = {}
    try:
        async with asyncio.timeout(30 + 3 * count / rate):
            while line := await proc.stdout.readline():
                parts = line.split()
                if len(parts) == 2:
                    commits[int(parts[0])] = float(parts[1])
            await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"the committing child exited {proc.returncode}")
    return commits


@contextlib.asynccontextmanager
async def store_observer(db: Address, seen: dict[int, float]) -> AsyncIterator[None]:
    """A read-only store with watch=True, stamping each event its subscription yields."""
    observer = await open_store(db, read_only=True, watch=True)

    async def consume() -> None:
        with observer.subscribe(after=await observer.last_position()) as sub:
            async for item in sub:
                if isinstance(item, Event):
                    seen[item.position] = time.monotonic()

    task = asyncio.create_task(consume())
    try:
        await asyncio.sleep(0.1)
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await observer.close()


def _poll(db: Path, seen: dict[int, float], stop: threading.Event) -> None:
    """The baseline reader: `PRAGMA data_version` every millisecond, then position > last."""
    conn = open_reader(db)
    sql = f"SELECT {EVENT_COLUMNS} FROM events e WHERE e.position > ? ORDER BY e.position"
    try:
        last = conn.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()[0]
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        while not stop.is_set():
            current = conn.execute("PRAGMA data_version").fetchone()[0]
            if current != version:
                version = current
                rows = conn.execute(sql, (last,)).fetchall()
                stamp = time.monotonic()
                for row in rows:
                    seen[row[0]] = stamp
                if rows:
                    last = rows[-1][0]
            time.sleep(POLL_S)
    finally:
        conn.close()


@contextlib.asynccontextmanager
async def _raw_poller(db: Path, seen: dict[int, float]) -> AsyncIterator[None]:
    stop = threading.Event()
    thread = threading.Thread(target=_poll, args=(db, seen, stop), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        await asyncio.to_thread(thread.join)


Watcher = Callable[[Any, dict[int, float]], contextlib.AbstractAsyncContextManager[None]]
Visibility = tuple[list[float], int]  # commit -> seen latencies (s), commits made


async def visibility(db: Address, sizes: Sizes, watch: Watcher) -> Visibility:
    """A child commits `visibility_samples` events to `db` while `watch` stamps what it sees."""
    creator = await open_store(db, watch=False, index=False)  # the schema, before watching
    await creator.close()
    seen: dict[int, float] = {}
    async with watch(db, seen):
        commits = await _run_child(db, sizes.visibility_samples, sizes.visibility_rate, seed=5)
        deadline = now() + 5.0
        while now() < deadline and any(p not in seen for p in commits):
            await asyncio.sleep(0.01)
    return [seen[p] - t for p, t in commits.items() if p in seen], len(commits)


def visibility_progress(sizes: Sizes, progress: Progress, baseline: str) -> None:
    progress(
        f"cross-process visibility: {sizes.visibility_samples} commits by a child process at"
        f" ~{sizes.visibility_rate:g}/s, store observer then {baseline}"
    )


async def cross_process(work: Path, sizes: Sizes, progress: Progress) -> dict[str, Any]:
    visibility_progress(sizes, progress, "raw poller")
    mine = await visibility(work / "xproc.db", sizes, store_observer)
    base = await visibility(work / "xproc-raw.db", sizes, _raw_poller)
    remove_db(work / "xproc.db")
    remove_db(work / "xproc-raw.db")
    return visibility_figure(
        mine, base, store_name="EventStore", watched_by="watchfiles",
        baseline_desc=f"a raw read-only sqlite3 connection in a thread polling PRAGMA"
        f" data_version every {POLL_S * 1000:g} ms and reading position > last on change"
        " (the floor for a polling reader; the store's watcher uses watchfiles and a 250 ms"
        " data_version poll instead of a busy poll)",
    )


def visibility_figure(
    mine_sent: Visibility, base_sent: Visibility, *, store_name: str, watched_by: str,
    baseline_desc: str,
) -> dict[str, Any]:
    (mine, sent), (base, base_sent_n) = mine_sent, base_sent
    m, b = latency_ms(mine), latency_ms(base)
    fig = figure(
        value=m["p99"],
        unit="ms (p99)",
        desc=f"a child process appends through its own {store_name} and prints (position, time"
        f" after its append returned); this process, a read-only {store_name} with watch=True"
        f" ({watched_by}), stamps each event when its subscription yields it; latency = seen -"
        " committed (CLOCK_MONOTONIC, system-wide)",
        baseline=b["p99"],
        baseline_desc=baseline_desc,
        goal=Goal("value", "<=", 30.0, "p99 <= 30 ms"),
        p50=m["p50"],
        p90=m["p90"],
        max=m["max"],
        baseline_p50=b["p50"],
        baseline_p90=b["p90"],
        baseline_max=b["max"],
        samples=len(mine),
        missed=sent - len(mine),
        missed_desc="commits this process had not seen 5 s after the child finished",
        baseline_missed=base_sent_n - len(base),
    )
    if sent > len(mine):
        fig["meets_goal"] = False  # a commit never seen misses any latency goal
    return fig


# ---------------------------------------------------------------------------
# The program
# ---------------------------------------------------------------------------


async def run_store_bench(*, quick: bool, json_only: bool, db: str | None = None) -> int:
    """Measure every figure and print the JSON object; 0 unless something broke.

    `db`, a postgresql:// URL, measures them on that server instead (bench.store_pg)."""
    if db is not None:
        from bench.store_pg import run_pg_store_bench

        return await run_pg_store_bench(
            db, quick=quick, json_only=json_only, size=os.environ.get(SIZE_ENV)
        )
    sizes = SIZES[os.environ.get(SIZE_ENV) or ("quick" if quick else "full")]
    progress = Progress(json_only)
    root = data_dir()
    started = now()
    dataset, build_s = ensure_dataset(sizes.dataset_events, progress)
    work = Path(tempfile.mkdtemp(prefix="work-", dir=root))
    try:
        throughput, indexer = await append_throughput(work, sizes, progress)
        latency = await append_latency(work, sizes, progress)
        read = await read_after(dataset, sizes, progress)
        search = await text_filter(dataset, sizes, progress)
        visibility = await cross_process(work, sizes, progress)
        checkpoints = await checkpoint_figures(dataset, work, sizes, progress)
        pictures = await pictures_figures(dataset, work, sizes, progress)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return store_report(
        quick, sizes, started, json_only,
        machine=machine_info(root),
        dataset={
            "events": sizes.dataset_events,
            "path": str(dataset),
            "bytes": dataset.stat().st_size,
            "built_now": build_s > 0,
            "build_s": build_s,
        },
        figures={
            "append_throughput": throughput,
            "append_latency": latency,
            "read_after_1000": read,
            "text_filter_first_100": search,
            "indexer_append_cost": indexer,
            "cross_process_visibility": visibility,
            **checkpoints,
            **pictures,  # bench.store_pictures
        },
    )


def store_report(
    quick: bool, sizes: Sizes, started: float, json_only: bool, **parts: Any
) -> int:
    """Print the suite's JSON object: `parts` (machine, dataset, figures...) between what
    was run and what it cost; 0."""
    return finish({
        "suite": "store",
        "quick": quick,
        "size": sizes.name,
        **parts,
        "peak_rss_mb": peak_rss_mb(),
        "loadavg_1m_at_end": os.getloadavg()[0],
        "seconds": now() - started,
    }, json_only)


if __name__ == "__main__":
    if len(sys.argv) != 6 or sys.argv[1] != "child":
        sys.exit("usage: python -m bench.store child DB COUNT RATE SEED")
    asyncio.run(_child_main(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])))
