"""`agentdeck demo` as a real process: a summary line, a clean Ctrl-C, a live follower."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sqlite3
from pathlib import Path
from typing import Any

import psycopg

from tests.engine.conftest import AGENTDECK, eventually

SUMMARY = re.compile(
    r"demo: runtime (\S+), (\d+) workers, (\d+) inputs, (\d+) runs completed, (\d+) failed, "
    r"(\d+) events in [\d.]+s \(\d+ events/s\)"
)


def still_running(proc: asyncio.subprocess.Process) -> bool:
    return proc.returncode is None


async def start(*args: str, **kwargs: Any) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        str(AGENTDECK),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        **kwargs,
    )


def count_events(db: str | Path) -> int:
    """Events in the database so far (0 while it is not set up yet); a plain reader."""
    if isinstance(db, str):
        try:
            with psycopg.connect(db, autocommit=True, connect_timeout=5) as conn:
                row = conn.execute("SELECT count(*) FROM events").fetchone()
                return int(row[0]) if row else 0
        except psycopg.Error:  # no events table yet
            return 0
    if not db.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


async def test_demo_runs_for_its_duration_and_prints_one_summary_line(db_address: str | Path) -> None:
    proc = await start(
        "--db",
        str(db_address),
        "demo",
        "--workers",
        "3",
        "--rate",
        "150",
        "--duration",
        "1.5",
        "--fail-rate",
        "0.2",
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert len(lines) == 1, lines
    found = SUMMARY.fullmatch(lines[0])
    assert found, lines[0]
    runtime, workers, inputs, completed, _failed, events = found.groups()
    assert (runtime, workers) == ("demo", "3")
    assert int(inputs) >= 3 and int(completed) >= 1 and int(events) > 20
    assert "Traceback" not in err.decode()
    assert count_events(db_address) >= int(events)

    verify = await start("--db", str(db_address), "verify")
    vout, verr = await asyncio.wait_for(verify.communicate(), 30)
    assert verify.returncode == 0, (vout + verr).decode()


async def test_ctrl_c_stops_the_demo_cleanly_while_a_follower_shows_its_events_live(
    db_address: str | Path,
) -> None:
    demo = await start("--db", str(db_address), "demo", "--workers", "2", "--rate", "200")
    follower: asyncio.subprocess.Process | None = None
    try:
        await eventually(lambda: count_events(db_address) > 5, 15, "the demo to write events")
        follower = await start("--db", str(db_address), "events", "--follow", "--json")
        assert follower.stdout is not None
        seen: list[dict[str, Any]] = []

        async def read_until(done: Any) -> None:
            assert follower is not None and follower.stdout is not None
            while not done():
                line = await asyncio.wait_for(follower.stdout.readline(), 15)
                assert line, "the follower ended early"
                seen.append(json.loads(line))

        # Live: run completions arrive while the demo is still running.
        await read_until(lambda: sum(e["kind"] == "run.completed" for e in seen) >= 3)
        assert still_running(demo), "the demo was still running"
        positions = [e["position"] for e in seen]
        assert positions == list(range(1, len(positions) + 1))
        assert {e["runtime_id"] for e in seen} == {"demo"}
        assert {"runtime.started", "worker.created", "run.step.started"} <= {
            e["kind"] for e in seen
        }

        demo.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(demo.communicate(), 30)
        assert demo.returncode == 0, err.decode()
        assert "Traceback" not in err.decode() and "KeyboardInterrupt" not in err.decode()
        assert SUMMARY.fullmatch(out.decode().strip()), out.decode()

        # Everything the demo wrote, up to its last event, reaches the follower.
        total = count_events(db_address)
        await read_until(lambda: seen[-1]["position"] >= total)
        positions = [e["position"] for e in seen]
        assert positions == list(range(1, total + 1))

        follower.send_signal(signal.SIGINT)
        _, ferr = await asyncio.wait_for(follower.communicate(), 15)
        assert follower.returncode == 0, ferr.decode()
        assert "Traceback" not in ferr.decode()
    finally:
        for proc in (demo, follower):
            if proc is not None and proc.returncode is None:
                proc.kill()
                await proc.wait()

    verify = await start("--db", str(db_address), "verify")
    vout, verr = await asyncio.wait_for(verify.communicate(), 30)
    assert verify.returncode == 0, (vout + verr).decode()
