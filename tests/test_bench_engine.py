"""The engine benchmark runs end to end at a tiny scale and reports every figure.

Not a timed test: it checks the shape of the result (each figure with its
baseline and ratio, the notes), never the speed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from bench.common import DATA_ENV, dumps
from bench.engine import ECHO_EVENTS_PER_INPUT, run_engine_bench, sizes

FIGURES = ("echo_inputs_per_s", "echo_events_per_s", "demo_events_per_s")
COMMAND_FIGURES = ("command_latency_ms", "command_throughput_per_s")


def _positive(x: Any) -> bool:
    return isinstance(x, int | float) and not math.isnan(x) and x > 0


@pytest.mark.slow
async def test_engine_bench_reports_every_figure_with_baseline_and_ratio(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    lines: list[str] = []
    result = await run_engine_bench(quick=True, progress=lines.append, scale=0.01)

    assert result["suite"] == "engine"
    assert lines, "progress was reported"
    figures = result["figures"]
    assert set(figures) == set(FIGURES) | set(COMMAND_FIGURES)
    for name in FIGURES:
        fig = figures[name]
        assert _positive(fig["value"]), name
        assert _positive(fig["baseline"]), name
        assert fig["baseline_desc"] and fig["desc"] and fig["unit"], name
        # The ratio is engine cost per event over the store's: store rate / engine rate.
        assert fig["ratio"] == pytest.approx(fig["baseline"] / fig["value"]), name
        assert fig["goal"] and "2" in fig["goal"], name
        assert isinstance(fig["meets_goal"], bool), name
        assert fig["meets_goal"] == (fig["ratio"] <= 2.0), name

    # Every input went through the whole echo lifecycle, on both sides.
    echo = figures["echo_events_per_s"]
    inputs = sizes(True, 0.01).echo_inputs
    for side in ("engine", "store"):
        assert echo[side]["runs"] == inputs
        assert echo[side]["events"] == inputs * ECHO_EVENTS_PER_INPUT
        assert echo[side]["commits"] >= 1
    demo = figures["demo_events_per_s"]
    # Both sides made load (how much in a fixed time depends on the machine).
    assert demo["engine"]["events"] > 0 and demo["store"]["events"] > 0

    for name in ("echo_events_per_s", "demo_events_per_s"):
        assert _positive(figures[name]["cpu_ratio"]), name

    # Commands went through a host in another process, and every one was answered.
    latency = figures["command_latency_ms"]
    samples = sizes(True, 0.01).command_samples
    assert latency["command"]["n"] == latency["local"]["n"] == samples
    assert _positive(latency["value"]) and latency["value"] == latency["command"]["p99"]
    assert latency["baseline"] == latency["local"]["p99"]
    assert latency["goal"] and "50 ms" in latency["goal"]
    assert isinstance(latency["meets_goal"], bool)
    throughput = figures["command_throughput_per_s"]
    assert throughput["answered"] == throughput["commands"] > 0 and throughput["errors"] == []
    assert _positive(throughput["value"])

    notes = result["notes"]
    assert notes["method"] and len(notes["findings"]) >= 3
    assert notes["demo_store_with_engine_run_turns"]["events"] > 0
    assert set(notes["per_event_cost_us"]) >= {
        "echo_engine",
        "echo_store",
        "demo_engine",
        "demo_store",
    }
    assert _positive(notes["echo_synchronous_normal"]["ratio"])
    assert notes["micro_us_per_call"]

    # The result is JSON as the CLI prints it, and nothing is left behind in the data folder.
    assert json.loads(dumps(result))["figures"].keys() == figures.keys()
    assert _leftovers(tmp_path) == []


def _leftovers(folder: Path) -> list[Path]:
    return list(folder.iterdir())
