"""Property tests: cursor walks, projections against a rebuild and a model, conflicts.

Each example runs on a fresh database (hypothesis examples share no fixtures),
driven by asyncio.run inside a plain test function: a new SQLite file, or, on
PostgreSQL, the test's database emptied after each example (a new database per
example would cost a CREATE DATABASE each; the writer numbers positions from
max(position), so empty tables are a new log).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store.errors import DuplicateEvent, SequenceConflict
from store.event_store import EventStore
from store.filters import parse_filter
from store.models import Event, NewEvent, WorkerRef
from store.open import open_store
from tests.store.support import collect, new_event, read_all, step_event

T = TypeVar("T")
# `fresh` (a fixture) empties its database itself after every example.
def storable_text(**size: int) -> st.SearchStrategy[str]:
    """Any text a store keeps: every character but NUL, which both refuse at submit
    (tests/store/test_writer.py), and lone surrogates, which are not UTF-8."""
    return st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), **size)


EXAMPLES = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
BASE = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


FreshStore = Callable[[Callable[[EventStore], Awaitable[T]]], T]


def on_fresh_store(body: Callable[[EventStore], Awaitable[T]], url: str | None = None) -> T:
    """Run `body` against a writer store on a new file (or the emptied database at `url`),
    then close it."""

    async def main() -> T:
        if url is not None:
            store = await open_store(url, watch=False)
            try:
                return await body(store)  # type: ignore[arg-type]
            finally:
                await store.close()
                await asyncio.to_thread(_empty, url)
        with tempfile.TemporaryDirectory() as folder:
            store = await EventStore.open(Path(folder) / "p.db", watch=False, index=False)
            try:
                return await body(store)
            finally:
                await store.close()

    return asyncio.run(main())


def _empty(url: str) -> None:
    """Every agentdeck table of the database emptied; its schema marker kept."""
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [t for (t,) in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            " AND tablename <> 'agentdeck_meta'"
        )]
        conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables))


@pytest.fixture
def fresh(backend: str, request: pytest.FixtureRequest) -> Any:
    """`on_fresh_store` on the test's back end."""
    if backend == "postgres":
        url = str(request.getfixturevalue("pg_url"))
        return lambda body: on_fresh_store(body, url)
    return on_fresh_store


# ---------------------------------------------------------------------------
# (a) a cursor walk sees every event exactly once, in order
# ---------------------------------------------------------------------------

walk_steps = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.sampled_from(["a", "b"]), st.integers(1, 12)),
        st.tuples(st.just("read"), st.integers(1, 9)),
    ),
    max_size=30,
)


@EXAMPLES
@given(steps=walk_steps, drain=st.lists(st.integers(1, 9), min_size=1, max_size=5),
       flt=st.sampled_from(["", "runtime:a", "kind:run.*"]))
def test_cursor_walk_sees_every_event_once_in_order(
    fresh: FreshStore[None], steps: list[tuple[Any, ...]], drain: list[int], flt: str
) -> None:
    filter_ = parse_filter(flt)

    async def body(store: EventStore) -> None:
        seen: list[Event] = []
        cursor = 0
        n = 0

        async def read(limit: int) -> bool:
            nonlocal cursor
            batch = await store.read_after(cursor, limit, filter_)
            assert len(batch.events) <= limit
            assert all(e.position > cursor for e in batch.events)
            seen.extend(batch.events)
            cursor = batch.cursor.position
            return batch.has_more

        for step in steps:
            if step[0] == "append":
                _, runtime_id, count = step
                # every other event a run.* (run.step.started), the rest exec.session.input
                events = [step_event(n + i) if (n + i) % 2 == 0 else new_event() for i in range(count)]
                n += count
                await store.append(runtime_id, None, events)
            else:
                await read(step[1])
        i = 0
        while await read(drain[i % len(drain)]):
            i += 1
        log = await read_all(store)
        wanted = [e for e in log if filter_.matches(e)]
        assert seen == wanted
        assert [e.position for e in log] == list(range(1, n + 1))

    fresh(body)


