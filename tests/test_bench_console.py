"""Smoke test of `agentdeck bench console` at a tiny size.

Benchmarks are programs, not timed tests: this only checks that the program
runs end to end (a load process, the real console and the stock-Log baseline
headless, the first-paint databases) and prints every figure next to its
baseline. No timing is asserted.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench.common import DATA_ENV
from bench.console import run_console_command

FIGURES = (
    "events_applied_per_s",
    "backlog_p99",
    "key_latency_p99",
    "peak_rss_growth",
    "first_paint",
    "first_paint_vs_small",
    "pictures_strip_key_latency_p99",  # issue 11: the same keys with the strip on vs off
)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not math.isnan(float(value))


async def test_bench_console_prints_every_figure_with_its_baseline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert await run_console_command(quick=True, json_only=True, scale=0.02) == 0
    out, err = capsys.readouterr()
    assert err == ""  # --json: no progress lines
    result = json.loads(out)
    assert result["suite"] == "console"
    assert result["quick"] is True
    assert set(result["machine"]) >= {"python", "sqlite", "cpus"}
    figures = result["figures"]
    assert set(figures) == set(FIGURES)
    for name, fig in figures.items():
        for key in ("value", "baseline", "ratio"):
            assert _number(fig[key]), (name, key, fig[key])
        assert fig["unit"] and fig["desc"] and fig["baseline_desc"], name
        assert isinstance(fig["goal"], str) and isinstance(fig["meets_goal"], bool), name
    # Both apps saw the other process's events and answered keys.
    for side in ("console", "baseline_log"):
        run = result[side]
        assert run["source_events"] > 0, side
        assert run["applied_events"] > 0, side
        assert run["key_ms"]["n"] > 0 and run["idle_key_ms"]["n"] > 0, side
    assert figures["first_paint"]["workers"] == result["sizes"]["paint_workers"]
    assert result["notes"]["method"]
    # Scratch databases are gone; only the cached first-paint databases remain.
    left = _cached(tmp_path)
    assert left and all(name.startswith("console-") and name.endswith(".db") for name in left)


def _cached(data: Path) -> set[str]:
    return {p.name for p in data.iterdir() if not p.name.endswith(("-wal", "-shm"))}
