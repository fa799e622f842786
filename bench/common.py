"""Shared pieces of the benchmark programs: timing, percentiles, memory, output.

A benchmark here is a program, not a timed test: it prints one JSON object on
stdout whose figures each stand next to a baseline measured in the same run
on the same machine, so the ratio means something on a noisy machine.
Progress goes to stderr (silenced by `--json`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import resource
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from store.catalog import check, level_of
from store.codec import dump_payload, load_payload, us_from_dt
from store.database import OpenOptions, filesystem_type, open_writer
from store.models import NewEvent
from store.projector import INSERT_EVENT, Row, project

DATA_ENV = "AGENTDECK_BENCH_DATA"
PROJECT_ROOT = str(Path(__file__).resolve().parent.parent)

Op = Literal["<=", ">="]

now = time.perf_counter


def data_dir() -> Path:
    """Where benchmark databases are cached (`bench/data/`, ignored by git).

    `AGENTDECK_BENCH_DATA` moves it (the smoke test points it at a temp folder).
    """
    override = os.environ.get(DATA_ENV)
    path = Path(override) if override else Path(__file__).resolve().parent / "data"
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- statistics -----------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """The `p`-th percentile (0..100) with linear interpolation; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * p / 100.0
    lo = math.floor(rank)
    hi = min(lo + 1, len(ordered) - 1)
    return float(ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo))


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else math.nan


def latency_ms(samples_s: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/max/mean in milliseconds of durations given in seconds."""
    ms = [s * 1000.0 for s in samples_s]
    return {
        "p50": percentile(ms, 50),
        "p90": percentile(ms, 90),
        "p99": percentile(ms, 99),
        "max": max(ms) if ms else math.nan,
        "mean": statistics.fmean(ms) if ms else math.nan,
        "n": len(ms),
    }


# -- memory and machine --------------------------------------------------------


def rss_mb() -> float:
    """Current resident set size of this process, in MiB (Linux; else peak)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return peak_rss_mb()


def peak_rss_mb() -> float:
    """Peak resident set size of this process, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def machine_info(where: Path | None = None) -> dict[str, Any]:
    """What the numbers were measured on."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "cpus": os.cpu_count(),
    }
    try:
        info["loadavg_1m"] = os.getloadavg()[0]
    except OSError:
        pass
    if where is not None:
        info["data_dir"] = str(where)
        info["data_fs"] = filesystem_type(where)
    return info


def loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


# -- the same events, written by raw sqlite3 ---------------------------------------


def row_of(position: int, runtime_id: str, seq: int, event: NewEvent) -> Row:
    """`event` as the store's writer turns it into a row at `position` (`seq` in `runtime_id`).

    Its payload is checked against the catalog here, untimed, as the writer does at
    submit, so a raw baseline that projects does no more work than the store's
    transaction, and writes exactly the rows the store writes.
    """
    payload_json = dump_payload(event.payload)
    return Row(
        position, runtime_id, seq, str(event.event_id), event.kind,
        level_of(event.kind, event.payload).rank, event.worker_id, event.run_id,
        event.run_seq, event.message, payload_json, us_from_dt(event.at),
        load_payload(payload_json), check(event.kind, event.payload),
    )


def remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").unlink()


def fresh_raw_db(path: Path, options: OpenOptions | None = None) -> sqlite3.Connection:
    """A new file with the real schema, opened by `store.database` with the store's pragmas."""
    remove_db(path)
    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    return open_writer(path, options or OpenOptions(), migrate_from=0)


def raw_commit(
    conn: sqlite3.Connection, values: Sequence[tuple[Any, ...]], rows: Sequence[Row] = ()
) -> None:
    """One raw transaction: INSERT the event `values`; project `rows` when given."""
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(INSERT_EVENT, values)
    if rows:
        project(conn, rows)
    conn.execute("COMMIT")


def raw_insert(conn: sqlite3.Connection, rows: Sequence[Row], projections: bool) -> None:
    raw_commit(conn, [r.column_values() for r in rows], rows if projections else ())