# ---------------------------------------------------------------------------
# (b) projections equal a rebuild, and a model of the engine's semantics
# ---------------------------------------------------------------------------

TERMINAL = ("completed", "failed", "cancelled")
PHASES = ("planning", "executing", "verifying")


@dataclass
class RunModel:
    run_id: str
    worker_id: str
    prompt: str
    input_sequence: int
    status: str = "created"
    result_text: str | None = None
    error: str | None = None
    seq: int = 0

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


@dataclass
class WorkerModel:
    worker_id: str
    status: str = "running"
    terminal_event_id: UUID | None = None
    transcript: list[tuple[int, str, str, UUID, str | None]] = field(default_factory=list)
    current: tuple[str, str] | None = None


class EngineModel:
    """What the projections must say after the events it generated."""

    runtime_id = "prop"

    def __init__(self) -> None:
        self.workers: dict[str, WorkerModel] = {}
        self.runs: dict[str, RunModel] = {}
        self.diagnostics: list[tuple[str, str, str, str | None, UUID]] = []
        self.runtime_status = "running"
        self.ticks = 0

    def new(self, kind: str, **fields: Any) -> NewEvent:
        self.ticks += 1
        return new_event(kind, at=BASE + timedelta(milliseconds=self.ticks), **fields)

    def queued(self, worker_id: str) -> int:
        return sum(1 for r in self.runs.values() if r.worker_id == worker_id and r.status == "created")

    # -- operations: each returns the events of one append ------------------

    def start(self) -> list[NewEvent]:
        return [self.new("runtime.started", payload={"display_name": "Prop", "limits": {}})]

    def create(self) -> list[NewEvent]:
        worker_id = f"w-{len(self.workers) + 1}"
        self.workers[worker_id] = WorkerModel(worker_id)
        spec = {"intent": {"type": "task", "objective": f"job {worker_id}"}, "profile": "default"}
        return [self.new("worker.created", worker_id=worker_id, payload={"spec": spec})]

    def transcript(self, worker: WorkerModel, role: str, content: str, run: RunModel | None,
                   kind: str) -> NewEvent:
        sequence = len(worker.transcript) + 1
        event = self.new(
            kind, worker_id=worker.worker_id, run_id=run.run_id if run else None,
            run_seq=run.next_seq() if run else None,
            payload={"role": role, "content": content, "sequence": sequence},
        )
        worker.transcript.append(
            (sequence, role, content, event.event_id, run.run_id if run else None)
        )
        return event

    def input(self, worker: WorkerModel, content: str) -> list[NewEvent]:
        run = RunModel(f"r-{len(self.runs) + 1}", worker.worker_id, content,
                       len(worker.transcript) + 1)
        self.runs[run.run_id] = run
        accepted = self.transcript(worker, "user", content, run, "worker.input.accepted")
        created = self.new(
            "run.created", worker_id=worker.worker_id, run_id=run.run_id, run_seq=run.next_seq(),
            payload={"prompt": content, "input_sequence": run.input_sequence, "role": "user"},
        )
        return [accepted, created]

    def run_event(self, run: RunModel, status: str, text: str) -> list[NewEvent]:
        payload: dict[str, Any] = {}
        if status == "completed":
            payload = {"result": text}
        elif status == "failed":
            payload = {"error": text}
        elif status == "cancelled":
            payload = {"reason": text}
        event = self.new(f"run.{status}", worker_id=run.worker_id, run_id=run.run_id,
                         run_seq=run.next_seq(), payload=payload)
        if run.status in TERMINAL:
            return [event]  # late: cancelled (and every terminal state) sticks
        worker = self.workers[run.worker_id]
        run.status = status
        if status in PHASES:
            worker.current = (run.run_id, status)
        else:
            if status == "completed":
                run.result_text = text
            else:
                run.error = text
            if worker.current and worker.current[0] == run.run_id:
                worker.current = None
        return [event]

    def step(self, run: RunModel) -> list[NewEvent]:
        return [self.new("run.step.started", worker_id=run.worker_id, run_id=run.run_id,
                         run_seq=run.next_seq(), message="a step with no projection",
                         payload={"step": 1, "title": "a step"})]

    def end_worker(self, worker: WorkerModel, verb: str) -> list[NewEvent]:
        event = self.new(f"worker.{verb}", worker_id=worker.worker_id, payload={"reason": verb})
        if worker.status == "running":  # the first terminal state sticks
            worker.status = verb
            worker.terminal_event_id = event.event_id
        return [event]

    def diagnostic(self, severity: str, code: str, worker_id: str | None) -> list[NewEvent]:
        message = f"{code} happened"
        event = self.new("diagnostic.raised", worker_id=worker_id, message=f"{severity}: {code}",
                         payload={"severity": severity, "code": code, "message": message})
        self.diagnostics.append((severity, code, message, worker_id, event.event_id))
        return [event]

    def stop_runtime(self) -> list[NewEvent]:
        event = self.new("runtime.stopped")
        self.runtime_status = "stopped"
        for worker in self.workers.values():
            if worker.status == "running":
                worker.status = "stopped"
                worker.terminal_event_id = event.event_id
        return [event]


