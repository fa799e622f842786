"""Checkpoints of the fold (store.checkpoints) on both back ends: written at every N by the
follower of each writable store, once however many processes follow, checked by verify,
and never trusted when damaged: the past falls back, and the follower writes them again."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from store.checkpoints import TABLES, checkpoint_table, columns, new_scratch
from store.open import open_store
from tests.store.support import behind_the_store, new_event, query
from tests.store.test_past import N, demo_store, fold_from_zero, run_demo, small_n

if TYPE_CHECKING:
    from store.open import AnyStore

__all__ = ["demo_store", "small_n"]  # fixtures, used by name


def headers(address: str | Path) -> list[tuple[Any, ...]]:
    return query(address, "SELECT position, rows, digest FROM checkpoints ORDER BY position")


def versions(address: str | Path) -> list[tuple[Any, ...]]:
    """Every version of every checkpointed row: (tbl, position, *key, digest), in order."""
    out: list[tuple[Any, ...]] = []
    for tbl, keys in TABLES.items():
        out += [
            (tbl, *r) for r in query(
                address,
                f"SELECT position, {', '.join(keys)}, digest FROM {checkpoint_table(tbl)}"
                f" ORDER BY position, {', '.join(keys)}",
            )
        ]
    return sorted(out, key=lambda r: (r[1], r[0], r[2:]))


async def test_a_checkpoint_at_every_n_holding_the_rows_that_changed(
    demo_store: AnyStore, db_address: str | Path
) -> None:
    last = await demo_store.last_position()
    found = headers(db_address)
    assert [p for p, _, _ in found] == list(range(N, last + 1, N))
    rows = versions(db_address)
    for position, count, _ in found:
        assert count == sum(1 for r in rows if r[1] == position)
    # The first checkpoint holds every row there is at N (all were created since 0).
    at_n = fold_from_zero(db_address, N)
    assert sum(1 for r in rows if r[1] == N) == sum(len(at_n[t]) for t in TABLES)
    report = await demo_store.verify()
    assert report.ok, report.problems


async def test_a_second_follower_writes_no_checkpoint_twice(
    demo_store: AnyStore, db_address: str | Path, small_n: int
) -> None:
    before = versions(db_address)
    run_demo(db_address, seconds=1.0)  # a third process appends (and checkpoints) meanwhile
    other = await open_store(db_address, watch=False)
    try:
        await other.checkpoint_now()
        await demo_store.checkpoint_now()
        last = await demo_store.last_position()
        assert [p for p, _, _ in headers(db_address)] == list(range(N, last + 1, N))
        after = versions(db_address)
        assert after[: len(before)] == before
        assert len(after) == len(set(after))
        # It took the newest checkpoint it found rather than folding the log again.
        assert other.checkpointer is not None and other.checkpointer.position == last
        assert other.checkpointer.loaded_from >= max(r[1] for r in before)
        report = await other.verify()
        assert report.ok, report.problems
    finally:
        await other.close()


DAMAGE = {
    "edited row": "UPDATE checkpoint_workers SET queued = queued + 1 WHERE position = ?",
    "deleted row": "DELETE FROM checkpoint_workers WHERE position = ?",
    "deleted header": "DELETE FROM checkpoints WHERE position = ?",
    "edited digest": "UPDATE checkpoint_runs SET digest = 'ff' || substr(digest, 3)"
    " WHERE position = ?",
    "edited header": "UPDATE checkpoints SET rows = rows + 1 WHERE position = ?",
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
async def test_a_damaged_checkpoint_is_detected_not_trusted_and_rebuilt(
    demo_store: AnyStore, db_address: str | Path, damage: str
) -> None:
    last = await demo_store.last_position()
    damaged = (last // N // 2) * N  # a checkpoint in the middle
    assert damaged >= 2 * N
    later = damaged + N + 3
    good = versions(db_address)
    good_headers = [(p, n, d) for p, n, d in headers(db_address)]
    expected = fold_from_zero(db_address, later)
    assert behind_the_store(db_address, DAMAGE[damage], (damaged,)) > 0

    view = await demo_store.open_past(later)
    try:
        if damage in ("edited row", "edited digest"):
            # Only a version the state needs is checked on load: a later checkpoint that
            # supersedes every damaged version still serves (this one never does).
            assert view.base in (damaged - N, damaged + N)
        else:
            assert view.base == damaged - N  # the chain breaks there: the good one before
        assert await view.tables() == expected
        await view.move_to(damaged)
        assert view.base == damaged - N
        assert await view.tables() == fold_from_zero(db_address, damaged)
    finally:
        await view.close()
    report = await demo_store.verify()
    assert not report.ok
    assert any(p.startswith("checkpoints:") and str(damaged) in p for p in report.problems), (
        report.problems
    )
    # Only the cache is damaged, and the summary says so, and what mends it.
    assert "all in checkpoints" in report.summary() and "rewrites them" in report.summary()

    await demo_store.checkpoint_now()  # the follower's check: deleted and written again
    assert versions(db_address) == good
    assert headers(db_address) == good_headers
    report = await demo_store.verify()
    assert report.ok, report.problems
    view = await demo_store.open_past(later)
    try:
        assert view.base == damaged + N
        assert await view.tables() == expected
    finally:
        await view.close()


async def test_verify_finds_a_checkpoint_that_is_well_formed_but_wrong(
    demo_store: AnyStore, db_address: str | Path
) -> None:
    """A version rewritten with a matching digest passes the loader's checks; verify's
    own fold still sees that it is not the state the log implies."""
    from store.checkpoints import columns, new_scratch, row_digest

    position = 2 * N
    scratch = new_scratch()
    cols = columns(scratch, "workers")
    scratch.close()
    found = query(
        db_address,
        f"SELECT {', '.join(cols)} FROM checkpoint_workers WHERE position = ?",
        (position,),
    )[0]
    forged = list(found)
    forged[cols.index("queued")] = int(forged[cols.index("queued")]) + 7
    key = f'["{found[0]}","{found[1]}"]'
    behind_the_store(
        db_address,
        "UPDATE checkpoint_workers SET queued = ?, digest = ?"
        " WHERE runtime_id = ? AND worker_id = ? AND position = ?",
        (forged[cols.index("queued")], row_digest("workers", position, forged), found[0],
         found[1], position),
    )
    report = await demo_store.verify()
    assert f"checkpoints: at position {position} the workers row {key} is not what the log" \
        " implies there" in report.problems


async def test_verify_of_a_database_with_checkpoints_is_ok_read_only(
    demo_store: AnyStore, db_address: str | Path
) -> None:
    assert len(headers(db_address)) > 5
    observer = await open_store(db_address, watch=False, read_only=True)
    try:
        report = await observer.verify()
        assert report.ok, report.problems
        assert report.events == await observer.last_position()
    finally:
        await observer.close()


async def test_each_checkpoint_table_keeps_its_projection_columns(db_address: str | Path) -> None:
    """A migration adding a column to a checkpointed projection must add it to its
    checkpoint table too, on both back ends: a version holds the whole row."""
    store = await open_store(db_address, watch=False)  # creates and migrates the database
    await store.close()
    scratch = new_scratch()
    try:
        for tbl in TABLES:
            expected = {*columns(scratch, tbl), "position", "digest"}
            if isinstance(db_address, str):
                sql = ("SELECT column_name FROM information_schema.columns"
                       " WHERE table_schema = current_schema() AND table_name = ?")
                found = {str(r[0]) for r in query(db_address, sql, (checkpoint_table(tbl),))}
            else:
                found = {str(r[1]) for r in query(
                    db_address, f"PRAGMA table_info({checkpoint_table(tbl)})")}
            assert found == expected, tbl
    finally:
        scratch.close()


async def test_the_follower_and_a_view_carry_on_after_the_server_ends_their_connections(
    pg_url: str, small_n: int
) -> None:
    """PostgreSQL may end any session (a restart, an administrator): both connect again."""
    import psycopg

    run_demo(pg_url, seconds=1.0)
    store = await open_store(pg_url, watch=False)
    try:
        await store.checkpoint_now()
        last = await store.last_position()
        view = await store.open_past(last // 2)
        try:
            with psycopg.connect(pg_url, autocommit=True) as admin:
                ended = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name IN ('agentdeck-past', 'agentdeck-checkpoints')"
                    " AND datname = current_database()"
                ).fetchone()
            assert ended is not None and ended[0] == 2
            await view.move_to(last // 3)
            assert await view.tables() == fold_from_zero(pg_url, last // 3)
        finally:
            await view.close()
        run_demo(pg_url, seconds=1.0)
        await store.checkpoint_now()
        now = await store.last_position()
        assert [p for p, _, _ in headers(pg_url)] == list(range(N, now + 1, N))
        report = await store.verify()
        assert report.ok, report.problems
    finally:
        await store.close()


async def test_a_writable_store_keeps_checkpoints_behind_the_log_by_itself(
    db_address: str | Path, small_n: int
) -> None:
    """No one asks: the follower of an open store writes them as another process appends."""
    from tests.store.support import eventually

    store = await open_store(db_address, watch=True)  # woken by the other process's commits
    try:
        run_demo(db_address, seconds=1.5, every=100_000)  # the demo itself writes none
        last = await store.last_position()
        assert last >= 3 * N

        follower = store.checkpointer
        assert follower is not None

        def caught_up() -> bool:
            # The header is visible to another connection a moment before the
            # follower's coroutine resumes to count it: wait for both.
            on_disk = [p for p, _, _ in headers(db_address)] == list(range(N, last + 1, N))
            return on_disk and follower.written == last // N

        await eventually(caught_up, timeout=30, what="checkpoints up to the last event")
        report = await store.verify()
        assert report.ok, report.problems
    finally:
        await store.close()


ENDED = "status IN ('completed', 'failed', 'cancelled')"


def demo_with_history(address: str | Path, every: int) -> None:
    """Run the demo until far more runs ended than a checkpoint window holds: the demo
    runs for a time, and a loaded machine gets fewer runs done in it."""
    for _ in range(12):
        run_demo(address, seconds=1.0, every=every)
        [(runs, ended)] = query(address, f"SELECT count(*), count(*) FILTER (WHERE {ENDED}) FROM runs")
        if runs - ended + N < ended:
            return
    raise AssertionError(f"the demo ended only {ended} of {runs} runs")


async def late_completion_is_checkpointed(store: AnyStore, address: str | Path) -> None:
    """The follower of `store` holds only open work (ended runs left out); a late event of
    an ended run puts it back, so the run's moved bookkeeping still gets its version."""
    follower = store.checkpointer
    assert follower is not None
    ended = query(
        address,
        f"SELECT runtime_id, run_id, worker_id, last_run_seq FROM runs WHERE {ENDED}"
        " ORDER BY created_at",
    )
    held = follower.rows_held()
    runs = query(address, "SELECT count(*) FROM runs")[0][0]
    # The open runs, and those that ended since its last checkpoint (fewer than N events
    # ago, so fewer than N runs): far fewer than the history (demo_with_history).
    assert held["runs"] < runs - len(ended) + N < len(ended), (held, runs, len(ended))

    runtime_id, run_id, worker_id, last_run_seq = ended[0]  # ended long ago: left out
    late = new_event(
        "run.completed", worker_id=worker_id, run_id=run_id, run_seq=last_run_seq + 1,
        message="a late completion", payload={"result": "late"},
    )
    [stored] = await store.append(runtime_id, None, [late])
    filler = [new_event() for _ in range(N + 1)]  # past the next checkpoint
    await store.append(runtime_id, None, filler)
    await store.checkpoint_now()

    next_checkpoint = (stored.position // N + 1) * N
    [version] = query(
        address,
        f"SELECT status, last_run_seq FROM {checkpoint_table('runs')}"
        " WHERE runtime_id = ? AND run_id = ? AND position = ?",
        (runtime_id, run_id, next_checkpoint),
    )
    assert tuple(version)[1] == last_run_seq + 1  # the bookkeeping moved, the status did not
    report = await store.verify()  # every checkpoint against verify's own fold
    assert report.ok, report.problems
    view = await store.open_past(next_checkpoint + 1)
    try:
        assert await view.tables() == fold_from_zero(address, next_checkpoint + 1)
    finally:
        await view.close()


async def test_a_follower_that_loads_a_checkpoint_keeps_only_the_open_work(
    db_address: str | Path, small_n: int
) -> None:
    """Its fold starts from the demo's newest checkpoint, ended runs left out."""
    demo_with_history(db_address, every=N)  # the demo writes the checkpoints
    store = await open_store(db_address, watch=False)
    try:
        await store.checkpoint_now()
        assert store.checkpointer is not None and store.checkpointer.loaded_from > 0
        await late_completion_is_checkpointed(store, db_address)
    finally:
        await store.close()


async def test_a_follower_that_folds_the_log_forgets_ended_runs_at_each_checkpoint(
    db_address: str | Path, small_n: int
) -> None:
    """No checkpoint to load (the demo wrote none): it folds from the first event, writes
    them itself and drops ended runs once each is in the store."""
    demo_with_history(db_address, every=10**9)
    store = await open_store(db_address, watch=False)
    try:
        await store.checkpoint_now()
        assert store.checkpointer is not None and store.checkpointer.loaded_from == 0
        await late_completion_is_checkpointed(store, db_address)
    finally:
        await store.close()
