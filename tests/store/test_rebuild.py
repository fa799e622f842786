"""Projections that disagree with the log: the cheap check and the rebuild (store.rebuild).

Damage is done the way an operator or a bad restore would do it: a plain
connection of its own (sqlite3, psycopg) behind the store's back. Every example
runs on a real database; "restored exactly" means equal, row for row, to a copy
of the projections taken before the damage, and `verify` (a whole-log replay) ok.

The tests asking for `db_address` run on both back ends. Those on `db_path` stay
on SQLite: they write log rows by hand with SQLite's statements
(`insert_raw_event`), run store.rebuild on a raw sqlite3 connection (`run_job`
hands PostgreSQL's jobs a psycopg one), or check as an observer (on PostgreSQL
the check is a writer job, test_pg_store covers it).
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from uuid6 import uuid7

from store.errors import AppendRejected, ReadOnlyDatabase, StoreError
from store.event_store import EventStore
from store.models import NewEvent
from store.open import open_store
from store.projector import INSERT_EVENT
from store.rebuild import RebuildFailed, rebuild_projections, repair_projections
from store.schema import PROJECTIONS
from store.verify import verify_address, verify_file
from tests.store.support import behind_the_store, new_event, query
from tests.store.test_properties import EngineModel, draw_operations

BASE = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
Snapshot = dict[str, list[tuple[Any, ...]]]


# ---------------------------------------------------------------------------
# Helpers: a small engine-like log, snapshots, damage with plain sqlite3
# ---------------------------------------------------------------------------


class Log:
    """Builds the events of one runtime with the payload keys the fold reads."""

    def __init__(self, runtime_id: str) -> None:
        self.runtime_id = runtime_id
        self.ticks = 0
        self.transcript: dict[str, int] = {}
        self.run_seq: dict[str, int] = {}

    def ev(self, kind: str, **fields: Any) -> NewEvent:
        self.ticks += 1
        return new_event(kind, at=BASE + timedelta(milliseconds=self.ticks), **fields)

    def started(self) -> list[NewEvent]:
        return [self.ev("runtime.started", payload={"display_name": self.runtime_id, "limits": {}})]

    def created(self, worker_id: str) -> list[NewEvent]:
        self.transcript[worker_id] = 0
        spec = {"intent": {"type": "assistant"}, "profile": "default"}
        return [self.ev("worker.created", worker_id=worker_id, payload={"spec": spec})]

    def _run_seq(self, run_id: str) -> int:
        self.run_seq[run_id] = self.run_seq.get(run_id, 0) + 1
        return self.run_seq[run_id]

    def said(self, worker_id: str, run_id: str, role: str, content: str) -> NewEvent:
        self.transcript[worker_id] += 1
        kind = "worker.input.accepted" if role == "user" else "worker.output"
        return self.ev(
            kind,
            worker_id=worker_id,
            run_id=run_id,
            run_seq=self._run_seq(run_id),
            payload={"role": role, "content": content, "sequence": self.transcript[worker_id]},
        )

    def run(
        self, worker_id: str, run_id: str, prompt: str, end: str = "completed"
    ) -> list[NewEvent]:
        """An input, its run through executing to `end`, with an answer (one append)."""
        accepted = self.said(worker_id, run_id, "user", prompt)
        created = self.ev(
            "run.created",
            worker_id=worker_id,
            run_id=run_id,
            run_seq=self._run_seq(run_id),
            payload={"prompt": prompt, "input_sequence": self.transcript[worker_id]},
        )
        events = [accepted, created]
        events.append(
            self.ev(
                "run.executing", worker_id=worker_id, run_id=run_id, run_seq=self._run_seq(run_id)
            )
        )
        if end != "created":
            events.append(self.said(worker_id, run_id, "assistant", f"answer to {prompt}"))
            payload = {"result": "done"} if end == "completed" else {"error": "boom"}
            events.append(
                self.ev(
                    f"run.{end}",
                    worker_id=worker_id,
                    run_id=run_id,
                    run_seq=self._run_seq(run_id),
                    payload=payload,
                )
            )
        return events

    def diagnostic(self, code: str, worker_id: str | None = None) -> list[NewEvent]:
        return [
            self.ev(
                "diagnostic.raised",
                worker_id=worker_id,
                message=code,
                payload={"severity": "warning", "code": code, "message": f"{code}!"},
            )
        ]


async def fill(store: EventStore) -> None:
    """Two runtimes: `alpha` (two workers, three runs, a diagnostic) and `beta` (stopped)."""
    a, b = Log("alpha"), Log("beta")
    for rt, events in [
        ("alpha", a.started()),
        ("beta", b.started()),
        ("alpha", a.created("w-1")),
        ("beta", b.created("w-1")),
        ("alpha", a.run("w-1", "r-1", "first")),
        ("alpha", a.created("w-2")),
        ("beta", b.run("w-1", "r-1", "hello")),
        ("alpha", a.run("w-1", "r-2", "second", end="failed")),
        ("alpha", a.diagnostic("worker.tools_less", "w-2")),
        ("alpha", a.run("w-2", "r-3", "third", end="created")),
        ("beta", b.diagnostic("runtime.local_default_resources")),
        ("beta", [b.ev("runtime.stopped")]),
    ]:
        await store.append(rt, None, events)


def projections(address: str | Path, runtime_id: str | None = None) -> Snapshot:
    """Every projection table's rows (of one runtime, or all), in verify's order."""
    where = "WHERE runtime_id = ?" if runtime_id else ""
    params = (runtime_id,) if runtime_id else ()
    return {
        table: query(address, f"SELECT * FROM {table} {where} ORDER BY {order}", params)
        for table, order in PROJECTIONS.items()
    }


def whole_file(address: str | Path) -> Snapshot:
    """The log and every projection: what 'nothing changed' compares."""
    snap = projections(address)
    snap["events"] = query(address, "SELECT * FROM events ORDER BY position")
    return snap


def damage(address: str | Path, sql: str, params: tuple[Any, ...] = ()) -> None:
    """Change the database behind the store's back, and insist that it changed something."""
    assert behind_the_store(address, sql, params) == 1, sql


