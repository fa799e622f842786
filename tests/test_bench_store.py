"""Smoke test of `python -m bench store --quick --json` at a tiny size, on SQLite and on
PostgreSQL (`--db URL`, against the tests' throwaway server).

Benchmarks are programs, not timed tests: this only checks that the program
runs end to end and prints every figure next to its baseline. No timing is
asserted.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bench import store as bench_store
from bench.common import DATA_ENV
from store.verify import verify_file

REPO_ROOT = Path(__file__).resolve().parent.parent

FIGURES = (
    "append_throughput",
    "append_latency",
    "read_after_1000",
    "text_filter_first_100",
    "indexer_append_cost",
    "cross_process_visibility",
    # issue 11: checkpoints and the past (bench.store_checkpoints)
    "past_open",
    "checkpoint_disk",
    "checkpoint_follower_cost",
    # issue 11: the pictures' rollup and queries (bench.store_pictures)
    "rollup_append_cost_spread",
    "rollup_append_cost_10k",
    "fleet_picture_1m",
    "fleet_picture_hour",
    "worker_picture",
)
SQLITE_ONLY = {
    "indexer_append_cost",  # SQLite's FTS indexer
    "past_open", "checkpoint_disk", "checkpoint_follower_cost",
    "rollup_append_cost_spread", "rollup_append_cost_10k",
    "fleet_picture_1m", "fleet_picture_hour", "worker_picture",
}
PG_FIGURES = tuple(f for f in FIGURES if f not in SQLITE_ONLY)


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(bench_store.SIZE_ENV, "tiny")
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    return tmp_path


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not math.isnan(float(value))


def _bench(*args: str) -> dict[str, Any]:
    # As `agentdeck bench store` runs it: a program of its own, from the repo root.
    done = subprocess.run(
        [sys.executable, "-m", "bench", "store", "--quick", "--json", *args],
        cwd=REPO_ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # --json: no progress lines
    result: dict[str, Any] = json.loads(done.stdout)
    assert result["suite"] == "store"
    assert result["quick"] is True
    assert result["size"] == "tiny"
    assert set(result["machine"]) >= {"python", "sqlite", "cpus"}
    return result


def test_bench_store_prints_every_figure_with_its_baseline(tiny: Path) -> None:
    result = _bench()
    figures = result["figures"]
    assert set(figures) == set(FIGURES)
    _check_figures(figures)
    # The search results agree with the hand-written SQL.
    assert figures["text_filter_first_100"]["all_same_answer"] is True
    _check_dataset(Path(result["dataset"]["path"]), tiny)


def test_bench_store_on_postgresql_prints_every_figure_with_its_baseline(
    tiny: Path, pg_url: str
) -> None:
    result = _bench("--db", pg_url)
    assert result["backend"] == "postgresql"
    assert result["server"]["scratch_database_synchronous_commit"] == "on"
    figures = result["figures"]
    assert set(figures) == set(PG_FIGURES)
    _check_figures(figures)
    throughput = figures["append_throughput"]
    assert throughput["baseline_copy"] > 0 and throughput["ratio_to_copy"] > 0
    # The big log was copied into a database of its own, migrated to the latest schema.
    dataset = result["dataset"]
    assert dataset["built_now"] is True and dataset["events"] == 2000
    assert figures["read_after_1000"]["log_events"] == 2000
    with psycopg.connect(pg_url, autocommit=True) as conn:
        names = {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}
    assert dataset["database"] in names
    assert not [n for n in names if n.startswith("agentdeck_bench_scratch")]  # dropped
    # A second run finds the copied log and keeps it.
    again = _bench("--db", pg_url)
    assert again["dataset"]["built_now"] is False


def _check_figures(figures: dict[str, Any]) -> None:
    visibility = figures["cross_process_visibility"]
    assert visibility["missed"] == 0, "the observer never saw some of the child's commits"
    assert visibility["baseline_missed"] == 0
    for name, fig in figures.items():
        for key in ("value", "baseline", "ratio"):
            assert _number(fig[key]), (name, key, fig[key])
        assert fig["value"] > 0 and fig["baseline"] > 0, name
        assert fig["unit"] and fig["desc"] and fig["baseline_desc"], name
        if fig["goal"] is None:
            assert fig["meets_goal"] is None, name
        else:
            assert isinstance(fig["meets_goal"], bool), name


def _check_dataset(dataset: Path, data: Path) -> None:
    # Scratch databases are cleaned up; only the cached log remains (with the
    # -wal/-shm its read-only readers leave behind).
    names = {p.name for p in data.iterdir()} - {f"{dataset.name}-wal", f"{dataset.name}-shm"}
    assert names == {dataset.name}
    # The cached log is a real store: its projections match a rebuild from the log.
    report = verify_file(dataset)
    assert report.ok, report.summary()
    assert report.events == 2000
