"""Issue 7 items 1 and 7: every door of the command line ends in one line and a known status.

Real `agentdeck` processes on real database files; real signals.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from store.event_store import EventStore
from store.models import RunStatus
from tests.store.support import AGENTDECK, child_env, wait_for_line
from tui.crash_log import crash_line

HOST_CHILD = Path(__file__).parent / "engine" / "programs" / "host_child.py"


def agentdeck(*args: object, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(AGENTDECK), *(str(a) for a in args)],
        capture_output=True, text=True, timeout=timeout, env=child_env(), check=False,
    )


def only_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("agentdeck: ")
    return lines[0]


def test_demo_on_a_runtime_hosted_elsewhere_is_one_line(tmp_path: Path) -> None:
    """Issue 7 item 7: RuntimeBusy is one line whose advice fits `demo` (no --read-only)."""
    db = tmp_path / "busy.db"
    holder = subprocess.Popen(
        [sys.executable, str(HOST_CHILD), str(db), "demo", "hold"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=child_env(),
    )
    try:
        assert wait_for_line(holder, "hosting").startswith("hosting")
        result = agentdeck("--db", db, "demo", "--runtime", "demo", "--duration", "1")
        assert result.returncode == 1
        line = only_line(result.stderr)
        assert f"hosted by pid {holder.pid}" in line
        assert "--read-only" not in line and "--runtime" in line
    finally:
        holder.communicate("", timeout=20)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["demo", "--runtime", "Bad Name!", "--duration", "1"], "runtime name 'Bad Name!'"),
        (["events", "--after", "99999999999999999999999"], "must be at most"),
        (["events", "--limit", "0"], "must be at least 1"),
        (["demo", "--rate", "nan"], "finite"),
        (["events", "--frob"], "unrecognized arguments: --frob"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    """Issue 7 item 7: usage errors and invalid requests: exit 2, one line, no traceback."""
    db = tmp_path / "a.db"
    asyncio.run(_make(db))
    result = agentdeck("--db", db, *args)
    assert result.returncode == 2, result.stderr
    assert expected in only_line(result.stderr)


def test_events_on_a_missing_file_says_how_to_make_one(tmp_path: Path) -> None:
    """Issue 7 item 7: no mention of an option `events` does not have."""
    result = agentdeck("--db", tmp_path / "nothing-here.db", "events")
    assert result.returncode == 2
    line = only_line(result.stderr)
    assert "--read-only" not in line
    assert not (tmp_path / "nothing-here.db").exists()


def test_an_unexpected_error_is_one_line_naming_where_its_details_are(tmp_path: Path) -> None:
    """Issue 7 item 7: a bug inside a command: one line, the traceback in a file."""
    # A real command fed a value its parser would never produce (a filter that is
    # not text) fails inside, the way a bug would.
    code = (
        "import argparse, sys\n"
        "from tui.cli import _dispatch\n"
        "args = argparse.Namespace(command='events', db=sys.argv[1], filter=42, after=0,"
        " limit=None, follow=False, json=False, at=None)\n"
        "sys.exit(_dispatch(args))\n"
    )
    state = tmp_path / "state"
    env = {**child_env(), "XDG_STATE_HOME": str(state)}
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "a.db")],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )
    assert result.returncode == 1
    line = only_line(result.stderr)
    assert "unexpected error" in line and "details in " in line
    saved = Path(line.split("details in ", 1)[1].split(";", 1)[0])
    assert saved.is_relative_to(state)
    assert "Traceback" in saved.read_text()
    assert saved.stat().st_mode & 0o777 == 0o600


def test_crash_line_says_so_when_the_details_cannot_be_saved(tmp_path: Path) -> None:
    """Issue 7 item 7: even with nowhere to write, the operator gets one line."""
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    try:
        raise RuntimeError("boom\x1b[2J")
    except RuntimeError as exc:
        line = crash_line(exc, blocked / "log")
    assert "details could not be saved" in line and "\x1b" not in line and "\n" not in line


async def _make(db: Path) -> None:
    async with await EventStore.open(db, watch=False):
        pass


@pytest.mark.parametrize(
    ("sig", "status"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 0)]
)
def test_a_signal_stops_the_demo_like_its_end_and_closes_the_runtime(
    tmp_path: Path, sig: signal.Signals, status: int
) -> None:
    """Issue 7 item 1: SIGTERM/SIGHUP/SIGINT: summary, clean close, a documented status."""
    db = tmp_path / "demo.db"
    demo = subprocess.Popen(
        [str(AGENTDECK), "--db", str(db), "demo", "--workers", "3", "--rate", "200"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(),
    )
    try:
        asyncio.run(_wait_for_runs(db))
        demo.send_signal(sig)
        out, err = demo.communicate(timeout=30)
    finally:
        if demo.poll() is None:
            demo.kill()
    assert demo.returncode == status, err
    assert "Traceback" not in err and err == ""
    assert out.startswith("demo: runtime demo, 3 workers")
    asyncio.run(_check_closed_cleanly(db))


async def _wait_for_runs(db: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if await asyncio.to_thread(db.exists):
            try:
                async with await EventStore.open(db, read_only=True, watch=False) as store:
                    if (await store.runs("demo", "w-1", 10)):
                        return
            except Exception:
                pass
        await asyncio.sleep(0.1)
    raise AssertionError("the demo never started a run")


async def _check_closed_cleanly(db: Path) -> None:
    async with await EventStore.open(db, read_only=True, watch=False) as store:
        assert await store.hosts() == {}, "the lease was not released"
        for worker_id in ("w-1", "w-2", "w-3"):
            for run in await store.runs("demo", worker_id, 1000):
                # Nothing is left looking alive: finished, failed "host closed", or queued.
                assert not run.status.active, (run.run_id, run.status)
                if run.status is RunStatus.FAILED and run.error != "host closed":
                    assert run.error and "demo failure" in run.error
        assert (await store.verify()).ok


def test_sigterm_ends_events_follow_with_143(tmp_path: Path) -> None:
    """Issue 7 item 1: a follower stopped by SIGTERM exits 143, quietly."""
    db = tmp_path / "f.db"
    asyncio.run(_make(db))
    follower = subprocess.Popen(
        [str(AGENTDECK), "--db", str(db), "events", "--follow"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(),
    )
    try:
        time.sleep(1.0)
        follower.send_signal(signal.SIGTERM)
        out, err = follower.communicate(timeout=20)
    finally:
        if follower.poll() is None:
            follower.kill()
    assert follower.returncode == 143
    assert err == "" and out == ""