def verified(address: str | Path) -> bool:
    """`agentdeck verify`'s verdict on the database (a whole-log replay)."""
    return verify_address(address).ok


def insert_raw_event(
    path: Path, runtime_id: str, kind: str, worker_id: str | None, payload: str
) -> int:
    """Append an event to the log with sqlite3 (no fold): the seq it got."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        position = conn.execute("SELECT max(position) + 1 FROM events").fetchone()[0]
        seq = conn.execute(
            "SELECT max(seq) + 1 FROM events WHERE runtime_id = ?", (runtime_id,)
        ).fetchone()[0]
        conn.execute(
            INSERT_EVENT,
            (
                position,
                runtime_id,
                seq,
                str(uuid7()),
                kind,
                0,
                worker_id,
                None,
                None,
                "written by hand",
                payload,
                1,
            ),
        )
        return int(seq)
    finally:
        conn.close()


# ---------------------------------------------------------------------------
# A consistent database
# ---------------------------------------------------------------------------


async def test_consistent_database_reports_no_problems(
    store: EventStore, db_address: str | Path
) -> None:
    """Issue 7 item 13: a log written through the store passes the check, and repair leaves it be."""
    await fill(store)
    before = whole_file(db_address)
    for runtime_id in ("alpha", "beta", "never-started"):
        assert await store.projection_problems(runtime_id) == []
        assert await store.repair_projections(runtime_id) is None
    assert whole_file(db_address) == before


async def test_forced_rebuild_of_a_consistent_runtime_changes_nothing(
    store: EventStore, db_address: str | Path
) -> None:
    """Issue 7 item 13: rebuilding agreeing projections writes back exactly the same rows."""
    await fill(store)
    before = whole_file(db_address)
    report = await store.rebuild_projections("alpha")
    assert report.problems == () and report.remaining == ()
    assert [report.events] == [
        n for (n,) in query(db_address, "SELECT count(*) FROM events WHERE runtime_id = 'alpha'")
    ]
    assert report.changed == {}
    assert report.rows_after == {
        "runtimes": 1,
        "workers": 2,
        "runs": 3,
        "transcript": 5,
        "diagnostics": 1,
        "commands": 0,
        "activity": 3,  # alpha's events fall in one second (fixed clock), at three levels
    }
    assert whole_file(db_address) == before


# ---------------------------------------------------------------------------
# Damage: the check names it, the rebuild restores exactly what the log implies
# ---------------------------------------------------------------------------

DAMAGE = [
    pytest.param(
        "DELETE FROM workers WHERE runtime_id = 'alpha' AND worker_id = 'w-1'",
        "workers: the log created w-1 but the projection has no row for it"
        " (1 rows, 2 worker.created events)",
        id="workers-row-deleted",
    ),
    pytest.param(
        "DELETE FROM runs WHERE runtime_id = 'alpha' AND run_id = 'r-2'",
        "runs: 2 rows but the log has 3 run.created events for alpha",
        id="runs-row-deleted",
    ),
    pytest.param(
        "DELETE FROM transcript WHERE runtime_id = 'alpha' AND worker_id = 'w-1' AND sequence = 2",
        "transcript: entries and transcript_len disagree: w-1 3 entries, transcript_len 4",
        id="transcript-row-deleted",
    ),
    pytest.param(
        "UPDATE runtimes SET last_seq = last_seq - 3 WHERE runtime_id = 'alpha'",
        "runtimes: alpha last_seq is 14 but its log ends at seq 17",
        id="runtime-last-seq-changed",
    ),
    pytest.param(
        "DELETE FROM runtimes WHERE runtime_id = 'alpha'",
        "runtimes: the log started alpha (last seq 17) but the projection has no row for it",
        id="runtimes-row-deleted",
    ),
    pytest.param(
        "UPDATE runtimes SET status = 'stopped' WHERE runtime_id = 'alpha'",
        "runtimes: alpha is stopped but its log says running",
        id="runtime-status-changed",
    ),
    pytest.param(
        "DELETE FROM diagnostics WHERE runtime_id = 'alpha'",
        "diagnostics: 0 rows but the log raised 1 for alpha",
        id="diagnostics-row-deleted",
    ),
    pytest.param(
        "UPDATE workers SET last_seq = 3 WHERE runtime_id = 'alpha' AND worker_id = 'w-2'",
        "workers: stale last_seq: w-2 last_seq 3, log 17",
        id="worker-last-seq-changed",
    ),
    pytest.param(
        "INSERT INTO workers SELECT runtime_id, 'w-9', 9, status, spec, 0, 0, NULL, NULL, NULL,"
        " last_seq, created_at, updated_at FROM workers WHERE runtime_id = 'alpha'"
        " AND worker_id = 'w-2'",
        "workers: rows for w-9 which the log never created",
        id="workers-row-invented",
    ),
]


@pytest.mark.parametrize(("sql", "expected"), DAMAGE)
async def test_check_names_the_damage_and_rebuild_restores_it(
    store: EventStore, db_address: str | Path, sql: str, expected: str
) -> None:
    """Issue 7 item 13: one damaged projection row is named by the check and undone by the rebuild."""
    await fill(store)
    before = projections(db_address)
    assert (await store.projection_problems("alpha")) == []
    damage(db_address, sql)
    assert not verified(db_address)  # the damage is real, not a no-op

    problems = await store.projection_problems("alpha")
    assert expected in problems
    assert await store.projection_problems("beta") == []

    report = await store.repair_projections("alpha")
    assert report is not None
    assert expected in report.problems
    assert report.remaining == ()
    assert projections(db_address) == before
    assert verified(db_address)
    assert await store.projection_problems("alpha") == []


async def test_the_issue_a_deleted_worker_row_no_longer_frees_its_id(
    db_address: str | Path,
) -> None:
    """Issue 7 item 13: after w-1's row is deleted, restore finds it and w-1 cannot be created again."""
    async with await open_store(db_address, watch=False) as store:
        await fill(store)  # type: ignore[arg-type]
    damage(db_address, "DELETE FROM workers WHERE runtime_id = 'alpha' AND worker_id = 'w-1'")

    # The next host: check, then rebuild, before reading the workers.
    async with await open_store(db_address, watch=False) as store:
        problems = await store.projection_problems("alpha")
        assert problems[0].startswith("workers: the log created w-1 but")
        report = await store.rebuild_projections("alpha")
        assert report.changed == {"workers": (1, 2)}
        assert "w-1" in report.summary()
        workers = {w.worker_id: w for w in await store.workers("alpha")}
        assert sorted(workers) == ["w-1", "w-2"]
        assert workers["w-1"].transcript_len == 4
        page = await store.transcript(workers["w-1"].ref, 0, 10)
        assert [e.sequence for e in page.items] == [1, 2, 3, 4]
        # The id is taken again: a second worker.created for w-1 fails its append
        # (and only it) instead of silently reusing the old worker's transcript.
        with pytest.raises(AppendRejected):
            await store.append("alpha", None, Log("alpha").created("w-1"))
        await store.append("alpha", None, Log("alpha").created("w-3"))
    assert verified(db_address)


