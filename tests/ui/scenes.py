"""Seeded scenes: the same console state every time, for snapshot tests and screenshots.

A scene hosts a runtime with a stepping clock and counting ids, and makes
its workers do their work one step at a time (each run settles before the
next input), so every time and id on screen is the same on every run.
"""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from engine.clock import CountingIds, SteppingClock
from engine.results import CreateWorkerRequest
from engine.runtime import Runtime
from store import catalog
from store.models import (
    AssistantIntent,
    Capability,
    NamedRef,
    NewEvent,
    Role,
    RoleIntent,
    Severity,
    TaskIntent,
    WorkerRef,
    WorkerSpec,
)
from store.open import open_store
from tui.app import AgentDeckApp
from tui.backend import HostedBackend, open_backend

SCENE_CONFIG = """\
[profiles.coder]
command = ["my-agent", "--json"]
description = "a coding agent (not installed in scenes)"

[profiles.reviewer]
builtin = "demo"
demo = { pace = 0.0, steps = 2, fail_rate = 1.0 }
"""
UNTRUSTED = "[@click=app.quit]click me[/] [b]bold?[/b] \x1b[31mred?\x1b[0m \x07"


async def _settle(runtime: Runtime, ref: WorkerRef, timeout: float = 10.0) -> None:
    """Wait until the worker has no queued or running run."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        record = await runtime.store.worker(ref.runtime_id, ref.worker_id)
        if record is not None and record.queued == 0 and record.current_run_id is None:
            return
        await asyncio.sleep(0.01)
    raise TimeoutError(f"scene: {ref.worker_id} did not settle")


async def seed_scene(runtime: Runtime, stopped_runtime: Runtime | None = None) -> None:
    """Workers in every state: answered, failed, untrusted output, stopped, cancelled."""
    triage = await runtime.create_worker(
        CreateWorkerRequest(
            intent=TaskIntent(objective="triage the failing CI job on main"),
            capabilities=[Capability(name="shell", reason="run the test suite")],
            config_bundle="ci-bundle",
            workspace_refs=[NamedRef(name="repo", reference="~/src/app")],
        )
    )
    await runtime.send_input(triage.ref, "Why is test_login flaky?")
    await _settle(runtime, triage.ref)
    await runtime.send_input(triage.ref, "Summarise the last three failures.", role="system")
    await _settle(runtime, triage.ref)
    reviewer = await runtime.create_worker(
        CreateWorkerRequest(intent=RoleIntent(role="reviewer", purpose="review PRs"), profile="reviewer")
    )
    await runtime.send_input(reviewer.ref, "Review PR #42")
    await _settle(runtime, reviewer.ref)
    untrusted = await runtime.create_worker(
        CreateWorkerRequest(intent=AssistantIntent(purpose="prints untrusted text"))
    )
    await runtime.send_input(untrusted.ref, UNTRUSTED)
    await _settle(runtime, untrusted.ref)
    stopped = await runtime.create_worker(
        CreateWorkerRequest(intent=TaskIntent(objective="update the changelog"))
    )
    await runtime.stop_worker(stopped.ref, "done for today")
    cancelled = await runtime.create_worker(
        CreateWorkerRequest(intent=TaskIntent(objective="migrate the database"))
    )
    await runtime.cancel_worker(cancelled.ref, "wrong branch")
    if stopped_runtime is not None:
        await stopped_runtime.stop_runtime()


async def open_scene_backend(db: Path) -> HostedBackend:
    """Open a fresh scene database with deterministic clock and ids, and seed it."""
    db.parent.mkdir(parents=True, exist_ok=True)
    config = db.parent / "agentdeck.toml"
    config.write_text(SCENE_CONFIG)
    clock = SteppingClock()
    ids = CountingIds()
    backend = await open_backend(
        db, config=config, clock=clock, ids=ids, watch=False, db_label="scene.db"
    )
    assert backend.runtime is not None
    ci = await Runtime.host(backend.store, "ci", clock=clock, ids=ids)
    try:
        await seed_scene(backend.runtime, ci)
    finally:
        await ci.close()
    return backend


def scene_app(db: Path) -> AgentDeckApp:
    """The console on a freshly seeded scene database at `db` (which must not exist)."""
    clock = SteppingClock()
    return AgentDeckApp(
        lambda: open_scene_backend(db),
        settings_file=None,
        now=clock.now,
        tz=UTC,  # times on screen do not depend on where the tests run
        db_label="scene.db",
    )


# -- the past (time travel): three phases two minutes apart -------------------------------

PHASE_GAP = timedelta(minutes=2)


async def seed_past_scene(runtime: Runtime, clock: SteppingClock) -> None:
    """w-1 answers at 09:00; w-2 fails and w-1 answers again at 09:02; at 09:04 w-1 is
    stopped and w-3 starts: stepping a minute back from the end lands between phases."""
    triage = await runtime.create_worker(
        CreateWorkerRequest(intent=TaskIntent(objective="triage the failing CI job on main"))
    )
    await runtime.send_input(triage.ref, "Why is test_login flaky?")
    await _settle(runtime, triage.ref)
    clock.advance(PHASE_GAP)
    reviewer = await runtime.create_worker(
        CreateWorkerRequest(intent=RoleIntent(role="reviewer", purpose="review PRs"), profile="reviewer")
    )
    await runtime.send_input(reviewer.ref, "Review PR #42")
    await _settle(runtime, reviewer.ref)
    await runtime.send_input(triage.ref, "Summarise the last three failures.")
    await _settle(runtime, triage.ref)
    clock.advance(PHASE_GAP)
    await runtime.stop_worker(triage.ref, "done for today")
    late = await runtime.create_worker(
        CreateWorkerRequest(intent=AssistantIntent(purpose="prints untrusted text"))
    )
    await runtime.send_input(late.ref, UNTRUSTED)
    await _settle(runtime, late.ref)


async def open_past_scene_backend(db: Path) -> HostedBackend:
    """A fresh database seeded with `seed_past_scene` (deterministic clock and ids)."""
    db.parent.mkdir(parents=True, exist_ok=True)
    config = db.parent / "agentdeck.toml"
    config.write_text(SCENE_CONFIG)
    clock = SteppingClock()
    backend = await open_backend(
        db, config=config, clock=clock, ids=CountingIds(), watch=False, db_label="past.db"
    )
    assert backend.runtime is not None
    await seed_past_scene(backend.runtime, clock)
    return backend


def past_scene_app(db: Path) -> AgentDeckApp:
    """The console on a freshly seeded past scene at `db` (which must not exist)."""
    return AgentDeckApp(
        lambda: open_past_scene_backend(db),
        settings_file=None,
        now=SteppingClock().now,
        tz=UTC,
        db_label="past.db",
    )


# -- the pictures scene (issue 11): an hour of a fleet's history, seen at a fixed now --

PICTURES_NOW = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
"""The scene's "now": the console's clock stands still here, an hour after the fleet began."""
FLEET = "fleet"
FLEET_WORKERS = (  # profile, run time range in seconds, share of runs that fail
    ("builtin:demo", (20, 60), 0.1),
    ("builtin:demo", (20, 60), 0.1),
    ("builtin:demo", (20, 60), 0.1),
    ("builtin:demo", (20, 60), 0.1),
    ("reviewer", (5, 15), 0.5),
    ("coder", (120, 480), 0.2),
)


def fleet_history(now: datetime = PICTURES_NOW) -> list[NewEvent]:
    """Runtime `fleet`'s last hour, in time order: six workers running one run after another.

    A tool burst 3 to 1.5 minutes ago, warnings and a cluster of errors in the
    last five minutes, and the runs still going at `now` left open (nothing
    hosts `fleet`, so nothing fails them). Seeded: the same events every time.
    """
    rng = random.Random(11)
    ids = CountingIds(prefix=0x0193_0000_0000)
    start = now - timedelta(minutes=65)
    timed: list[tuple[datetime, int, NewEvent]] = []

    def add(at: datetime, kind: str, payload: catalog.Payload, message: str, **where: Any) -> None:
        if at <= now:
            event = catalog.event(kind, payload, event_id=ids.event_id(), at=at, message=message,
                                  **where)
            timed.append((at, len(timed), event))

    add(start, "runtime.started", catalog.RuntimeStarted(), f"runtime {FLEET} started")
    for number, (profile, (low, high), fail_rate) in enumerate(FLEET_WORKERS, 1):
        w = f"w-{number}"
        spec = WorkerSpec(intent=RoleIntent(role=f"fleet-{number}"), profile=profile)
        add(start, "worker.created", catalog.WorkerCreated(spec=spec), f"worker {w} created", worker_id=w)
        at, run_no, sequence = start + timedelta(seconds=rng.uniform(1, 30)), 0, 0
        while at < now:
            run_no += 1
            run_id, took = f"{w}.r{run_no}", rng.uniform(low, high)
            end = at + timedelta(seconds=took)
            seq = iter(range(1, 10_000))
            sequence += 1
            prompt = f"task #{run_no}"
            add(at, "worker.input.accepted",
                catalog.TranscriptAppended(role=Role.USER, content=prompt, sequence=sequence),
                f"user input #{sequence}", worker_id=w)
            where = {"worker_id": w, "run_id": run_id}
            add(at, "run.created", catalog.RunCreated(prompt=prompt, input_sequence=sequence),
                f"run {run_id} queued", run_seq=next(seq), **where)
            add(at + timedelta(seconds=0.5), "run.planning", catalog.Empty(),
                f"run {run_id} planning", run_seq=next(seq), **where)
            add(at + timedelta(seconds=1), "run.executing", catalog.Empty(),
                f"run {run_id} executing", run_seq=next(seq), **where)
            tick = at + timedelta(seconds=2)
            while tick < end - timedelta(seconds=1):
                burst = now - timedelta(seconds=180) <= tick < now - timedelta(seconds=90)
                add(tick, "run.tool.completed",
                    catalog.ToolCompleted(step=1, tool="shell", duration_ms=rng.randint(5, 900)),
                    "tool shell done", run_seq=next(seq), **where)
                tick += timedelta(seconds=0.25 if burst and profile == "builtin:demo" else 2.0)
            add(end - timedelta(seconds=0.5), "run.verifying", catalog.Empty(),
                f"run {run_id} verifying", run_seq=next(seq), **where)
            if rng.random() < fail_rate:
                add(end, "run.failed", catalog.RunFailed(error="the checks did not pass"),
                    f"run {run_id} failed", run_seq=next(seq), **where)
            else:
                sequence += 1
                add(end, "worker.output",
                    catalog.TranscriptAppended(role=Role.ASSISTANT, content="done", sequence=sequence),
                    "assistant: done", worker_id=w)
                add(end, "run.completed", catalog.RunCompleted(result="done"),
                    f"run {run_id} completed", run_seq=next(seq), **where)
            at = end + timedelta(seconds=rng.uniform(1, 8))
    for n in range(8):  # warnings now and then, a cluster of errors a minute ago
        add(now - timedelta(seconds=280 - 35 * n), "diagnostic.raised",
            catalog.DiagnosticRaised(severity=Severity.WARNING, code="slow.tool",
                                     message="a tool took over 800 ms"),
            "warning: slow.tool", worker_id="w-6")
    for n in range(6):
        add(now - timedelta(seconds=70 - 4 * n), "diagnostic.raised",
            catalog.DiagnosticRaised(severity=Severity.ERROR, code="api.quota",
                                     message="the model API refused: quota"),
            "error: api.quota", worker_id="w-5")
    return [event for _, _, event in sorted(timed, key=lambda t: (t[0], t[1]))]


async def open_pictures_backend(db: str | Path, config: Path) -> HostedBackend:
    """A database (a SQLite path or a PostgreSQL URL) holding `fleet_history`, opened
    hosting `local` at PICTURES_NOW with the profiles file `config`."""
    history = fleet_history()
    store = await open_store(db, watch=False)
    try:
        for chunk in range(0, len(history), 2_000):
            await store.append(FLEET, None, history[chunk : chunk + 2_000])
    finally:
        await store.close()
    return await open_backend(
        db, config=config, clock=SteppingClock(start=PICTURES_NOW, step=timedelta(microseconds=10)),
        ids=CountingIds(), watch=False, db_label="scene.db",
    )


def pictures_app(
    db: str | Path, *, folder: Path | None = None, shown: bool = True
) -> AgentDeckApp:
    """The console on the pictures scene, its clock standing at PICTURES_NOW + 2 s, the
    strip shown (`shown`) through a settings file in `folder` (default: beside the file)."""
    where = folder if folder is not None else Path(db).parent
    where.mkdir(parents=True, exist_ok=True)
    settings = where / "settings.json"
    settings.write_text(json.dumps({"pictures": shown}))
    config = where / "agentdeck.toml"
    config.write_text(SCENE_CONFIG)
    return AgentDeckApp(
        lambda: open_pictures_backend(db, config),
        settings_file=settings,
        now=lambda: PICTURES_NOW + timedelta(seconds=2),
        tz=UTC,
        db_label="scene.db",
    )
