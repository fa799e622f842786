"""`agentdeck bench store`: what the pictures cost (issue 11), each next to a baseline.

- rollup_append_cost_spread, rollup_append_cost_10k: the append transaction
  (INSERT the events, fold them, COMMIT, with the store's pragmas) with the
  `activity` rollup (store.projector.project) against the same transaction
  without it (store.projector.fold_rows: every other projection), over the
  same batches of the store bench's realistic log, into two scratch files, the
  two interleaved batch by batch. "spread": the log's own times (~1.5 s
  apart: about one rollup key per event, the rollup's worst case); "10k": the
  same events 100 µs apart, as at 10k events/s (a batch falls in one or two
  seconds: a few upserts per batch).
- fleet_picture_1m: `fleet_picture(now)` on the cached big log (1M events;
  50k with --quick), now = its last event, against counting the same
  per-second and per-minute figures from the log itself (an aggregate query:
  the other way the issue allows, and what the rollup saves).
- fleet_picture_hour: the same on a log whose events fill the last hour
  evenly (every second of the rate window and the error hour has rows, and
  every run of the log ended within the hour: with --quick ~3k runs, full
  ~12k, past the picture's MAX_ENDED_RUNS), same baseline.
- worker_picture: `worker_picture(ref, now, 60)` for random workers of the
  big log against the worker view's own `runs(runtime, worker, 60)`.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.common import Goal, Progress, figure, fresh_raw_db, median, now, percentile
from store.database import open_reader
from store.event_store import EventStore
from store.models import WorkerRef
from store.pictures import ERROR_WINDOW_MIN, RATE_WINDOW_S
from store.projector import INSERT_EVENT, Row, fold_rows, project, roll_up

if TYPE_CHECKING:
    from bench.store import Sizes

BATCH = 100  # events per append transaction (a group commit's worth at a brisk rate)
ROLLUP_EVENTS = {"full": 200_000, "quick": 50_000, "tiny": 2_000}
PICTURE_CALLS = {"full": 200, "quick": 60, "tiny": 5}
BASELINE_CALLS = {"full": 5, "quick": 5, "tiny": 2}
US = 1_000_000
T0 = 1_800_000_000 * US  # 2027-01-15: the re-timed logs start here

Fold = Callable[[sqlite3.Connection, Sequence[Row]], None]


async def pictures_figures(
    dataset: Path, work: Path, sizes: Sizes, progress: Progress
) -> dict[str, Any]:
    """Every figure of this module (bench.store's hook)."""
    from bench.store import dataset_batches

    events = ROLLUP_EVENTS[sizes.name]
    progress(f"pictures: the rollup's cost per append over {events:,} events")
    spread = list(dataset_batches(events, seed=11, batch=BATCH))
    dense = [[r._replace(at=T0 + r.position * 100) for r in rows] for rows in spread]
    hour = [[r._replace(at=T0 + r.position * 3600 * US // events) for r in rows] for rows in spread]
    figures = {
        "rollup_append_cost_spread": rollup_cost(work, spread, "spread", "the log's own times"
                                                 " (~1.5 s apart: about one rollup key per event)"),
        "rollup_append_cost_10k": rollup_cost(work, dense, "10k", "the same events 100 µs apart"
                                              " (10k events/s: a batch spans one or two seconds)"),
    }
    progress("pictures: fleet_picture and worker_picture latency")
    figures["fleet_picture_1m"] = await fleet_latency(dataset, sizes, "the cached big log")
    hour_db = work / "pictures-hour.db"
    conn = fresh_raw_db(hour_db)
    try:
        for rows in hour:
            _transaction(conn, rows, project)
    finally:
        conn.close()
    figures["fleet_picture_hour"] = await fleet_latency(
        hour_db, sizes, f"{events:,} events spread evenly over the last hour"
    )
    figures["worker_picture"] = await worker_latency(dataset, sizes)
    return figures


def _transaction(conn: sqlite3.Connection, rows: Sequence[Row], fold: Fold) -> None:
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(INSERT_EVENT, [r.column_values() for r in rows])
    fold(conn, rows)
    conn.execute("COMMIT")


def rollup_cost(work: Path, batches: list[list[Row]], name: str, times: str) -> dict[str, Any]:
    """µs per event of the append transaction with the rollup vs without it."""
    with_path, without_path = work / f"rollup-{name}-with.db", work / f"rollup-{name}-without.db"
    with_conn, without_conn = fresh_raw_db(with_path), fresh_raw_db(without_path)
    spent = [0.0, 0.0]
    upserts = [0.0]  # the rollup's own statement, timed inside the with-rollup transactions

    def timed_project(conn: sqlite3.Connection, rows: Sequence[Row]) -> None:
        fold_rows(conn, rows)  # project() is exactly these two calls
        start = now()
        roll_up(conn, rows)
        upserts[0] += now() - start

    try:
        for i, rows in enumerate(batches):
            # Alternate which goes first, so neither always finds the caches warm.
            for which in ((0, 1) if i % 2 else (1, 0)):
                conn, fold = (with_conn, timed_project) if which == 0 else (without_conn, fold_rows)
                start = now()
                _transaction(conn, rows, fold)
                spent[which] += now() - start
        keys = with_conn.execute("SELECT count(*) FROM activity").fetchone()[0]
    finally:
        with_conn.close()
        without_conn.close()
    events = sum(len(rows) for rows in batches)
    value, baseline = (s / events * US for s in spent)
    return figure(
        value=value,
        unit="µs per event",
        desc=f"append transactions of {BATCH} events (INSERT, fold, COMMIT; the store's pragmas)"
        f" folding with the activity rollup (store.projector.project), {events:,} events, {times}",
        baseline=baseline,
        baseline_desc="the same transactions on the same events, folded without the rollup"
        " (store.projector.fold_rows), interleaved batch by batch into a second file",
        goal=Goal("ratio", "<=", 1.1 if name == "10k" else 1.25,
                  "ratio <= 1.1" if name == "10k" else "ratio <= 1.25"),
        rollup_statement_us_per_event=upserts[0] / events * US,
        rollup_statement_desc="the rollup's upsert alone (store.projector.roll_up, its Counter"
        " and executemany), timed inside the with-rollup transactions: the cost the two"
        " transactions' difference shows through the noise",
        activity_rows=keys,
        events=events,
    )


def _aggregate_from_log(conn: sqlite3.Connection, now_us: int) -> int:
    """The rate window's and the error hour's counts straight from the log (no index on
    `at`: a walk of the whole log), as the pictures would be drawn without a rollup."""
    now_s = now_us // US
    rows = conn.execute(
        "SELECT at / 1000000, level, count(*) FROM events WHERE at >= ? AND at <= ?"
        " GROUP BY 1, 2",
        ((now_s - RATE_WINDOW_S + 1) * US, now_us),
    ).fetchall()
    errors = conn.execute(
        "SELECT at / 60000000, count(*) FROM events WHERE level = 2 AND at >= ? AND at <= ?"
        " GROUP BY 1",
        ((now_s // 60 - ERROR_WINDOW_MIN + 1) * 60 * US, now_us),
    ).fetchall()
    return len(rows) + len(errors)


async def fleet_latency(path: Path, sizes: Sizes, what: str) -> dict[str, Any]:
    raw = open_reader(path)
    store = await EventStore.open(path, read_only=True, watch=False)
    try:
        last_at = raw.execute("SELECT at FROM events ORDER BY position DESC LIMIT 1").fetchone()[0]
        n_events = raw.execute("SELECT max(position) FROM events").fetchone()[0]
        picture = await store.fleet_picture(last_at)  # warm
        mine = []
        for _ in range(PICTURE_CALLS[sizes.name]):
            start = now()
            picture = await store.fleet_picture(last_at)
            mine.append(now() - start)
        base = []
        for _ in range(BASELINE_CALLS[sizes.name]):
            start = now()
            _aggregate_from_log(raw, last_at)
            base.append(now() - start)
    finally:
        await store.close()
        raw.close()
    ms = [x * 1000 for x in mine]
    return figure(
        value=median(ms),
        unit="ms (median)",
        desc=f"EventStore.fleet_picture(now) (read-only store) on {what} ({n_events:,} events),"
        f" now = its last event, over {len(mine)} calls",
        baseline=median([x * 1000 for x in base]),
        baseline_desc="the same per-second and errors-per-minute counts aggregated from the log"
        " itself (GROUP BY over `events` by `at`: no index on it, a walk of the log) on a raw"
        " read-only sqlite3 connection",
        goal=Goal("value", "<=", 20.0, "value <= 20 ms (drawn every second or two)"),
        p99=percentile(ms, 99),
        runs_ended_in_window=sum(picture.runs_ended.values()),
        runs_in_durations=sum(d.runs for d in picture.durations),
        events_in_rate_window=sum(c.total for c in picture.per_second),
    )


async def worker_latency(dataset: Path, sizes: Sizes) -> dict[str, Any]:
    from bench.store import DATASET_RUNTIMES, WORKERS_PER_RUNTIME

    rng = random.Random(5)
    store = await EventStore.open(dataset, read_only=True, watch=False)
    mine: list[float] = []
    base: list[float] = []
    try:
        last = await store.last_position()
        for i in range(PICTURE_CALLS[sizes.name] + 3):
            ref = WorkerRef(runtime_id=rng.choice(DATASET_RUNTIMES),
                            worker_id=f"w-{rng.randint(1, WORKERS_PER_RUNTIME)}")
            for which in ((0, 1) if i % 2 else (1, 0)):
                start = now()
                if which == 0:
                    await store.worker_picture(ref, 0, 60)
                else:
                    await store.runs(ref.runtime_id, ref.worker_id, 60)
                if i >= 3:
                    (mine if which == 0 else base).append((now() - start) * 1000)
    finally:
        await store.close()
    return figure(
        value=median(mine),
        unit="ms (median)",
        desc=f"EventStore.worker_picture(ref, now, 60) for random workers of the big log"
        f" ({last:,} events), {len(mine)} calls",
        baseline=median(base),
        baseline_desc="the worker view's own read of the same worker's runs:"
        " EventStore.runs(runtime, worker, 60), interleaved",
        goal=Goal("ratio", "<=", 1.5, "ratio <= 1.5"),
        p99=percentile(mine, 99),
    )