def draw_operations(data: st.DataObject, model: EngineModel) -> list[list[NewEvent]]:
    """Engine-like appends, each valid for the state the earlier ones left."""
    appends = [model.start(), model.create()]
    for _ in range(data.draw(st.integers(0, 40), label="operations")):
        workers = list(model.workers.values())
        running = [w for w in workers if w.status == "running"]
        live_runs = [r for r in model.runs.values() if r.status not in TERMINAL]
        done_runs = [r for r in model.runs.values() if r.status in TERMINAL]
        choices = ["diagnostic", "end"]
        if len(workers) < 4:
            choices.append("create")
        if running:
            choices += ["input", "input"]
        if live_runs:
            choices += ["advance", "advance", "advance", "step", "output"]
        if done_runs:
            choices.append("late")
        op = data.draw(st.sampled_from(choices), label="op")
        if op == "create":
            appends.append(model.create())
        elif op == "input":
            worker = data.draw(st.sampled_from(running), label="worker")
            appends.append(model.input(worker, data.draw(storable_text(min_size=1, max_size=8))))
        elif op == "advance":
            run = data.draw(st.sampled_from(live_runs), label="run")
            status = data.draw(st.sampled_from(PHASES + TERMINAL), label="status")
            appends.append(model.run_event(run, status, f"{status} {run.run_id}"))
        elif op == "late":
            run = data.draw(st.sampled_from(done_runs), label="run")
            status = data.draw(st.sampled_from(("completed", "failed", "executing")))
            appends.append(model.run_event(run, status, "too late"))
        elif op == "step":
            appends.append(model.step(data.draw(st.sampled_from(live_runs), label="run")))
        elif op == "output":
            run = data.draw(st.sampled_from(live_runs), label="run")
            worker = model.workers[run.worker_id]
            role = data.draw(st.sampled_from(["assistant", "tool", "system"]))
            appends.append([model.transcript(worker, role, f"out {role}", run, "worker.output")])
        elif op == "end":
            worker = data.draw(st.sampled_from(workers), label="worker")
            appends.append(model.end_worker(worker, data.draw(st.sampled_from(["stopped", "cancelled"]))))
        else:
            severity = data.draw(st.sampled_from(["info", "warning", "error"]))
            who = data.draw(st.sampled_from([None, *model.workers]))
            appends.append(model.diagnostic(severity, data.draw(st.sampled_from(["a.b", "c"])), who))
    if data.draw(st.booleans(), label="stop runtime at the end"):
        appends.append(model.stop_runtime())
    return appends