async def test_rebuild_leaves_other_runtimes_alone(
    store: EventStore, db_address: str | Path
) -> None:
    """Issue 7 item 13: rebuilding alpha neither repairs nor rewrites beta's rows."""
    await fill(store)
    alpha_before = projections(db_address, "alpha")
    damage(db_address, "DELETE FROM workers WHERE runtime_id = 'alpha' AND worker_id = 'w-2'")
    damage(db_address, "DELETE FROM transcript WHERE runtime_id = 'beta' AND sequence = 2")
    beta_damaged = projections(db_address, "beta")

    report = await store.rebuild_projections("alpha")
    assert report.remaining == ()
    assert projections(db_address, "alpha") == alpha_before
    assert projections(db_address, "beta") == beta_damaged  # still damaged: not alpha's to fix
    assert await store.projection_problems("beta") == [
        "transcript: entries and transcript_len disagree: w-1 1 entries, transcript_len 2"
    ]
    await store.rebuild_projections("beta")
    assert verified(db_address)


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 5000])
async def test_rebuild_in_chunks_equals_the_fold_of_the_whole_log(
    store: EventStore, db_path: Path, chunk: int
) -> None:
    """Issue 7 item 13: the replay's chunk size does not change the rebuilt rows."""
    await fill(store)
    before = projections(db_path)
    damage(db_path, "DELETE FROM runs WHERE runtime_id = 'alpha' AND run_id = 'r-1'")
    damage(
        db_path,
        "UPDATE workers SET transcript_len = 0 WHERE runtime_id = 'alpha' AND worker_id = 'w-1'",
    )
    report = await store.run_job(lambda conn: rebuild_projections(conn, "alpha", chunk=chunk))
    assert report.remaining == ()
    assert projections(db_path) == before


