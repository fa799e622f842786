"""Inputs and runs: the lifecycle, queues, stop/cancel, cancel_run, cancelled is sticky.

Runs are held active with programs/agent.py's `gate NAME` input, which waits for a
file the test creates: no sleeps decide what a test sees.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from engine.drivers.base import RunContext
from engine.profiles import CommandProfile
from engine.results import CreateWorkerRequest
from engine.runtime import Runtime
from store.catalog import StepStarted, ToolStarted
from store.errors import InvalidEvent
from store.models import RunStatus, WorkerRecord, WorkerStatus
from tests.engine.conftest import (
    HostFactory,
    agent_profile,
    all_events,
    demo_profile,
    eventually,
    pid_gone,
    profile_set,
    program,
    run_events,
    run_kinds,
    transcript_text,
    wait_run,
    wait_transcript,
)

LIFECYCLE = ["run.created", "run.planning", "run.executing", "run.verifying", "run.completed"]


@pytest.fixture
def gates(tmp_path: Path) -> Path:
    folder = tmp_path / "gates"
    folder.mkdir()
    return folder


@pytest.fixture
async def gated(host: HostFactory, gates: Path) -> tuple[Runtime, WorkerRecord]:
    """A runtime with one worker running the gated agent program."""
    rt = await host(profiles=profile_set(agent_profile(gate_dir=gates)))
    worker = await rt.create_worker(CreateWorkerRequest(profile="agent"))
    return rt, worker


def open_gate(gates: Path, name: str) -> None:
    (gates / name).touch()


async def program_pid(rt: Runtime, run_id: str) -> int:
    async def started() -> int | None:
        for event in await run_events(rt, run_id):
            if event.kind == "exec.command.started":
                return int(event.payload["pid"])
        return None

    pid: int = await eventually(started, what=f"{run_id} to start its program")
    return pid


def assert_contiguous_run_seqs(events: list[Any]) -> None:
    assert [e.run_seq for e in events] == list(range(1, len(events) + 1))


# -- the lifecycle ----------------------------------------------------------------------


async def test_an_echo_run_goes_through_every_status(host: HostFactory) -> None:
    rt = await host()
    w = await rt.create_worker(CreateWorkerRequest())
    ack = await rt.send_input(w.ref, "hello there")
    assert (ack.ref, ack.status, ack.run_id, ack.transcript_sequence) == (
        w.ref,
        WorkerStatus.RUNNING,
        "w-1.r1",
        1,
    )
    run = await wait_run(rt, ack.run_id)
    assert run.status is RunStatus.COMPLETED
    assert (run.prompt, run.result_text, run.error, run.input_sequence) == (
        "hello there",
        "echo: hello there",
        None,
        1,
    )
    events = await run_events(rt, ack.run_id)
    assert [e.kind for e in events] == [
        "worker.input.accepted",
        "run.created",
        "run.planning",
        "run.executing",
        "worker.output",
        "run.verifying",
        "run.completed",
    ]
    assert_contiguous_run_seqs(events)
    assert events[0].event_id == ack.event_id
    assert all(e.worker_id == "w-1" for e in events)
    assert run.last_run_seq == len(events)
    # The runtime sequence has no holes either.
    seqs = [e.seq for e in await all_events(rt)]
    assert seqs == list(range(1, len(seqs) + 1))


async def test_input_lands_in_the_transcript_at_once(
    gated: tuple[Runtime, WorkerRecord], gates: Path
) -> None:
    rt, w = gated
    ack = await rt.send_input(w.ref, "gate a")
    page = await rt.transcript_page(w.ref, 0, 10)
    assert [(i.sequence, i.role.value, i.content, i.event_id, i.run_id) for i in page.items] == [
        (1, "user", "gate a", ack.event_id, ack.run_id)
    ]
    await wait_run(rt, ack.run_id, RunStatus.EXECUTING)
    await wait_transcript(rt, w.ref, "started gate a")
    detail = await rt.worker_detail(w.ref)
    assert (detail.current_run_id, detail.current_run_status) == (ack.run_id, RunStatus.EXECUTING)
    open_gate(gates, "a")
    run = await wait_run(rt, ack.run_id)
    assert run.status is RunStatus.COMPLETED
    assert "answer: gate a" in (run.result_text or "")
    said = "\n".join(text for role, text in await transcript_text(rt, w.ref) if role == "assistant")
    assert said == "started gate a\nanswer: gate a"
    detail = await rt.worker_detail(w.ref)
    assert (detail.current_run_id, detail.current_run_status, detail.queued) == (None, None, 0)


async def test_inputs_during_a_run_queue_in_order_each_its_own_run(
    gated: tuple[Runtime, WorkerRecord], gates: Path
) -> None:
    rt, w = gated
    first = await rt.send_input(w.ref, "gate a")
    await wait_run(rt, first.run_id, RunStatus.EXECUTING)
    second = await rt.send_input(w.ref, "gate b")
    third = await rt.send_input(w.ref, "gate c", role="system")
    assert [a.run_id for a in (first, second, third)] == ["w-1.r1", "w-1.r2", "w-1.r3"]
    assert [a.transcript_sequence for a in (first, second, third)] == [1, 2, 3]
    detail = await rt.worker_detail(w.ref)
    assert (detail.queued, detail.current_run_id) == (2, "w-1.r1")
    # Later gates open first: the queue still runs in the order the inputs came.
    open_gate(gates, "c")
    open_gate(gates, "b")
    await asyncio.sleep(0.2)
    assert (await rt.store.run("local", second.run_id)).status is RunStatus.CREATED  # type: ignore[union-attr]
    open_gate(gates, "a")
    for ack in (first, second, third):
        assert (await wait_run(rt, ack.run_id)).status is RunStatus.COMPLETED
    events = await all_events(rt)
    starts = [e.run_id for e in events if e.kind == "run.planning"]
    ends = [e.run_id for e in events if e.kind == "run.completed"]
    assert starts == ends == ["w-1.r1", "w-1.r2", "w-1.r3"]
    # One run at a time: each starts after the one before it completed.
    position = {(e.run_id, e.kind): e.seq for e in events}
    assert position[("w-1.r1", "run.completed")] < position[("w-1.r2", "run.planning")]
    assert position[("w-1.r2", "run.completed")] < position[("w-1.r3", "run.planning")]
    for ack in (first, second, third):
        evs = await run_events(rt, ack.run_id)
        assert_contiguous_run_seqs(evs)
        assert [e.kind for e in evs if e.kind in LIFECYCLE] == LIFECYCLE
    created = [e for e in events if e.kind == "run.created"]
    assert created[2].payload["role"] == "system"
    roles = [role for role, _ in await transcript_text(rt, w.ref)]
    assert roles[:3] == ["user", "user", "system"]


# -- stop and cancel -----------------------------------------------------------------


async def test_stop_lets_the_current_run_finish_and_drops_the_queue(
    gated: tuple[Runtime, WorkerRecord], gates: Path
) -> None:
    rt, w = gated
    current = await rt.send_input(w.ref, "gate a")
    await wait_run(rt, current.run_id, RunStatus.EXECUTING)
    queued = [await rt.send_input(w.ref, f"gate {n}") for n in ("b", "c")]
    ack = await rt.stop_worker(w.ref, reason="enough for today")
    assert (ack.status, ack.changed) == (WorkerStatus.STOPPED, True)
    for q in queued:
        run = await rt.store.run("local", q.run_id)
        assert run is not None and run.status is RunStatus.CANCELLED
        assert run.error == "enough for today"
    assert (await rt.store.run("local", current.run_id)).status is RunStatus.EXECUTING  # type: ignore[union-attr]
    detail = await rt.worker_detail(w.ref)
    assert (detail.status, detail.terminal_event_id, detail.queued) == (
        WorkerStatus.STOPPED,
        ack.event_id,
        0,
    )
    stop_event = next(e for e in await all_events(rt) if e.kind == "worker.stopped")
    assert stop_event.event_id == ack.event_id
    assert stop_event.payload["reason"] == "enough for today"
    open_gate(gates, "a")
    assert (await wait_run(rt, current.run_id)).status is RunStatus.COMPLETED
    open_gate(gates, "b")
    open_gate(gates, "c")
    await asyncio.sleep(0.1)
    for q in queued:
        assert await run_kinds(rt, q.run_id) == [
            "worker.input.accepted",
            "run.created",
            "run.cancelled",
        ]


async def test_cancel_cancels_the_current_run_and_the_queue_at_once(
    gated: tuple[Runtime, WorkerRecord], gates: Path
) -> None:
    rt, w = gated
    current = await rt.send_input(w.ref, "gate a")
    await wait_run(rt, current.run_id, RunStatus.EXECUTING)
    pid = await program_pid(rt, current.run_id)
    queued = await rt.send_input(w.ref, "gate b")
    ack = await rt.cancel_worker(w.ref)
    assert (ack.status, ack.changed) == (WorkerStatus.CANCELLED, True)
    # When cancel_worker returns the program is gone, and both runs are cancelled.
    assert pid_gone(pid)
    for run_id in (current.run_id, queued.run_id):
        run = await rt.store.run("local", run_id)
        assert run is not None and run.status is RunStatus.CANCELLED
    open_gate(gates, "a")
    await asyncio.sleep(0.1)
    kinds = await run_kinds(rt, current.run_id)
    assert kinds[-1] == "run.cancelled"
    assert "run.completed" not in kinds and "exec.command.failed" not in kinds
    detail = await rt.worker_detail(w.ref)
    assert (detail.status, detail.terminal_event_id) == (WorkerStatus.CANCELLED, ack.event_id)
    assert (detail.current_run_id, detail.queued) == (None, 0)


async def test_stop_then_cancel_stays_stopped_and_emits_nothing(
    gated: tuple[Runtime, WorkerRecord], gates: Path
) -> None:
    rt, w = gated
    current = await rt.send_input(w.ref, "gate a")
    await wait_run(rt, current.run_id, RunStatus.EXECUTING)
    stop = await rt.stop_worker(w.ref)
    last = await rt.store.last_seq("local")
    again = await rt.stop_worker(w.ref, reason="another reason")
    cancel = await rt.cancel_worker(w.ref, reason="now cancel")
    for repeat in (again, cancel):
        assert (repeat.status, repeat.event_id, repeat.changed) == (
            WorkerStatus.STOPPED,
            stop.event_id,
            False,
        )
    assert await rt.store.last_seq("local") == last
    # The cancel did not touch the run that stop lets finish.
    open_gate(gates, "a")
    assert (await wait_run(rt, current.run_id)).status is RunStatus.COMPLETED
    assert (await rt.worker_detail(w.ref)).status is WorkerStatus.STOPPED


async def test_cancel_then_stop_stays_cancelled_and_emits_nothing(host: HostFactory) -> None:
    rt = await host()
    w = await rt.create_worker(CreateWorkerRequest())
    cancel = await rt.cancel_worker(w.ref)
    last = await rt.store.last_seq("local")
    for repeat in (await rt.cancel_worker(w.ref), await rt.stop_worker(w.ref)):
        assert (repeat.status, repeat.event_id, repeat.changed) == (
            WorkerStatus.CANCELLED,
            cancel.event_id,
            False,
        )
    assert await rt.store.last_seq("local") == last
    detail = await rt.worker_detail(w.ref)
    assert (detail.status, detail.terminal_event_id) == (WorkerStatus.CANCELLED, cancel.event_id)
    kinds = [e.kind for e in await all_events(rt) if e.worker_id == "w-1"]
    assert kinds.count("worker.cancelled") == 1 and "worker.stopped" not in kinds


# -- cancel_run ---------------------------------------------------------------------------


async def test_cancel_run_cancels_only_the_current_run(
    gated: tuple[Runtime, WorkerRecord], gates: Path
) -> None:
    rt, w = gated
    first = await rt.send_input(w.ref, "gate a")
    await wait_run(rt, first.run_id, RunStatus.EXECUTING)
    pid = await program_pid(rt, first.run_id)
    second = await rt.send_input(w.ref, "gate b")
    last = await rt.store.last_seq("local")

    # Not the current run: a queued one, an unknown one, one of another worker.
    assert await rt.cancel_run(w.ref, second.run_id) is False
    assert await rt.cancel_run(w.ref, "w-1.r99") is False
    other = await rt.create_worker(CreateWorkerRequest())
    assert await rt.cancel_run(other.ref, first.run_id) is False
    last = await rt.store.last_seq("local")

    assert await rt.cancel_run(w.ref, first.run_id, reason="wrong question") is True
    assert pid_gone(pid)
    run = await rt.store.run("local", first.run_id)
    assert run is not None and (run.status, run.error) == (RunStatus.CANCELLED, "wrong question")
    # The worker goes on: the queued run is next.
    assert (await rt.worker_detail(w.ref)).status is WorkerStatus.RUNNING
    await wait_run(rt, second.run_id, RunStatus.EXECUTING)
    assert await rt.store.last_seq("local") > last

    # The cancelled run is stale now: cancelling it again changes nothing.
    before = await rt.store.last_seq("local")
    assert await rt.cancel_run(w.ref, first.run_id) is False
    assert await rt.store.last_seq("local") == before
    open_gate(gates, "b")
    assert (await wait_run(rt, second.run_id)).status is RunStatus.COMPLETED
    # And a completed run is stale too.
    assert await rt.cancel_run(w.ref, second.run_id) is False
    cancelled = [e for e in await all_events(rt) if e.kind == "run.cancelled"]
    assert [e.run_id for e in cancelled] == [first.run_id]


# -- cancelled is sticky -------------------------------------------------------------------


async def test_a_program_ignoring_sigterm_is_killed_and_its_end_changes_nothing(
    host: HostFactory,
) -> None:
    stubborn = CommandProfile(name="stubborn", command=program("stubborn.py"), grace=0.3)
    rt = await host(profiles=profile_set(stubborn))
    w = await rt.create_worker(CreateWorkerRequest(profile="stubborn"))
    ack = await rt.send_input(w.ref, "go")
    await wait_transcript(rt, w.ref, "ignoring SIGTERM")
    pid = await program_pid(rt, ack.run_id)
    assert await rt.cancel_run(w.ref, ack.run_id) is True
    assert pid_gone(pid), "SIGKILL after the grace period"
    await asyncio.sleep(0.2)
    events = await run_events(rt, ack.run_id)
    kinds = [e.kind for e in events]
    # The program died of SIGKILL after the cancel: no failure is recorded for it.
    assert kinds[-1] == "run.cancelled"
    assert "run.failed" not in kinds and "exec.command.failed" not in kinds
    assert_contiguous_run_seqs(events)
    run = await rt.store.run("local", ack.run_id)
    assert run is not None and run.status is RunStatus.CANCELLED
    # The worker still takes input.
    assert (await rt.worker_detail(w.ref)).status is WorkerStatus.RUNNING


class LateDriver:
    """A misbehaving driver: ignores cancellation and reports success afterwards."""

    def __init__(self) -> None:
        self.finished = asyncio.Event()
        self.started = asyncio.Event()

    async def run(self, ctx: RunContext) -> str:
        await ctx.phase("executing")
        if ctx.input.content == "quick":
            await ctx.output("assistant", "quick answer")
            await ctx.phase("verifying")
            return "quick answer"
        self.started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            pass  # swallowed: a driver that does not listen
        await ctx.output("assistant", "late answer")
        await ctx.event("run.step.started", "a late step", StepStarted(step=1, title="late"))
        await ctx.diagnostic("warning", "late.driver", "still talking")
        await ctx.phase("verifying")
        self.finished.set()
        return "late answer"

    async def close(self) -> None:
        return None


async def test_a_driver_completing_after_cancel_changes_nothing(
    host: HostFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    driver = LateDriver()
    monkeypatch.setattr("engine.scheduling.make_driver", lambda profile, worker: driver)
    rt = await host()
    w = await rt.create_worker(CreateWorkerRequest())
    ack = await rt.send_input(w.ref, "slow")
    await asyncio.wait_for(driver.started.wait(), 5)
    assert await rt.cancel_run(w.ref, ack.run_id) is True
    await asyncio.wait_for(driver.finished.wait(), 5)
    kinds = await run_kinds(rt, ack.run_id)
    assert kinds[-1] == "run.cancelled"
    assert "run.completed" not in kinds and "worker.output" not in kinds
    run = await rt.store.run("local", ack.run_id)
    assert run is not None and (run.status, run.result_text) == (RunStatus.CANCELLED, None)
    assert ("assistant", "late answer") not in await transcript_text(rt, w.ref)
    # The worker is not stuck behind it.
    nxt = await rt.send_input(w.ref, "quick")
    assert (await wait_run(rt, nxt.run_id)).status is RunStatus.COMPLETED


async def test_a_demo_run_cancelled_mid_step_stays_cancelled(host: HostFactory) -> None:
    rt = await host(profiles=profile_set(demo_profile(pace=0.6, steps=3)))
    w = await rt.create_worker(CreateWorkerRequest(profile="slow"))
    ack = await rt.send_input(w.ref, "work")

    async def in_a_step() -> bool:
        return "run.tool.started" in await run_kinds(rt, ack.run_id)

    await eventually(in_a_step)
    assert await rt.cancel_run(w.ref, ack.run_id) is True
    await asyncio.sleep(0.8)  # longer than a step: a live driver would have moved on
    events = await run_events(rt, ack.run_id)
    kinds = [e.kind for e in events]
    assert kinds[-1] == "run.cancelled"
    assert kinds.count("run.step.started") == 1
    assert "run.tool.completed" not in kinds and "run.verifying" not in kinds
    assert_contiguous_run_seqs(events)
    assert (await rt.store.run("local", ack.run_id)).status is RunStatus.CANCELLED  # type: ignore[union-attr]


async def test_a_driver_error_fails_only_its_run(
    host: HostFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Broken:
        async def run(self, ctx: RunContext) -> str:
            if ctx.input.content == "break":
                raise ValueError("boom")
            return "fine"

        async def close(self) -> None:
            return None

    monkeypatch.setattr("engine.scheduling.make_driver", lambda profile, worker: Broken())
    rt = await host()
    w = await rt.create_worker(CreateWorkerRequest())
    bad = await rt.send_input(w.ref, "break")
    good = await rt.send_input(w.ref, "work")
    failed = await wait_run(rt, bad.run_id)
    assert failed.status is RunStatus.FAILED and "boom" in (failed.error or "")
    assert (await wait_run(rt, good.run_id)).status is RunStatus.COMPLETED


async def test_a_driver_event_the_catalog_refuses_raises_at_once_and_fails_its_run(
    host: HostFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused: list[InvalidEvent] = []

    class Misfit:
        async def run(self, ctx: RunContext) -> str:
            await ctx.phase("executing")
            kind, payload = {
                "wrong payload": ("run.step.started", ToolStarted(step=1, tool="grep")),
                "unknown kind": ("run.made.up", StepStarted(step=1, title="x")),
            }[ctx.input.content]
            try:
                await ctx.event(kind, "not what the catalog says", payload)
            except InvalidEvent as exc:
                refused.append(exc)
                raise
            return "never"

        async def close(self) -> None:
            return None

    monkeypatch.setattr("engine.scheduling.make_driver", lambda profile, worker: Misfit())
    rt = await host()
    w = await rt.create_worker(CreateWorkerRequest())
    wrong = await rt.send_input(w.ref, "wrong payload")
    unknown = await rt.send_input(w.ref, "unknown kind")
    for ack, kind in ((wrong, "run.step.started"), (unknown, "run.made.up")):
        failed = await wait_run(rt, ack.run_id)
        assert failed.status is RunStatus.FAILED
        assert "driver error" in (failed.error or "") and kind in (failed.error or "")
        kinds = [e.kind for e in await run_events(rt, ack.run_id)]
        assert kind not in kinds and kinds[-1] == "run.failed"
    assert [exc.kind for exc in refused] == ["run.step.started", "run.made.up"]
    assert rt.fault is None  # refused before it reached the store: writes go on
    assert (await rt.send_input(w.ref, "wrong payload")).run_id


# -- the demo driver --------------------------------------------------------------------


async def test_demo_runs_have_steps_and_tool_calls(host: HostFactory) -> None:
    rt = await host(profiles=profile_set(demo_profile(pace=0.01, steps=3, tool_rate=1.0)))
    w = await rt.create_worker(CreateWorkerRequest(profile="slow"))
    ack = await rt.send_input(w.ref, "refactor the parser")
    run = await wait_run(rt, ack.run_id)
    assert run.status is RunStatus.COMPLETED
    events = await run_events(rt, ack.run_id)
    assert [e.kind for e in events] == [
        "worker.input.accepted",
        "run.created",
        "run.planning",
        "run.executing",
        *["run.step.started", "run.tool.started", "run.tool.completed"] * 3,
        "run.verifying",
        "worker.output",
        "run.completed",
    ]
    assert_contiguous_run_seqs(events)
    steps = [e.payload["step"] for e in events if e.kind == "run.step.started"]
    assert steps == [1, 2, 3]
    tools = [e for e in events if e.kind == "run.tool.completed"]
    assert all(e.payload["tool"] and e.payload["duration_ms"] > 0 for e in tools)
    assert run.result_text == "done: refactor the parser"


async def test_demo_failures_fail_the_run_with_the_reason(host: HostFactory) -> None:
    rt = await host(profiles=profile_set(demo_profile(pace=0.01, steps=1, fail_rate=1.0)))
    w = await rt.create_worker(CreateWorkerRequest(profile="slow"))
    ack = await rt.send_input(w.ref, "try")
    run = await wait_run(rt, ack.run_id)
    assert run.status is RunStatus.FAILED
    assert "demo failure" in (run.error or "")
    assert (await run_kinds(rt, ack.run_id))[-1] == "run.failed"


async def test_builtin_demo_by_name(host: HostFactory) -> None:
    rt = await host()
    w = await rt.create_worker(CreateWorkerRequest(profile="builtin:demo"))
    ack = await rt.send_input(w.ref, "anything")
    run = await wait_run(rt, ack.run_id, timeout=10)
    assert run.status in (RunStatus.COMPLETED, RunStatus.FAILED)
    assert "run.step.started" in await run_kinds(rt, ack.run_id)


async def test_stopping_the_runtime_ends_a_stopped_workers_last_run_too(
    gated: tuple[Runtime, WorkerRecord], gates: Path
) -> None:
    rt, w = gated
    current = await rt.send_input(w.ref, "gate a")
    await wait_run(rt, current.run_id, RunStatus.EXECUTING)
    pid = await program_pid(rt, current.run_id)
    await rt.stop_worker(w.ref)  # lets the run finish ...
    stop_id = await rt.stop_runtime()  # ... but a stopped runtime runs nothing
    assert pid_gone(pid)
    run = await rt.store.run("local", current.run_id)
    assert run is not None and (run.status, run.error) == (RunStatus.CANCELLED, "runtime stopped")
    open_gate(gates, "a")
    await asyncio.sleep(0.2)
    events = await all_events(rt)
    assert events[-1].kind == "runtime.stopped" and events[-1].event_id == stop_id


async def test_concurrent_operations_keep_ids_sequences_and_projections_consistent(
    host: HostFactory,
) -> None:
    rt = await host()
    workers = await asyncio.gather(*(rt.create_worker(CreateWorkerRequest()) for _ in range(20)))
    assert sorted(int(w.worker_id[2:]) for w in workers) == list(range(1, 21))
    acks = await asyncio.gather(
        *(rt.send_input(w.ref, f"{w.worker_id} says {n}") for w in workers for n in range(3))
    )
    for ack in acks:
        assert (await wait_run(rt, ack.run_id)).status is RunStatus.COMPLETED
    for w in workers:
        mine = sorted((a for a in acks if a.ref == w.ref), key=lambda a: a.transcript_sequence)
        assert [a.run_id for a in mine] == [f"{w.worker_id}.r{n}" for n in (1, 2, 3)]
        entries = await transcript_text(rt, w.ref)
        assert [text for role, text in entries if role == "user"] == [
            f"{w.worker_id} says {n}" for n in range(3)
        ]
        assert len(entries) == 6
    seqs = [e.seq for e in await all_events(rt)]
    assert seqs == list(range(1, len(seqs) + 1))
    report = await rt.store.verify()
    assert report.ok, report.problems
