"""Seeded scenes: the same console state every time, for snapshot tests and screenshots.

A scene hosts a runtime with a stepping clock and counting ids, and makes
its workers do their work one step at a time (each run settles before the
next input), so every time and id on screen is the same on every run.
"""

from __future__ import annotations

import asyncio
from datetime import UTC
from pathlib import Path

from engine.clock import CountingIds, SteppingClock
from engine.results import CreateWorkerRequest
from engine.runtime import Runtime
from store.models import (
    AssistantIntent,
    Capability,
    NamedRef,
    RoleIntent,
    TaskIntent,
    WorkerRef,
)
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