# ---------------------------------------------------------------------------
# All or nothing
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [2, 5000])
async def test_a_failed_rebuild_changes_nothing(
    store: EventStore, db_path: Path, chunk: int
) -> None:
    """Issue 7 item 13: an event the fold cannot project fails the rebuild, naming it, and rolls it all back."""
    await fill(store)
    damage(db_path, "DELETE FROM workers WHERE runtime_id = 'alpha' AND worker_id = 'w-2'")
    # A transcript event without its `sequence`, written past the fold: the
    # rebuild deletes alpha's rows and replays 17 good events before it meets it.
    seq = insert_raw_event(
        db_path, "alpha", "worker.output", "w-1", '{"role":"assistant","content":"no sequence"}'
    )
    before = whole_file(db_path)

    with pytest.raises(RebuildFailed) as failed:
        await store.run_job(lambda conn: rebuild_projections(conn, "alpha", chunk=chunk))
    message = str(failed.value)
    assert f"event seq {seq} (worker.output" in message
    assert "its payload does not fit the event catalog: sequence: Field required" in message
    assert "nothing was changed" in message
    assert failed.value.runtime_id == "alpha"
    assert whole_file(db_path) == before

    # The facade's job and the check-and-rebuild job fail the same way.
    with pytest.raises(RebuildFailed):
        await store.rebuild_projections("alpha")
    with pytest.raises(RebuildFailed):
        await store.repair_projections("alpha")
    assert whole_file(db_path) == before
    # The writer survived its failed jobs.
    await store.append("beta", None, [new_event()])