def build_cached_db(
    path: Path, batches: Iterable[Sequence[Row]], progress: Callable[[str], None]
) -> None:
    """A cached benchmark database: raw inserts of `batches` with the real projector,
    then the real FTS indexer step, written to a scratch name and renamed into place."""
    from store.search import index_step

    tmp = path.with_name(f"{path.name}.building-{os.getpid()}")
    conn = fresh_raw_db(tmp, OpenOptions(synchronous="OFF"))  # a cache, not data: no fsync
    try:
        conn.execute("PRAGMA cache_size = -262144")
        done = 0
        for rows in batches:
            raw_insert(conn, rows, projections=True)
            done += len(rows)
            if done % 200_000 < len(rows):
                progress(f"  {done:,} events written")
        more = True
        while more:
            conn.execute("BEGIN IMMEDIATE")
            more = index_step(conn, 50_000)
            conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        conn.close()
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{tmp}{suffix}").unlink()
    tmp.replace(path)


def child_env() -> dict[str, str]:
    """This environment with the project root on PYTHONPATH (for `python -m bench...` children)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PROJECT_ROOT, env.get("PYTHONPATH")) if p)
    return env


# -- figures and output ------------------------------------------------------------


@dataclass(frozen=True)
class Goal:
    """A goal on one number of a figure: `subject op threshold` (e.g. ratio >= 0.5)."""

    subject: Literal["value", "ratio"]
    op: Op
    threshold: float
    text: str

    def met(self, value: float, ratio: float | None) -> bool | None:
        x = value if self.subject == "value" else ratio
        if x is None or math.isnan(x):
            return None
        return x <= self.threshold if self.op == "<=" else x >= self.threshold


def figure(
    *,
    value: float,
    unit: str,
    baseline: float,
    baseline_desc: str,
    desc: str,
    goal: Goal | None,
    ratio: float | None = None,
    **details: Any,
) -> dict[str, Any]:
    """One figure: the store's number, the baseline's, their ratio and the goal.

    `ratio` defaults to value / baseline.
    """
    if ratio is None:
        ratio = value / baseline if baseline else math.nan
    return {
        "value": value,
        "unit": unit,
        "desc": desc,
        "baseline": baseline,
        "baseline_desc": baseline_desc,
        "ratio": ratio,
        "goal": goal.text if goal else None,
        "meets_goal": goal.met(value, ratio) if goal else None,
        **details,
    }


def _clean(obj: Any) -> Any:
    """Round floats for reading and turn NaN into null (JSON has no NaN)."""
    if isinstance(obj, float):
        if math.isnan(obj) or math.isinf(obj):
            return None
        if obj == 0 or abs(obj) >= 100:
            return round(obj, 1)
        return float(f"{obj:.4g}")
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


def dumps(result: dict[str, Any]) -> str:
    return json.dumps(_clean(result), indent=2)


def emit_json(result: dict[str, Any]) -> None:
    """The result on stdout: one JSON object."""
    sys.stdout.write(dumps(result) + "\n")
    sys.stdout.flush()


def finish(result: dict[str, Any], json_only: bool) -> int:
    """Print the result (JSON on stdout, the summary on stderr unless `json_only`); 0."""
    emit_json(result)
    if not json_only:
        for line in summary_lines(result["figures"]):
            print(line, file=sys.stderr)
    return 0


class Progress:
    """Progress lines on stderr, with the elapsed time; silent when `quiet`."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self._start = now()

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(f"[{now() - self._start:7.1f}s] {message}", file=sys.stderr, flush=True)


def summary_lines(figures: dict[str, dict[str, Any]]) -> Iterable[str]:
    """A human summary of the figures (for stderr when not in --json mode)."""
    for name, fig in figures.items():
        met = fig.get("meets_goal")
        mark = "-" if met is None else ("met" if met else "MISSED")
        ratio = fig.get("ratio")
        ratio_text = f"{ratio:.3g}" if isinstance(ratio, float) and not math.isnan(ratio) else "-"
        yield (
            f"{name:26} {_num(fig['value']):>10} vs baseline {_num(fig['baseline']):>10}"
            f" {fig['unit']:<28}"
            f" ratio {ratio_text:>6}  goal {fig.get('goal') or '-'}: {mark}"
        )


def _num(x: object) -> str:
    if not isinstance(x, int | float) or math.isnan(x):
        return "-"
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.3g}"
