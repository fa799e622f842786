"""Checkpoints of the fold and the past (issue 11), for `agentdeck bench store`.

Figures:
- past_open: open the past (EventLog.open_past) at random positions of the big log
  (1M events; 50k with --quick), checkpoints present: goal <= 1 s. Baseline: the
  same state folded from position 0 (what opening costs without checkpoints).
- checkpoint_disk: bytes of the checkpoint tables per event of the log and in all
  (SQLite's dbstat: pages of checkpoints and checkpoint_<table> with their indexes).
- checkpoint_follower_cost: the follower's own work per event (its thread's time
  folding and collecting, µs per event), and append throughput with the follower
  on vs off (the same workload as append_throughput).
"""

from __future__ import annotations

import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

from bench.common import Goal, Progress, figure, median, percentile, remove_db
from store.checkpoints import (
    EVERY_VARIABLE,
    TABLES,
    checkpoint_table,
    every,
    fold_events,
    new_scratch,
)
from store.database import open_reader
from store.event_store import EventStore

CHECKPOINT_TABLES = ("checkpoints", *(
    name for tbl in TABLES for name in (checkpoint_table(tbl), f"{checkpoint_table(tbl)}_at")
))


async def checkpoint_figures(
    dataset: Path, work: Path, sizes: Any, progress: Progress
) -> dict[str, dict[str, Any]]:
    """The three figures; `dataset` is the cached big log (copied, never written)."""
    from bench.store import producers_rate, throughput_rows

    # The store's N; a log too short for two checkpoints (the smoke test's tiny size) gets
    # one of a tenth of its length, so every figure still measures something.
    n = every() if sizes.dataset_events >= 2 * every() else max(1, sizes.dataset_events // 10)
    os.environ[EVERY_VARIABLE] = str(n)  # what this process's stores checkpoint at
    copy = work / "checkpoints.db"
    progress(f"checkpoints: copying the {sizes.dataset_events:,}-event log, N = {n:,}")
    shutil.copyfile(dataset, copy)
    try:
        store = await EventStore.open(copy, watch=False, index=False)
        try:
            started = time.perf_counter()
            await store.checkpoint_now()
            catch_up_s = time.perf_counter() - started
            assert store.checkpointer is not None
            busy_s = store.checkpointer.busy_s
            last = await store.last_position()
            progress(f"  {store.checkpointer.written} checkpoints of {last:,} events in"
                     f" {catch_up_s:.1f} s")
            disk = _disk(copy, last, n)
            past = await _past_open(store, copy, last, sizes, progress)
        finally:
            await store.close()
    finally:
        remove_db(copy)

    load = throughput_rows(sizes, progress).load
    on: list[float] = []
    off: list[float] = []
    lag: list[int] = []
    work_us: list[float] = []
    for r in range(sizes.repeats):
        order = [True, False] if r % 2 == 0 else [False, True]
        for checkpoints in order:
            path = work / f"ckpt-{checkpoints}.db"
            store = await EventStore.open(path, watch=False, checkpoints=checkpoints)
            try:
                rate = await producers_rate(store, load)
                if checkpoints:
                    on.append(rate)
                    assert store.checkpointer is not None
                    lag.append(await store.last_position() - store.checkpointer.position)
                    await store.checkpoint_now()
                    folded = store.checkpointer.position
                    work_us.append(store.checkpointer.busy_s / max(1, folded) * 1e6)
                else:
                    off.append(rate)
            finally:
                await store.close()
                remove_db(path)
        progress(f"  round {r + 1}: appends with the follower {on[-1]:,.0f}/s,"
                 f" without {off[-1]:,.0f}/s")
    on_rate, off_rate = median(on), median(off)
    follower = figure(
        value=busy_s / last * 1e6,
        unit="µs/event",
        desc=f"the checkpoint follower's own work per event of the log (its thread folding"
        f" into its scratch and collecting the changed rows, N = {n:,}) while catching up"
        f" the {last:,}-event log: {catch_up_s:.1f} s in all; the follower runs off the"
        " write path, throttled to ~1/4 of a core",
        baseline=on_rate and 1e6 / on_rate,
        baseline_desc="µs per event of appending itself (1 / the store's append throughput"
        " with the follower on)",
        goal=None,
        catch_up_s=catch_up_s,
        append_events_per_s_on=on_rate,
        append_events_per_s_off=off_rate,
        append_ratio_on_off=on_rate / off_rate if off_rate else None,
        append_slowdown_pct=(1 - on_rate / off_rate) * 100 if off_rate else None,
        append_runs_on=on,
        append_runs_off=off,
        follower_work_us_per_event_during_appends=median(work_us),
        follower_lag_events_when_appends_ended=median(lag),
        append_events=load.events,
    )
    return {"past_open": past, "checkpoint_disk": disk, "checkpoint_follower_cost": follower}


def _disk(path: Path, events: int, n: int) -> dict[str, Any]:
    conn = open_reader(path)
    try:
        sizes = dict(
            conn.execute(
                f"SELECT name, sum(pgsize) FROM dbstat WHERE name IN"
                f" ({', '.join('?' * len(CHECKPOINT_TABLES))}) GROUP BY name",
                CHECKPOINT_TABLES,
            ).fetchall()
        )
        log = dict(conn.execute(
            "SELECT 'events', sum(pgsize) FROM dbstat WHERE name = 'events'").fetchall())
        versions = sum(
            int(conn.execute(f"SELECT count(*) FROM {checkpoint_table(t)}").fetchone()[0])
            for t in TABLES
        )
        headers = int(conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0])
    finally:
        conn.close()
    total = sum(int(v or 0) for v in sizes.values())
    return figure(
        value=total / max(1, events),
        unit="bytes/event",
        desc=f"disk taken by the checkpoint tables (checkpoints and checkpoint_<table> with"
        f" their indexes; SQLite dbstat pages) per event of the {events:,}-event log, N = {n:,}:"
        f" {headers} checkpoints, {versions:,} row versions, {total / 1e6:.1f} MB in all",
        baseline=int(log.get("events") or 0) / max(1, events),
        baseline_desc="bytes per event of the `events` table itself",
        goal=None,
        total_bytes=total,
        by_table=sizes,
        versions=versions,
        checkpoints=headers,
        n=n,
    )