async def test_an_unreadable_payload_fails_the_rebuild_naming_its_event(
    store: EventStore, db_path: Path
) -> None:
    """Issue 7 item 13: a payload that is not JSON is named, and nothing changes."""
    await fill(store)
    seq = insert_raw_event(db_path, "beta", "worker.output", "w-1", "{not json")
    before = whole_file(db_path)
    with pytest.raises(RebuildFailed, match=f"runtime beta: .* event seq {seq} "):
        await store.rebuild_projections("beta")
    assert whole_file(db_path) == before


async def test_verify_names_a_logged_event_that_does_not_fit_the_catalog(
    store: EventStore, db_path: Path
) -> None:
    """A log written before the catalog (or by hand) is reported by verify, not a crash."""
    await fill(store)
    position = await store.last_position() + 1
    seq = insert_raw_event(db_path, "alpha", "worker.output", "w-1", '{"role":"user","content":"x"}')
    report = verify_file(db_path)
    assert not report.ok
    assert report.problems[0] == (
        f"log: event {position} (runtime alpha seq {seq}, worker.output) does not fit the event"
        " catalog (sequence: Field required)"
    )


async def test_a_duplicate_worker_in_the_log_fails_the_rebuild(
    store: EventStore, db_path: Path
) -> None:
    """Issue 7 item 13: a second worker.created for one id (a constraint failure) is named."""
    await fill(store)
    seq = insert_raw_event(db_path, "alpha", "worker.created", "w-1", '{"spec":{}}')
    before = whole_file(db_path)
    with pytest.raises(RebuildFailed, match=f"event seq {seq} \\(worker.created.*IntegrityError"):
        await store.rebuild_projections("alpha")
    assert whole_file(db_path) == before


async def test_rebuild_refuses_to_run_outside_a_transaction(
    store: EventStore, db_path: Path
) -> None:
    """Issue 7 item 13: the module functions refuse an autocommit connection and a bad chunk."""
    await fill(store)
    before = whole_file(db_path)
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        with pytest.raises(StoreError, match="inside a transaction"):
            rebuild_projections(conn, "alpha")
        with pytest.raises(StoreError, match="inside a transaction"):
            repair_projections(conn, "alpha")
    finally:
        conn.close()
    with pytest.raises(StoreError, match="chunk must be at least 1"):
        await store.run_job(lambda c: rebuild_projections(c, "alpha", chunk=0))
    assert whole_file(db_path) == before


async def test_an_observer_can_check_but_not_rebuild(store: EventStore, db_path: Path) -> None:
    """Issue 7 item 13: a read-only store runs the check; a rebuild is refused as read-only."""
    await fill(store)
    damage(db_path, "DELETE FROM runs WHERE runtime_id = 'beta'")
    async with await EventStore.open(db_path, read_only=True, watch=False) as observer:
        assert await observer.projection_problems("beta") == [
            "runs: 0 rows but the log has 1 run.created events for beta"
        ]
        with pytest.raises(ReadOnlyDatabase):
            await observer.rebuild_projections("beta")
        with pytest.raises(ReadOnlyDatabase):
            await observer.repair_projections("beta")


