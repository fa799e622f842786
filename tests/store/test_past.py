"""The past (store.past_view): a real `agentdeck demo` writes the log while this test
captures the live projections at random moments; each must equal the past opened at
the position it was captured at, folded from checkpoints (a small N) on both back ends.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from store.checkpoints import EVERY_VARIABLE, new_scratch
from store.codec import normal_row
from store.models import WorkerRef
from store.open import open_store
from store.past import Step
from store.past_view import MARK_EVERY
from store.projector import STORED_COLUMNS, project, stored_row
from store.schema import PROJECTIONS
from tests.store.support import AGENTDECK, child_env, query

if TYPE_CHECKING:
    from store.open import AnyStore

N = 40  # checkpoints every 40 events: a demo of a few thousand events crosses many

Tables = dict[str, list[tuple[object, ...]]]


def compared_tables() -> dict[str, str]:
    """The projections a past view answers for (activity is a rollup, not shown in the past)."""
    return {t: order for t, order in PROJECTIONS.items() if t != "activity"}


def scratch_columns(table: str) -> str:
    scratch = new_scratch()
    try:
        return ", ".join(str(r[1]) for r in scratch.execute(f"PRAGMA table_info({table})"))
    finally:
        scratch.close()


def capture(address: str | Path) -> tuple[int, Tables]:
    """The live projections and the last position, read in one read transaction."""
    statements = [
        (table, f"SELECT {scratch_columns(table)} FROM {table} ORDER BY {order}")
        for table, order in compared_tables().items()
    ]
    if isinstance(address, str):
        with psycopg.connect(address, autocommit=True) as pg:
            pg.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            last = pg.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()
            tables = {t: [normal_row(r) for r in pg.execute(s).fetchall()] for t, s in statements}
            pg.execute("COMMIT")
        assert last is not None
        return int(last[0]), tables
    conn = sqlite3.connect(f"file:{address}?mode=ro", uri=True, isolation_level=None, timeout=10)
    try:
        conn.execute("BEGIN")
        position = int(conn.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()[0])
        tables = {t: [tuple(r) for r in conn.execute(s).fetchall()] for t, s in statements}
        conn.execute("COMMIT")
        return position, tables
    finally:
        conn.close()


def fold_from_zero(address: str | Path, position: int) -> Tables:
    """The projections at `position` by the writer's fold from the first event (the reference)."""
    raw = query(
        address,
        f"SELECT {STORED_COLUMNS} FROM events WHERE position <= ? ORDER BY position",
        (position,),
    )
    scratch = new_scratch()
    try:
        scratch.execute("BEGIN")
        project(scratch, [stored_row(normal_row(r)) for r in raw])
        return {
            t: [tuple(r) for r in scratch.execute(
                f"SELECT {scratch_columns(t)} FROM {t} ORDER BY {order}")]
            for t, order in compared_tables().items()
        }
    finally:
        scratch.close()