async def _past_open(
    store: EventStore, path: Path, last: int, sizes: Any, progress: Progress
) -> dict[str, Any]:
    rng = random.Random(7)
    positions = [rng.randrange(1, last + 1) for _ in range(max(5, sizes.search_repeats * 2))]
    opens: list[float] = []
    steps: list[float] = []
    for position in positions:
        started = time.perf_counter()
        view = await store.open_past(position)
        opens.append(time.perf_counter() - started)
        try:
            started = time.perf_counter()
            await view.move_to(max(0, position - 1))  # one event back: roll back, refold
            steps.append(time.perf_counter() - started)
        finally:
            await view.close()
    # The baseline: the same state folded from the first event (no checkpoints), on a few.
    folds: list[float] = []
    for position in positions[:3]:
        source = open_reader(path)
        scratch = new_scratch()
        try:
            started = time.perf_counter()
            scratch.execute("BEGIN")
            fold_events(source, scratch, 0, position)
            folds.append((time.perf_counter() - started) / position * last / 2)
        finally:
            scratch.close()
            source.close()
    progress(f"  open the past: p50 {median(opens) * 1000:.0f} ms, max {max(opens) * 1000:.0f}"
             f" ms; a fold from 0 to mid-log {median(folds):.1f} s")
    return figure(
        value=max(opens),
        unit="s",
        desc=f"EventLog.open_past at {len(positions)} random positions of the {last:,}-event"
        " log (SQLite), checkpoints present: load the newest good checkpoint (headers,"
        " counts, digests checked) into an in-memory scratch, fold the events after it;"
        " value = the slowest",
        baseline=median(folds),
        baseline_desc="folding the projections from position 0 to the middle of the log"
        " (store.projector.project into the same scratch; measured on 3 positions, scaled"
        " to last/2): opening the past without checkpoints",
        goal=Goal("value", "<=", 1.0, "<= 1 s"),
        p50_s=median(opens),
        p95_s=percentile(opens, 95),
        step_back_one_event_p50_ms=median(steps) * 1000,
        step_back_one_event_max_ms=max(steps) * 1000,
        positions=len(positions),
    )