@EXAMPLES
@given(data=st.data())
def test_projections_equal_a_rebuild_and_the_model(
    fresh: FreshStore[None], data: st.DataObject
) -> None:
    model = EngineModel()
    appends = draw_operations(data, model)
    # Like the engine, submit appends in order with the seq each expects, several
    # queued at once so that group commit folds them into one transaction.
    groups = data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=len(appends)), label="groups")

    async def body(store: EventStore) -> None:
        rt = model.runtime_id
        expected = 0
        i = g = 0
        while i < len(appends):
            size = groups[g % len(groups)]
            g += 1
            futures = []
            for events in appends[i:i + size]:
                futures.append(store.submit(rt, expected, events))
                expected += len(events)
            i += size
            await asyncio.gather(*futures)

        report = await store.verify()
        assert report.ok, report.problems
        log = await read_all(store)
        assert [e.seq for e in log] == list(range(1, expected + 1))

        runtime = await store.runtime(rt)
        assert runtime is not None
        assert (runtime.status, runtime.last_seq, runtime.display_name) == (
            model.runtime_status, expected, "Prop",
        )
        records = {w.worker_id: w for w in await store.workers(rt)}
        assert set(records) == set(model.workers)
        for worker_id, want in model.workers.items():
            got = records[worker_id]
            assert got.status == want.status
            assert got.terminal_event_id == want.terminal_event_id
            assert got.transcript_len == len(want.transcript)
            assert got.queued == model.queued(worker_id)
            assert (got.current_run_id, got.current_run_status) == (want.current or (None, None))
            assert got.last_seq == max(e.seq for e in log if e.worker_id == worker_id)
            page = await store.transcript(WorkerRef(runtime_id=rt, worker_id=worker_id), 0, 500)
            assert [(t.sequence, t.role, t.content, t.event_id, t.run_id) for t in page.items] == (
                want.transcript
            )
            runs = {r.run_id: r for r in await store.runs(rt, worker_id, limit=1000)}
            mine = {r.run_id: r for r in model.runs.values() if r.worker_id == worker_id}
            assert set(runs) == set(mine)
            for run_id, run in mine.items():
                stored = runs[run_id]
                assert (stored.status, stored.result_text, stored.error) == (
                    run.status, run.result_text, run.error,
                )
                assert (stored.prompt, stored.input_sequence, stored.last_run_seq) == (
                    run.prompt, run.input_sequence, run.seq,
                )
        diagnostics = sorted(await store.diagnostics(rt), key=lambda d: d.id)
        assert [(d.severity, d.code, d.message, d.worker_id, d.event_id) for d in diagnostics] == (
            model.diagnostics
        )

    fresh(body)


# ---------------------------------------------------------------------------
# (c) conflicting appends never land
# ---------------------------------------------------------------------------

attempts = st.lists(
    st.tuples(
        st.sampled_from(["x", "y"]),  # runtime
        st.sampled_from(["right", "stale", "ahead", "none", "dup"]),
        st.integers(1, 3),  # events
        st.integers(1, 4),  # how many to queue together
    ),
    min_size=1,
    max_size=25,
)


