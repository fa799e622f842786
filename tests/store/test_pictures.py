"""The pictures' store side (issue 11): the `activity` rollup and `runs.ended_at` the fold
keeps, the migration that backfills them, and the queries that draw them
(`fleet_picture`, `worker_picture`, store.picture_reads).

Every test runs on both back ends (`db_address`) unless it needs the SQLite file
itself. Events are appended with chosen `at` values, so "now" is a time of the
test's choosing and every count is known exactly.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from uuid6 import uuid7

from store.codec import dt_from_us, us_from_dt
from store.errors import LimitTooLarge, StoreError
from store.models import NewEvent, RunStatus, WorkerRef
from store.open import open_store
from store.picture_reads import MAX_ENDED_RUNS
from store.pictures import (
    DURATION_WINDOW_S,
    ERROR_WINDOW_MIN,
    RATE_WINDOW_S,
    LevelCounts,
    ProfileDurations,
)
from store.schema import APPLICATION_ID, MIGRATIONS, PROJECTIONS
from store.verify import verify_address
from tests.store.support import behind_the_store, query

S = 1_000_000  # microseconds in a second
NOW = us_from_dt(datetime(2026, 11, 30, 12, 0, tzinfo=UTC)) + 600 * S + S // 2  # 12:10:00.5
NOW_S = NOW // S
OPEN = {RunStatus.CREATED: 0, RunStatus.PLANNING: 0, RunStatus.EXECUTING: 0, RunStatus.VERIFYING: 0}
ENDED = {RunStatus.COMPLETED: 0, RunStatus.FAILED: 0, RunStatus.CANCELLED: 0}


class Fleet:
    """Events of one runtime, each at a time the test chooses (microseconds)."""

    def __init__(self, runtime_id: str) -> None:
        self.runtime_id = runtime_id
        self.run_seq: dict[str, int] = {}

    def ev(self, kind: str, at: int, **fields: Any) -> NewEvent:
        return NewEvent(event_id=uuid7(), kind=kind, at=dt_from_us(at), **fields)

    def started(self, at: int) -> NewEvent:
        return self.ev("runtime.started", at, payload={"limits": {}})

    def worker(self, worker_id: str, at: int, profile: str | None = None) -> NewEvent:
        spec: dict[str, Any] = {"intent": {"type": "assistant"}}
        if profile is not None:
            spec["profile"] = profile
        return self.ev("worker.created", at, worker_id=worker_id, payload={"spec": spec})

    def diag(self, severity: str, at: int, worker_id: str | None = None) -> NewEvent:
        return self.ev(
            "diagnostic.raised", at, worker_id=worker_id,
            payload={"severity": severity, "code": "c", "message": "m"},
        )

    def step(self, worker_id: str, run_id: str, kind: str, at: int, **payload: Any) -> NewEvent:
        self.run_seq[run_id] = self.run_seq.get(run_id, 0) + 1
        return self.ev(
            kind, at, worker_id=worker_id, run_id=run_id, run_seq=self.run_seq[run_id],
            payload=payload,
        )

    def run(
        self, worker_id: str, run_id: str, created: int, end: str | None = None,
        ended: int | None = None, via: Sequence[str] = ("executing",),
    ) -> list[NewEvent]:
        """run.created at `created`, then `via` statuses, then run.`end` at `ended` (if any)."""
        events = [self.step(worker_id, run_id, "run.created", created, prompt="p")]
        events += [self.step(worker_id, run_id, f"run.{s}", created) for s in via]
        if end is not None:
            assert ended is not None
            events.append(self.step(worker_id, run_id, f"run.{end}", ended, **_end_payload(end)))
        return events


def _end_payload(end: str) -> dict[str, Any]:
    return {"completed": {"result": "ok"}, "failed": {"error": "boom"},
            "cancelled": {"reason": "asked"}}[end]


def slots_with_events(picture_slots: Sequence[LevelCounts]) -> dict[int, LevelCounts]:
    """The non-empty per-second slots, by their offset from the last (0 = now's second)."""
    last = len(picture_slots) - 1
    return {i - last: c for i, c in enumerate(picture_slots) if c.total}


# ---------------------------------------------------------------------------
# The event rate and the errors per minute (the `activity` rollup)
# ---------------------------------------------------------------------------


async def test_events_per_second_by_level_summed_over_runtimes(store: Any) -> None:
    a, b = Fleet("a"), Fleet("b")
    ten_ago = (NOW_S - 10) * S
    await store.append("a", None, [a.started(ten_ago), a.diag("info", ten_ago + 1)])
    # The same second again in later appends: the rollup adds to its row.
    await store.append("a", None, [a.diag("warning", ten_ago + 2), a.diag("warning", ten_ago + 3)])
    await store.append("a", None, [a.diag("error", ten_ago + 999_999)])
    await store.append("b", None, [b.started(ten_ago + 5), b.diag("info", ten_ago + 6)])
    await store.append("a", None, [a.diag("info", NOW - 1), a.diag("error", NOW_S * S)])
    picture = await store.fleet_picture(NOW)
    assert picture.now_us == NOW
    assert len(picture.per_second) == RATE_WINDOW_S
    assert slots_with_events(picture.per_second) == {
        -10: LevelCounts(info=4, warning=2, error=1),
        0: LevelCounts(info=1, error=1),
    }
    assert len(picture.errors_per_minute) == ERROR_WINDOW_MIN
    # 12:09:50 and 12:10:00: one error in each of the last two minutes.
    assert picture.errors_per_minute[-2:] == (1, 1) and sum(picture.errors_per_minute) == 2


async def test_the_windows_end_where_their_slots_do(store: Any) -> None:
    a = Fleet("a")
    first = NOW_S - RATE_WINDOW_S + 1  # the oldest second drawn
    minute = NOW_S // 60
    first_minute = minute - ERROR_WINDOW_MIN + 1
    await store.append("a", None, [
        a.started(first * S - 1),  # the last microsecond before the window: left out
        a.diag("info", first * S),  # the window's first microsecond: slot 0
        a.diag("warning", NOW_S * S + 999_999),  # later in now's second: its slot counts it
        a.diag("info", (NOW_S + 1) * S),  # after now's second: left out
        a.diag("error", first_minute * 60 * S - 1),  # just before the hour: left out
        a.diag("error", first_minute * 60 * S),  # the hour's first minute: slot 0
        a.diag("error", first_minute * 60 * S + 59 * S),
        a.diag("error", (minute + 1) * 60 * S),  # the next minute: left out
    ])
    picture = await store.fleet_picture(NOW)
    assert picture.per_second[0] == LevelCounts(info=1)
    assert picture.per_second[-1] == LevelCounts(warning=1)
    assert sum(c.total for c in picture.per_second) == 2
    assert picture.errors_per_minute[0] == 2
    assert sum(picture.errors_per_minute) == 2


async def test_an_hour_old_database_shows_its_last_hour_at_once(db_address: str | Path) -> None:
    """Issue 11: a console opened on a database written an hour ago draws that hour
    from the store, not from what it saw arrive."""
    now = us_from_dt(datetime.now(UTC))
    a = Fleet("a")
    async with await open_store(db_address, watch=False) as writer:
        await writer.append("a", None, [
            a.started(now - 3700 * S), a.worker("w-1", now - 3700 * S, profile="slow"),
            a.diag("error", now - 55 * 60 * S), a.diag("error", now - 55 * 60 * S + 1),
            *a.run("w-1", "r-1", now - 31 * 60 * S, "failed", now - 30 * 60 * S),
            *[a.diag("info", now - 120 * S + i) for i in range(5)],
        ])
    async with await open_store(db_address, read_only=True, watch=False) as console:
        picture = await console.fleet_picture(now)
    minutes = {i - ERROR_WINDOW_MIN + 1: n for i, n in enumerate(picture.errors_per_minute) if n}
    now_minute = now // S // 60
    assert minutes == {
        (now - 55 * 60 * S) // S // 60 - now_minute: 2,
        (now - 30 * 60 * S) // S // 60 - now_minute: 1,  # run.failed is an error
    }
    assert slots_with_events(picture.per_second) == {
        (now - 120 * S) // S - now // S: LevelCounts(info=5)
    }
    assert picture.runs_ended == {**ENDED, RunStatus.FAILED: 1}
    assert picture.durations == (
        ProfileDurations(profile="slow", runs=1, p50_s=60.0, p95_s=60.0, failed=1),
    )


# ---------------------------------------------------------------------------
# Runs: open by status, ended in the hour, durations per profile
# ---------------------------------------------------------------------------


async def test_open_and_ended_runs_by_status(store: Any) -> None:
    a, b = Fleet("a"), Fleet("b")
    t = NOW - 7200 * S
    await store.append("a", None, [a.started(t), a.worker("w-1", t)])
    await store.append("b", None, [b.started(t), b.worker("w-1", t)])
    await store.append("a", None, [
        *a.run("w-1", "r-1", NOW - 20 * S, "completed", NOW - 10 * S),
        *a.run("w-1", "r-2", NOW - 3600 * S, "failed", NOW - 3600 * S),  # the window's first µs
        *a.run("w-1", "r-3", NOW - 3700 * S, "cancelled", NOW - 3600 * S - 1),  # just before
        *a.run("w-1", "r-4", NOW - 5 * S),  # executing
        *a.run("w-1", "r-5", NOW - 5 * S, via=()),  # created (queued)
        *a.run("w-1", "r-6", NOW - 5 * S, "completed", NOW + S),  # ends after now
        *a.run("w-1", "r-7", NOW - 5 * S, via=("planning", "executing", "verifying")),
    ])
    await store.append("b", None, [
        *b.run("w-1", "r-1", NOW - 5 * S, via=("planning",)),
        *b.run("w-1", "r-2", NOW - 9 * S, "cancelled", NOW - 8 * S),
    ])
    picture = await store.fleet_picture(NOW)
    assert picture.runs_open == {
        RunStatus.CREATED: 1, RunStatus.PLANNING: 1, RunStatus.EXECUTING: 1,
        RunStatus.VERIFYING: 1,
    }
    assert picture.runs_ended == {
        RunStatus.COMPLETED: 1, RunStatus.FAILED: 1, RunStatus.CANCELLED: 1,
    }
    assert [d.runs for d in picture.durations] == [3]


async def test_run_durations_per_profile(store: Any) -> None:
    a = Fleet("a")
    t = NOW - 7200 * S
    await store.append("a", None, [
        a.started(t), a.worker("w-1", t, profile="fast"), a.worker("w-2", t, profile="slow"),
        a.worker("w-3", t),  # names no profile: the default one
        a.worker("w-4", t, profile="fast"),
    ])
    ends = {3: "failed", 8: "failed", 15: "cancelled"}
    events: list[NewEvent] = []
    for i in range(1, 21):  # "fast": 1 s .. 20 s over two workers
        start = NOW - 1800 * S - i * 60 * S
        events += a.run(f"w-{1 if i % 2 else 4}", f"f-{i}", start, ends.get(i, "completed"),
                        start + i * S)
    events += a.run("w-2", "s-1", NOW - 600 * S, "completed", NOW - 500 * S)
    events += a.run("w-2", "s-old", NOW - 4000 * S, "completed", NOW - 3601 * S)  # before the hour
    events += a.run("w-2", "s-open", NOW - 4000 * S)  # open: no duration yet
    for i, took in enumerate((9, 5, 7)):
        events += a.run("w-3", f"d-{i}", NOW - 60 * S, "completed", NOW - 60 * S + took * S)
    await store.append("a", None, events)
    picture = await store.fleet_picture(NOW)
    # Nearest rank: p50 of 1..20 is the 10th value, p95 the 19th.
    assert picture.durations == (
        ProfileDurations(profile="default", runs=3, p50_s=7.0, p95_s=9.0, failed=0),
        ProfileDurations(profile="fast", runs=20, p50_s=10.0, p95_s=19.0, failed=3),
        ProfileDurations(profile="slow", runs=1, p50_s=100.0, p95_s=100.0, failed=0),
    )
    assert picture.runs_ended == {
        RunStatus.COMPLETED: 21, RunStatus.FAILED: 2, RunStatus.CANCELLED: 1,
    }
    assert picture.ended_span_s == DURATION_WINDOW_S  # every run of the hour was read


@pytest.mark.sqlite_only
async def test_a_busy_hour_is_drawn_from_its_newest_runs(store: Any) -> None:
    """More runs ended in the hour than a picture reads (MAX_ENDED_RUNS): the counts and
    the durations are those of the newest ones, so the picture's cost stays bounded.

    On SQLite alone: the cap is the same query and the same Python on both back ends
    (store.picture_reads), and folding these 10k events on PostgreSQL takes ~40 s."""
    a = Fleet("a")
    t = NOW - 7200 * S
    await store.append("a", None, [a.started(t), a.worker("w-1", t, profile="busy")])
    extra = 10
    events: list[NewEvent] = []
    for i in range(MAX_ENDED_RUNS + extra):
        # Run i ends i ms after the hour began and took 1 s, except the `extra`
        # oldest, which took 100 s and failed: left out, they change nothing.
        ended = NOW - 3600 * S + i * 1000
        took, end = (100, "failed") if i < extra else (1, "completed")
        events += a.run("w-1", f"r-{i}", ended - took * S, end, ended, via=())
        if len(events) >= 2000:
            await store.append("a", None, events)
            events = []
    await store.append("a", None, events)
    picture = await store.fleet_picture(NOW)
    assert picture.runs_ended == {**ENDED, RunStatus.COMPLETED: MAX_ENDED_RUNS}
    assert picture.durations == (
        ProfileDurations(profile="busy", runs=MAX_ENDED_RUNS, p50_s=1.0, p95_s=1.0, failed=0),
    )
    # The picture says how far back it reaches: the oldest run kept ended 10 ms after
    # the hour began, so 3,599 whole seconds, not the hour.
    assert picture.ended_span_s == 3599


async def test_worker_picture_is_its_last_runs_oldest_first(store: Any) -> None:
    a = Fleet("a")
    t = NOW - 7200 * S
    await store.append("a", None, [a.started(t), a.worker("w-1", t), a.worker("w-2", t)])
    events: list[NewEvent] = []
    for i in range(1, 5):
        start = NOW - (10 - i) * 60 * S
        events += a.run("w-1", f"r-{i}", start, "failed" if i == 2 else "completed", start + i * S)
    events += a.run("w-2", "other", NOW - 30 * S, "completed", NOW - 20 * S)
    events += a.run("w-1", "r-5", NOW - 30 * S)  # still open
    await store.append("a", None, events)
    ref = WorkerRef(runtime_id="a", worker_id="w-1")
    picture = await store.worker_picture(ref, NOW, limit=3)
    assert picture.now_us == NOW
    assert [(r.run_id, r.status) for r in picture.runs] == [
        ("r-3", RunStatus.COMPLETED), ("r-4", RunStatus.COMPLETED), ("r-5", RunStatus.EXECUTING),
    ]
    assert [r.duration_s(NOW) for r in picture.runs] == [3.0, 4.0, 30.0]
    assert picture.runs[-1].ended_at_us is None
    every = await store.worker_picture(ref, NOW)
    assert [r.run_id for r in every.runs] == ["r-1", "r-2", "r-3", "r-4", "r-5"]
    assert every.runs[1].status is RunStatus.FAILED
    assert every.runs[1].ended_at_us == NOW - 8 * 60 * S + 2 * S
    nobody = await store.worker_picture(WorkerRef(runtime_id="a", worker_id="w-9"), NOW)
    assert nobody.runs == ()
    with pytest.raises(StoreError, match="at least 1"):
        await store.worker_picture(ref, NOW, limit=0)
    with pytest.raises(LimitTooLarge):
        await store.worker_picture(ref, NOW, limit=100_000)


async def test_an_empty_database_draws_empty_pictures(store: Any) -> None:
    picture = await store.fleet_picture(NOW)
    assert picture.per_second == (LevelCounts(),) * RATE_WINDOW_S
    assert picture.errors_per_minute == (0,) * ERROR_WINDOW_MIN
    assert (picture.runs_open, picture.runs_ended, picture.durations) == (OPEN, ENDED, ())


# ---------------------------------------------------------------------------
# The fold's terminal states, the rebuild and verify
# ---------------------------------------------------------------------------


def tricky_log() -> list[tuple[str, list[NewEvent]]]:
    """Two runtimes' appends, with what the fold must get right: a run's terminal event
    logged before its run.created (ignored), a completion after a cancel (terminal
    states stick), one second spread over appends, every level."""
    a, b = Fleet("a"), Fleet("b")
    t = NOW - 600 * S
    return [
        ("a", [a.started(t), a.worker("w-1", t, profile="p"), a.diag("warning", t + 1)]),
        ("b", [b.started(t + 2), b.worker("w-1", t + 2)]),
        ("a", [a.step("w-1", "early", "run.completed", t + 3, result="too soon")]),
        ("a", a.run("w-1", "early", t + 4, "failed", t + 50 * S)),
        ("a", [*a.run("w-1", "sticky", t + 5, "cancelled", t + 60 * S),
               a.step("w-1", "sticky", "run.completed", t + 70 * S, result="late")]),
        ("b", [*b.run("w-1", "r-1", t + 6, "completed", t + 61 * S), b.diag("error", t + 7)]),
        ("a", a.run("w-1", "open", t + 8)),
    ]


async def test_terminal_states_stick_and_end_the_run_once(store: Any, db_address: Any) -> None:
    for runtime_id, events in tricky_log():
        await store.append(runtime_id, None, events)
    rows = query(db_address, "SELECT run_id, status, ended_at FROM runs ORDER BY runtime_id, run_id")
    t = NOW - 600 * S
    assert rows == [
        ("early", "failed", t + 50 * S), ("open", "executing", None),
        ("sticky", "cancelled", t + 60 * S), ("r-1", "completed", t + 61 * S),
    ]
    assert (await store.verify()).ok


async def test_rebuild_and_verify_cover_the_rollup(store: Any, db_address: Any) -> None:
    for runtime_id, events in tricky_log():
        await store.append(runtime_id, None, events)
    activity = "SELECT second, runtime_id, level, events FROM activity ORDER BY 1, 2, 3"
    runs = "SELECT runtime_id, run_id, ended_at FROM runs ORDER BY 1, 2"
    before = (query(db_address, activity), query(db_address, runs))
    second = (NOW - 600 * S) // S
    behind_the_store(db_address, "UPDATE activity SET events = events + 1 WHERE runtime_id = 'a'"
                     " AND second = ? AND level = 0", (second,))
    behind_the_store(db_address, "DELETE FROM activity WHERE runtime_id = 'b' AND level = 2")
    behind_the_store(db_address, "UPDATE runs SET ended_at = NULL WHERE run_id = 'sticky'")
    report = await store.verify()
    assert any(p.startswith("activity:") for p in report.problems)
    assert any(p.startswith("runs:") for p in report.problems)
    # The cheap check sees a wrong count of events (it does not read ended_at: verify does).
    assert await store.projection_problems("a") == [
        "activity: counts 14 events of a but its log holds 13"
    ]
    assert await store.projection_problems("b") == [
        "activity: counts 5 events of b but its log holds 6"
    ]
    for runtime_id in ("a", "b"):
        rebuilt = await store.rebuild_projections(runtime_id)
        assert rebuilt.remaining == ()
    assert (query(db_address, activity), query(db_address, runs)) == before
    assert (await store.verify()).ok


# ---------------------------------------------------------------------------
# The migration: an older database gets the rollup and the end times the fold gives
# ---------------------------------------------------------------------------


def _pictures_version(migrations: dict[int, tuple[Any, ...]]) -> int:
    """The migration that brought the pictures (it creates `activity`)."""
    return next(
        v for v, steps in migrations.items()
        if any(isinstance(s, str) and "CREATE TABLE activity" in s for s in steps)
    )


def old_database(address: str | Path) -> None:
    """A new database at `address` at the schema just before the pictures."""
    if isinstance(address, str):
        import psycopg

        from store.postgres.schema import APPLICATION
        from store.postgres.schema import MIGRATIONS as PG_MIGRATIONS

        old = _pictures_version(PG_MIGRATIONS) - 1
        with psycopg.connect(address, autocommit=True) as pg, pg.transaction():
            for version in range(1, old + 1):
                for step in PG_MIGRATIONS[version]:
                    if callable(step):
                        step(pg)
                    else:
                        pg.execute(step)
            pg.execute(
                "INSERT INTO agentdeck_meta (key, value) VALUES ('application', %s),"
                " ('schema_version', %s)", (APPLICATION, str(old)),
            )
        return
    old = _pictures_version(MIGRATIONS) - 1
    conn = sqlite3.connect(address, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("BEGIN")
        for version in range(1, old + 1):
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {old}")
        conn.execute("COMMIT")
    finally:
        conn.close()


def copy_old_columns(source: Path, target: str | Path) -> None:
    """The log and the projections of `source` (a SQLite file at the newest schema) into
    `target` (at the older one), as an older agentdeck would have written them."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        for table in ("events", *PROJECTIONS):
            if table == "activity":
                continue
            columns = [r[1] for r in src.execute(f"PRAGMA table_info({table})") if r[1] != "ended_at"]
            rows = src.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
            if rows:
                marks = ", ".join("?" * len(columns))
                for row in rows:
                    behind_the_store(
                        target, f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", row
                    )
    finally:
        src.close()


async def older_file_of_tricky_log(address: str | Path, tmp_path: Path) -> Path:
    """`tricky_log` written at `address` as an agentdeck before the pictures would have
    (no `activity`, no `ended_at`); returns the same log folded by this one."""
    folded = tmp_path / "folded.db"
    async with await open_store(folded, watch=False) as writer:
        for runtime_id, events in tricky_log():
            await writer.append(runtime_id, None, events)
    old_database(address)
    copy_old_columns(folded, address)
    return folded


async def test_the_migration_backfills_what_the_fold_gives(
    db_address: str | Path, tmp_path: Path
) -> None:
    """Issue 11: a database written before the pictures, opened by this agentdeck, gets
    `activity` and `runs.ended_at` equal to what the fold would have written (so verify,
    which replays the fold, agrees at once)."""
    folded = await older_file_of_tricky_log(db_address, tmp_path)
    async with await open_store(db_address, watch=False) as migrated:
        assert (await migrated.verify()).ok
        picture = await migrated.fleet_picture(NOW)
    for sql in (
        "SELECT second, runtime_id, level, events FROM activity ORDER BY 1, 2, 3",
        "SELECT runtime_id, run_id, status, ended_at FROM runs ORDER BY 1, 2",
    ):
        assert query(db_address, sql) == query(folded, sql)
    async with await open_store(folded, read_only=True, watch=False) as reader:
        assert picture == await reader.fleet_picture(NOW)
    assert verify_address(db_address).ok


@pytest.mark.sqlite_only
async def test_an_observer_of_an_older_file_draws_what_it_can(
    db_address: Path, tmp_path: Path
) -> None:
    """A read-only console does not migrate a file an older agentdeck still writes: no
    rollup and no end times there, so only the open runs; nothing fails."""
    await older_file_of_tricky_log(db_address, tmp_path)
    async with await open_store(db_address, read_only=True, watch=False) as observer:
        picture = await observer.fleet_picture(NOW)
        worker = await observer.worker_picture(WorkerRef(runtime_id="a", worker_id="w-1"), NOW)
    assert picture.per_second == (LevelCounts(),) * RATE_WINDOW_S
    assert picture.runs_open == {**OPEN, RunStatus.EXECUTING: 1}
    assert (picture.runs_ended, picture.durations) == (ENDED, ())
    assert [(r.run_id, r.ended_at_us) for r in worker.runs] == [
        ("early", None), ("sticky", None), ("open", None)
    ]