def run_demo(
    address: str | Path, *, seconds: float = 2.0, rate: int = 1500, every: int = N
) -> None:
    done = subprocess.run(
        [str(AGENTDECK), "--db", str(address), "demo", "--workers", "4", "--rate", str(rate),
         "--duration", str(seconds), "--fail-rate", "0.2"],
        env=demo_env(every), capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr


def demo_env(every: int = N) -> dict[str, str]:
    env = child_env()
    env[EVERY_VARIABLE] = str(every)
    return env


@pytest.fixture
def small_n(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv(EVERY_VARIABLE, str(N))
    return N


@pytest.fixture
async def demo_store(db_address: str | Path, small_n: int) -> Any:
    """A database a real demo wrote (checkpointed at every N), open as a writer."""
    run_demo(db_address)
    store = await open_store(db_address, watch=False)
    try:
        await store.checkpoint_now()
        yield store
    finally:
        await store.close()


async def test_the_past_equals_what_the_live_projections_were(
    db_address: str | Path, small_n: int
) -> None:
    store = await open_store(db_address, watch=False)  # its follower checkpoints as the demo runs
    demo = await asyncio.create_subprocess_exec(
        str(AGENTDECK), "--db", str(db_address), "demo", "--workers", "5", "--rate", "1500",
        "--duration", "3", "--fail-rate", "0.2", env=demo_env(),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    rng = random.Random(11)
    captures: dict[int, Tables] = {}
    try:
        while demo.returncode is None:
            position, tables = await asyncio.to_thread(capture, db_address)
            captures[position] = tables
            await asyncio.sleep(rng.uniform(0.02, 0.25))
            with_timeout = asyncio.wait_for(demo.wait(), 0.001)
            try:
                await with_timeout
            except TimeoutError:
                pass
        assert demo.returncode == 0, await demo.stderr.read() if demo.stderr else ""
        await store.checkpoint_now()
        checkpoints = query(db_address, "SELECT position FROM checkpoints ORDER BY position")
        last = await store.last_position()
        assert [p for (p,) in checkpoints] == list(range(N, last + 1, N))
        moving = [p for p in captures if p > 0]
        assert len(moving) >= 5, "the demo moved the log between captures"
        view = await store.open_past(max(captures))
        try:
            for position in rng.sample(sorted(captures), len(captures)):
                await view.move_to(position)
                assert view.position == position
                assert await view.tables() == captures[position], position
                fresh = await store.open_past(position)
                try:
                    assert fresh.base == position - position % N  # from its checkpoint
                    assert await fresh.tables() == captures[position]
                finally:
                    await fresh.close()
        finally:
            await view.close()
        assert (await store.verify()).ok
    finally:
        if demo.returncode is None:
            demo.kill()
            await demo.wait()
        await store.close()


async def test_stepping_by_event_run_and_minute(demo_store: AnyStore, db_address: str | Path) -> None:
    store = demo_store
    last = await store.last_position()
    middle = last // 2 + 7
    view = await store.open_past(middle)
    try:
        assert (view.position, view.newest) == (middle, last)
        assert await view.step(Step.EVENT, -1) and view.position == middle - 1
        assert await view.step(Step.EVENT, +1) and view.position == middle
        assert await view.tables() == fold_from_zero(db_address, middle)

        assert await view.step(Step.RUN, +1)
        forward = view.position
        kinds = query(db_address, "SELECT kind FROM events WHERE position > ? AND position <= ?",
                      (middle, forward))
        assert kinds[-1][0] in {"run.created", "run.completed", "run.failed", "run.cancelled"}
        assert all(k not in {"run.created", "run.completed", "run.failed", "run.cancelled"}
                   for (k,) in kinds[:-1]), "the nearest run event, none skipped"
        assert await view.tables() == fold_from_zero(db_address, forward)
        assert await view.step(Step.RUN, -1)
        assert view.position < forward
        assert await view.tables() == fold_from_zero(db_address, view.position)

        # The demo lasted seconds: a minute back is before the first event, forward the last.
        assert await view.step(Step.MINUTE, -1) and view.position == 0
        assert await view.tables() == {t: [] for t in compared_tables()}
        assert view.at is None
        assert not await view.step(Step.MINUTE, -1)
        assert not await view.step(Step.EVENT, -1)
        assert await view.step(Step.MINUTE, +1) and view.position == last
        assert not await view.step(Step.EVENT, +1)
        assert await view.tables() == fold_from_zero(db_address, last)
        await view.move_to(last + 1000)  # clamped to the log
        assert view.position == last
    finally:
        await view.close()


async def test_reads_of_the_past_stop_at_its_position(
    demo_store: AnyStore, db_address: str | Path
) -> None:
    store = demo_store
    position = (await store.last_position()) // 3
    view = await store.open_past(position)
    try:
        assert await view.last_position() == position
        batch = await view.read_after(position - 5, 100)
        assert [e.position for e in batch.events] == list(range(position - 4, position + 1))
        assert not batch.has_more and batch.cursor.position == position
        before = await view.read_before(10**9, 3)
        assert [e.position for e in before] == [position, position - 1, position - 2]
        assert view.at == (await store.read_after(position - 1, 1)).events[0].at

        tables = await view.tables()
        [runtime] = await view.runtimes()
        assert [runtime.runtime_id] == [r[0] for r in tables["runtimes"]]
        workers = await view.workers(runtime.runtime_id)
        assert len(workers) == len(tables["workers"])
        for worker in workers:
            ref = WorkerRef(runtime_id=runtime.runtime_id, worker_id=worker.worker_id)
            page = await view.transcript(ref, 0, 500)
            entries = [r for r in tables["transcript"] if r[1] == worker.worker_id]
            assert page.total_items == worker.transcript_len == len(entries)
            assert [i.sequence for i in page.items] == [r[2] for r in entries][:500]
            runs = await view.runs(runtime.runtime_id, worker.worker_id, 1000)
            assert {r.run_id for r in runs} == {
                r[1] for r in tables["runs"] if r[2] == worker.worker_id
            }
        diagnostics = await view.diagnostics(runtime.runtime_id)
        assert [d.id for d in diagnostics] == sorted((r[0] for r in tables["diagnostics"]),
                                                     reverse=True)
        assert all(d.id <= position for d in diagnostics)
        assert await view.diagnostic_count(runtime.runtime_id) == len(diagnostics)
    finally:
        await view.close()


async def test_position_at_finds_the_last_event_at_or_before_a_time(
    demo_store: AnyStore, db_address: str | Path
) -> None:
    store = demo_store
    times = [int(a) for (a,) in query(db_address, "SELECT at FROM events ORDER BY position")]
    rng = random.Random(5)
    assert await store.position_at(times[0] - 1) == 0
    assert await store.position_at(times[-1]) == len(times)
    assert await store.position_at(times[-1] + 10**9) == len(times)
    for at in [*rng.sample(times, 20), *(t + 1 for t in rng.sample(times, 5))]:
        expected = max(p for p, t in enumerate(times, 1) if t <= at)
        assert await store.position_at(at) == expected


async def test_a_past_with_no_checkpoints_folds_from_the_start(
    db_address: str | Path, small_n: int
) -> None:
    run_demo(db_address, seconds=1.5, rate=1000, every=100_000)
    while not query(db_address, "SELECT 1 FROM events WHERE position = ?", (MARK_EVERY + 100,)):
        run_demo(db_address, seconds=1.5, rate=1000, every=100_000)  # a slow machine: more
    store = await open_store(db_address, watch=False, read_only=True)  # an observer writes none
    try:
        assert query(db_address, "SELECT count(*) FROM checkpoints") == [(0,)]
        position = await store.last_position() - 3
        view = await store.open_past(position)
        try:
            assert view.base == 0
            assert await view.tables() == fold_from_zero(db_address, position)
            # Back and forth across the view's own savepoints (every MARK_EVERY positions).
            assert position > MARK_EVERY + 10
            for target in (MARK_EVERY + 3, MARK_EVERY - 1, MARK_EVERY, MARK_EVERY + 1, 2, position):
                before = view.folded_events
                await view.move_to(target)
                assert await view.tables() == fold_from_zero(db_address, target), target
                assert view.loads == 1, "never loaded again: rolled back and folded on"
                if target == MARK_EVERY + 1:
                    assert view.folded_events - before == 1  # from the mark at MARK_EVERY
        finally:
            await view.close()
    finally:
        await store.close()
