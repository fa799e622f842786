"""Shared pieces of the benchmark programs: timing, percentiles, memory, output.

A benchmark here is a program, not a timed test: it prints one JSON object on
stdout whose figures each stand next to a baseline measured in the same run
on the same machine, so the ratio means something on a noisy machine.
Progress goes to stderr (silenced by `--json`).
"""

from __future__ import annotations

import json
import math
import os
import platform
import resource
import sqlite3
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

DATA_ENV = "AGENTDECK_BENCH_DATA"

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
    from store.database import filesystem_type

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
