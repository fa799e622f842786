"""`agentdeck events --at` and `agentdeck --at`, run as real processes on a real file.

The database is the past scene (tests.ui.scenes.seed_past_scene): 42 events, with a
stepping clock, in three phases two minutes apart: positions 1-11 at 09:00 on
2026-01-01, 12-31 at 09:02, 32-42 at 09:04.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.clock import CountingIds, SteppingClock
from engine.runtime import Runtime
from store.event_store import EventStore
from store.open import open_store
from tests.store.support import AGENTDECK, REPO, child_env
from tests.ui.scenes import SCENE_CONFIG, open_past_scene_backend, seed_past_scene

LAST = 42


def agentdeck(*args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(AGENTDECK), *(str(a) for a in args)],
        capture_output=True, text=True, timeout=30, env=env or child_env(), check=False,
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """Exit 2, nothing on stdout, exactly one `agentdeck:` line on stderr, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("agentdeck: ")
    return lines[0]


async def _seed(db: Path) -> None:
    backend = await open_past_scene_backend(db)
    await backend.close()


@pytest.fixture(scope="module")
def scene_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("past") / "past.db"
    asyncio.run(_seed(db))
    return db


def positions(result: subprocess.CompletedProcess[str]) -> list[int]:
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return [int(line.split()[0]) for line in result.stdout.splitlines()]


def test_events_at_a_position_prints_the_log_as_it_was(scene_db: Path) -> None:
    assert positions(agentdeck("--db", scene_db, "events")) == list(range(1, LAST + 1))
    assert positions(agentdeck("--db", scene_db, "events", "--at", 11)) == list(range(1, 12))
    assert positions(agentdeck("--db", scene_db, "events", "--at", 0)) == []
    assert positions(agentdeck("--db", scene_db, "events", "--at", LAST)) == list(range(1, LAST + 1))


def test_events_at_a_time_is_the_last_event_committed_by_then(scene_db: Path) -> None:
    at_nine_one = agentdeck("--db", scene_db, "events", "--at", "2026-01-01T09:01:00Z")
    assert positions(at_nine_one) == list(range(1, 12))
    # A time with no zone is UTC; one with a zone is converted.
    assert positions(agentdeck("--db", scene_db, "events", "--at", "2026-01-01T09:02:00.2")) == list(
        range(1, 22)
    )
    assert positions(
        agentdeck("--db", scene_db, "events", "--at", "2026-01-01T10:02:00.2+01:00")
    ) == list(range(1, 22))
    # A time of day is today's, in the local zone: today is long after the scene.
    env = {**child_env(), "TZ": "UTC"}
    today = agentdeck("--db", scene_db, "events", "--at", "00:00:01", env=env)
    assert positions(today) == list(range(1, LAST + 1))


def test_events_at_combines_with_filter_after_limit_and_json(scene_db: Path) -> None:
    result = agentdeck(
        "--db", scene_db, "events", "--at", 31, "--after", 20, "--filter", "kind:run.*",
        "--limit", 3, "--json",
    )
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["position"], r["kind"]) for r in rows] == [
        (21, "run.tool.completed"), (22, "run.step.started"), (23, "run.verifying"),
    ]
    # The cut is the log's, not the page's: a filter that matches nothing after it ends there.
    failed = agentdeck("--db", scene_db, "events", "--at", 23, "--filter", "kind:run.failed")
    assert positions(failed) == []
    assert positions(agentdeck("--db", scene_db, "events", "--at", 24, "--filter", "kind:run.failed")) == [24]
    assert positions(agentdeck("--db", scene_db, "events", "--at", 11, "--after", 11)) == []


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("-1", "a position is 0 or more"),
        (str(LAST + 1), f"position {LAST + 1:,} is beyond the log (its last position is {LAST})"),
        ("yesterday", "is neither a position"),
        ("25:00", "is not a time of day"),
        ("2026-01-01T08:59:59Z", "is before the first event (2026-01-01 09:00:00 UTC)"),
        ("2999-01-01T00:00:00Z", "is in the future"),
        ("", "give a position"),
    ],
)
def test_a_bad_moment_is_one_line_and_exit_2(scene_db: Path, value: str, says: str) -> None:
    line = one_line_error(agentdeck("--db", scene_db, "events", f"--at={value}"))
    assert says in line
    # The console refuses it the same way, before it takes the screen over.
    line = one_line_error(agentdeck("--db", scene_db, f"--at={value}"))
    assert says in line


def test_at_cannot_follow_and_is_not_for_other_commands(scene_db: Path) -> None:
    line = one_line_error(agentdeck("--db", scene_db, "events", "--at", 5, "--follow"))
    assert "cannot be combined with --follow" in line
    line = one_line_error(agentdeck("--db", scene_db, "--at", 5, "verify"))
    assert "--at is for the console and `events`" in line


def test_an_empty_log_has_no_past(tmp_path: Path) -> None:
    db = tmp_path / "empty.db"

    async def create() -> None:
        store = await EventStore.open(db, watch=False)
        await store.close()

    asyncio.run(create())
    line = one_line_error(agentdeck("--db", db, "events", "--at", "2026-01-01T09:00:00Z"))
    assert "the log is empty" in line
    assert positions(agentdeck("--db", db, "events", "--at", 0)) == []


def test_events_at_does_not_import_textual(scene_db: Path) -> None:
    code = (
        "import sys; from tui.cli import main\n"
        "try:\n    main(['--db', sys.argv[1], 'events', '--at', '2026-01-01T09:01:00Z'])\n"
        "except SystemExit: pass\n"
        "sys.stdout.flush()\n"
        "assert 'textual' not in sys.modules, 'events --at imported textual'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(scene_db)],
        capture_output=True, text=True, env=child_env(), cwd=REPO, timeout=30, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 11


async def _seed_on(address: str | Path, config: Path) -> None:
    """The past scene on any back end, hosted the way a console hosts it (`config` holds
    its profiles)."""
    store = await open_store(address, watch=False)
    try:
        clock = SteppingClock()
        runtime = await Runtime.host(
            store, "local", clock=clock, ids=CountingIds(), config_path=config
        )
        try:
            await seed_past_scene(runtime, clock)
        finally:
            await runtime.close()
    finally:
        await store.close()


def test_events_at_on_both_back_ends(db_address: str | Path, tmp_path: Path) -> None:
    config = tmp_path / "agentdeck.toml"
    config.write_text(SCENE_CONFIG)
    asyncio.run(_seed_on(db_address, config))
    assert positions(agentdeck("--db", db_address, "events", "--at", 11)) == list(range(1, 12))
    at_time = agentdeck("--db", db_address, "events", "--at", "2026-01-01T09:03:00Z")
    assert positions(at_time) == list(range(1, 32))
    filtered = agentdeck(
        "--db", db_address, "events", "--at", 31, "--after", 20, "--filter", "kind:run.*",
        "--limit", 3,
    )
    assert positions(filtered) == [21, 22, 23]
    line = one_line_error(agentdeck("--db", db_address, "events", "--at", LAST + 1))
    assert f"beyond the log (its last position is {LAST})" in line
    line = one_line_error(agentdeck("--db", db_address, "events", "--at", "2026-01-01T08:00:00Z"))
    assert "is before the first event" in line