async def test_runs_check_counts_run_created_not_run_ids(store: EventStore) -> None:
    """Issue 7 item 13: run events without a run.created (no runs row by the fold) are no problem."""
    await fill(store)
    log = Log("alpha")
    # A driver's run event for a run the engine never opened: the fold makes no
    # row, so the quick distinct-run-id count differs and the exact count decides.
    await store.append(
        "alpha", None, [log.ev("run.step.started", worker_id="w-1", run_id="r-stray", run_seq=1,
                               payload={"step": 1, "title": "stray"})]
    )
    assert await store.projection_problems("alpha") == []


# ---------------------------------------------------------------------------
# Property: random engine-like logs, random single-row damage
# ---------------------------------------------------------------------------

PK = {table: [c.strip() for c in order.split(",")] for table, order in PROJECTIONS.items()}
# Bookkeeping columns the check reads, and the values a damage sets them to.
CHANGES = {
    "runtimes": [
        ("last_seq", "last_seq + 1"),
        ("last_seq", "last_seq - 1"),
        ("status", "CASE status WHEN 'running' THEN 'stopped' ELSE 'running' END"),
    ],
    "workers": [
        ("last_seq", "last_seq - 1"),
        ("transcript_len", "transcript_len + 1"),
        ("worker_no", "worker_no + 100"),
    ],
}


def damage_choices(path: Path, runtime_id: str) -> list[tuple[str, str, tuple[Any, ...]]]:
    """Every single-row damage of the runtime's projections: (description, sql, params)."""
    choices = []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        for table, columns in PK.items():
            keys = conn.execute(
                f"SELECT {', '.join(columns)} FROM {table} WHERE runtime_id = ?", (runtime_id,)
            ).fetchall()
            match = f"({', '.join(columns)}) = ({', '.join('?' * len(columns))})"
            for key in keys:
                choices.append((f"delete {table} {key}", f"DELETE FROM {table} WHERE {match}", key))
                for column, value in CHANGES.get(table, []):
                    choices.append(
                        (
                            f"{table} {key} {column} := {value}",
                            f"UPDATE {table} SET {column} = {value} WHERE {match}",
                            key,
                        )
                    )
    finally:
        conn.close()
    return choices


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_property_damage_is_found_and_rebuilt(data: st.DataObject) -> None:
    """Issue 7 item 13: random logs check clean; any single-row damage is found; rebuild restores the copy."""
    models = {}
    appends: list[tuple[str, list[NewEvent]]] = []
    for runtime_id in ("a", "b"):
        model = EngineModel()
        model.runtime_id = runtime_id
        models[runtime_id] = model
        appends += [(runtime_id, events) for events in draw_operations(data, model)]
    order = data.draw(st.permutations(range(len(appends))), label="interleaving")
    chunk = data.draw(st.integers(1, 8), label="chunk")

    async def body(path: Path) -> None:
        async with await EventStore.open(path, watch=False, index=False) as store:
            # Interleave the two runtimes' appends but keep each one's own order.
            queues = {rt: [evs for r, evs in appends if r == rt] for rt in models}
            for i in order:
                await store.append(appends[i][0], None, queues[appends[i][0]].pop(0))
            for rt in models:
                assert await store.projection_problems(rt) == []
            before = projections(path)
            what, sql, params = data.draw(
                st.sampled_from(damage_choices(path, "a")), label="damage"
            )
            damage(path, sql, params)
            assert projections(path) != before, what
            assert await store.projection_problems("a") != [], what
            assert await store.projection_problems("b") == []
            report = await store.run_job(lambda conn: repair_projections(conn, "a", chunk=chunk))
            assert report is not None and report.remaining == (), what
            assert projections(path) == before, what
        assert verify_file(path).ok

    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(body(Path(folder) / "p.db"))
