"""`agentdeck events` and `agentdeck verify`, run as real processes on real files."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from store.event_store import EventStore
from store.models import Event
from store.schema import LATEST_VERSION
from tests.store.support import AGENTDECK, child_env, new_event, step_event, wait_for_line


def agentdeck(*args: object, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(AGENTDECK), *(str(a) for a in args)],
        capture_output=True, text=True, timeout=timeout, env=child_env(), check=False,
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The whole of stderr: exactly one line, starting `agentdeck:`, no traceback."""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("agentdeck: ")
    return lines[0]


async def _populate(path: Path) -> list[Event]:
    async with await EventStore.open(path, watch=False) as store:
        spec = {"intent": {"type": "assistant"}, "profile": "default"}
        first = await store.append("ci", 0, [
            new_event("runtime.started", message="runtime ci started", payload={"limits": {}}),
            new_event("worker.created", worker_id="w-1", payload={"spec": spec}),
        ])
        second = await store.append("ci", 2, [
            new_event("worker.input.accepted", worker_id="w-1", run_id="r-1", run_seq=1,
                      message="user input #1: héllo\n\x1b[2J",
                      payload={"role": "user", "content": "héllo", "sequence": 1}),
            new_event("run.created", worker_id="w-1", run_id="r-1", run_seq=2,
                      payload={"prompt": "héllo", "input_sequence": 1}),
            new_event("run.failed", worker_id="w-1", run_id="r-1", run_seq=3,
                      message="run r-1 failed", payload={"error": "exit 3", "exit_code": 3, "ended_processes": [
                          {"pid": 41, "pgid": None, "command": "make"}]}),
        ])
        third = await store.append("local", 0, [new_event("diagnostic.raised", payload={
            "severity": "warning", "code": "x.y", "message": "careful"})])
        return first + second + third


@pytest.fixture
def populated(tmp_path: Path) -> tuple[Path, list[Event]]:
    path = tmp_path / "agentdeck.db"
    return path, asyncio.run(_populate(path))


def test_events_json_is_one_event_object_a_line(populated: tuple[Path, list[Event]]) -> None:
    path, events = populated
    result = agentdeck("events", "--db", path, "--json")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert len(lines) == len(events)
    for line, event in zip(lines, events, strict=True):
        obj = json.loads(line)
        assert set(obj) == set(Event.FIELDS)
        assert obj == event.to_json_dict()
        assert Event.from_json_dict(obj) == event


def test_events_filter_after_and_limit(populated: tuple[Path, list[Event]]) -> None:
    path, events = populated
    result = agentdeck("events", "--db", path, "--json", "--filter", "kind:run.* worker:w-1")
    assert [json.loads(x)["kind"] for x in result.stdout.splitlines()] == ["run.created", "run.failed"]
    result = agentdeck("events", "--db", path, "--json", "--after", 2, "--limit", 2)
    assert [json.loads(x)["position"] for x in result.stdout.splitlines()] == [3, 4]
    plain = agentdeck("events", "--db", path)
    assert plain.returncode == 0
    assert len(plain.stdout.splitlines()) == len(events)
    # Untrusted text is shown, not executed: no raw escape or newline reaches the terminal
    # (shown as the console shows it, Issue 7 item 11).
    assert "\x1b" not in plain.stdout and "héllo⏎␛[2J" in plain.stdout


@pytest.mark.parametrize("expr", ["level:bogus", "frob:x", '"unclosed'])
def test_events_with_a_bad_filter_is_a_usage_error(
    populated: tuple[Path, list[Event]], expr: str
) -> None:
    path, _ = populated
    result = agentdeck("events", "--db", path, "--filter", expr)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "bad filter term" in one_line_error(result)


def test_events_follow_shows_another_process_and_stops_on_ctrl_c(
    populated: tuple[Path, list[Event]],
) -> None:
    path, events = populated
    follower = subprocess.Popen(
        [str(AGENTDECK), "events", "--db", str(path), "--follow", "--json"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=child_env(),
    )
    try:
        for event in events:
            line = wait_for_line(follower, "{")
            assert json.loads(line)["event_id"] == str(event.event_id)

        async def append_more() -> list[Event]:
            async with await EventStore.open(path, watch=False) as store:
                out = []
                for i in range(3):
                    out += await store.append("ci", None, [step_event(i)])
                    await asyncio.sleep(0.05)
                return out

        started = time.monotonic()
        later = asyncio.run(append_more())
        for event in later:
            line = wait_for_line(follower, "{")
            assert json.loads(line)["event_id"] == str(event.event_id)
        assert time.monotonic() - started < 10
        follower.send_signal(signal.SIGINT)
        out, err = follower.communicate(timeout=10)
    finally:
        if follower.poll() is None:
            follower.kill()
    assert follower.returncode == 0
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert err == ""
    assert out == ""  # nothing more was committed


def test_verify_a_good_database(populated: tuple[Path, list[Event]]) -> None:
    path, events = populated
    result = agentdeck("verify", "--db", path)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("ok") and f"{len(events)} events" in lines[0]


def test_verify_lists_tampered_projections(populated: tuple[Path, list[Event]]) -> None:
    path, _ = populated
    conn = sqlite3.connect(path)
    conn.execute("UPDATE workers SET status = 'cancelled' WHERE worker_id = 'w-1'")
    conn.execute("UPDATE runs SET status = 'completed' WHERE run_id = 'r-1'")
    conn.commit()
    conn.close()
    details = verify_problems(path)
    assert "workers:" in details and "cancelled" in details
    assert "runs:" in details


def verify_problems(address: object) -> str:
    """`agentdeck verify` on a database it finds problems in: exit 1, a summary line, then
    the problem lines (returned as one text)."""
    result = agentdeck("verify", "--db", address)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "problem(s) in" in lines[0]
    assert "Traceback" not in result.stderr
    return "\n".join(lines[1:])


@pytest.mark.parametrize("command", ["events", "verify"])
def test_a_text_file_as_db_is_one_line_and_exit_2(tmp_path: Path, command: str) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database\n")
    result = agentdeck(command, "--db", path)
    assert result.returncode == 2
    assert "not a SQLite database" in one_line_error(result)
    assert path.read_text() == "not a database\n"


def test_unusable_databases_are_one_line_and_exit_2(tmp_path: Path) -> None:
    newer = tmp_path / "newer.db"
    asyncio.run(_populate(newer))
    conn = sqlite3.connect(newer)
    conn.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    conn.commit()
    conn.close()
    result = agentdeck("events", "--db", newer)
    assert result.returncode == 2 and "newer agentdeck" in one_line_error(result)
    missing = tmp_path / "missing.db"
    result = agentdeck("events", "--db", missing)
    assert result.returncode == 2 and "does not exist" in one_line_error(result)
    assert not missing.exists()
    assert not missing.with_name("missing.db-wal").exists()