@EXAMPLES
@given(plan=attempts)
def test_conflicting_appends_never_land(
    fresh: FreshStore[None], plan: list[tuple[str, str, int, int]]
) -> None:
    async def body(store: EventStore) -> None:
        tracked = {"x": 0, "y": 0}  # what a well-informed appender believes
        landed: list[tuple[int | None, list[NewEvent], list[Event]]] = []
        refused: list[list[NewEvent]] = []
        earlier: list[NewEvent] = []
        batch: list[tuple[str, int | None, list[NewEvent]]] = []

        async def flush() -> None:
            futures = [store.submit(rt, exp, evs) for rt, exp, evs in batch]
            results = await asyncio.gather(*futures, return_exceptions=True)
            for (rt, exp, evs), result in zip(batch, results, strict=True):
                if isinstance(result, BaseException):
                    assert isinstance(result, SequenceConflict | DuplicateEvent), result
                    if isinstance(result, SequenceConflict):
                        assert result.expected == exp and result.actual != exp
                    refused.append(evs)
                else:
                    landed.append((exp, evs, result))
                    tracked[rt] = result[-1].seq
                    earlier.extend(evs)
            batch.clear()

        for runtime_id, how, count, together in plan:
            events = [new_event(message=how) for _ in range(count)]
            if how == "dup" and earlier:
                events[-1] = new_event(event_id=earlier[0].event_id)
            exp: int | None = {
                "right": tracked[runtime_id], "stale": tracked[runtime_id] - 1,
                "ahead": tracked[runtime_id] + 1000, "none": None, "dup": None,
            }[how]
            batch.append((runtime_id, exp, events))
            if len(batch) >= together:
                await flush()
        await flush()

        log = await read_all(store)
        # The log is exactly the appends that were acknowledged: nothing refused left a
        # trace (a duplicate's id is there once, at the place its first append got).
        acknowledged = {e.event_id: e.position for _, _, got in landed for e in got}
        assert {e.event_id: e.position for e in log} == acknowledged
        assert len(log) == len(acknowledged)
        # A stale append flushed on its own must be refused. ("Ahead" may land: the
        # appends queued before it in the same group commit can make it right.)
        assert refused or all(how != "stale" for _, how, _, _ in plan)
        # Every landed append sits exactly where it said it expected the log to be.
        for exp, evs, got in landed:
            assert [e.event_id for e in got] == [e.event_id for e in evs]
            if exp is not None:
                assert got[0].seq == exp + 1
        for runtime_id in ("x", "y"):
            seqs = [e.seq for e in log if e.runtime_id == runtime_id]
            assert seqs == list(range(1, len(seqs) + 1))
        assert [e.position for e in log] == list(range(1, len(log) + 1))

    fresh(body)


# ---------------------------------------------------------------------------
# replay equals live: what an appender gets back, what a live subscriber sees
# and what a later reader replays are the same events
# ---------------------------------------------------------------------------

# Payloads of run.failed (store.catalog.RunFailed), the catalog's richest shape: text,
# integers of any size, floats (infinities too), None, lists, and a list of objects.
texts = storable_text(max_size=6)
run_failed_payloads = st.fixed_dictionaries(
    {"error": storable_text(max_size=12)},
    optional={
        # a tuple is not JSON: stored (and so replayed) as a list
        "argv": st.lists(texts, max_size=3) | st.tuples(texts, texts),
        "exit_code": st.none() | st.integers(),
        "duration_s": st.floats(allow_nan=False),
        "stderr_tail": st.lists(texts, max_size=3),
        "ended_processes": st.lists(
            st.fixed_dictionaries(
                {"pid": st.integers()}, optional={"pgid": st.none() | st.integers(), "command": texts}
            ),
            max_size=2,
        ),
    },
)
zones = st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))])
appended = st.tuples(
    run_failed_payloads,
    storable_text(max_size=12),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=zones),
)


@EXAMPLES
@given(batches=st.lists(st.lists(appended, min_size=1, max_size=4), min_size=1, max_size=5))
def test_replay_equals_live(
    fresh: FreshStore[None],
    backend: str,
    batches: list[list[tuple[dict[str, Any], str, datetime]]],
) -> None:

    async def body(store: EventStore) -> None:
        await store.append("rt", None, [new_event()])
        with store.subscribe(0) as sub:
            assert len(await sub.next_batch()) == 1  # replayed; from here on it is live
            returned: list[Event] = []
            for batch in batches:
                sent = [new_event("run.failed", payload=p, message=m, at=at) for p, m, at in batch]
                got = await store.append("rt", None, sent)
                assert [(e.event_id, e.message, e.at) for e in got] == [
                    (n.event_id, n.message, n.at) for n in sent
                ]
                returned += got
            live, _ = await collect(sub, len(returned))
        replayed = (await read_all(store))[1:]
        assert returned == live == replayed
        assert [e.to_json_dict() for e in live] == [e.to_json_dict() for e in replayed]

    fresh(body)
