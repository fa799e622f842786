"""A host that dies (SIGKILL) or closes mid-run, and the host that takes over."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from engine.drivers.base import RunContext
from engine.errors import RuntimeStopped
from engine.profiles import CommandProfile
from engine.results import CreateWorkerRequest
from engine.runtime import Runtime
from store.models import RunStatus, WorkerRef, WorkerStatus
from store.open import open_store
from tests.engine.conftest import (
    AGENTDECK,
    PROGRAMS,
    HostFactory,
    agent_profile,
    all_events,
    kill_quietly,
    pid_gone,
    profile_set,
    run_events,
    transcript_text,
    wait_run,
)

if TYPE_CHECKING:
    from store.open import AnyStore


def child_profiles() -> Any:
    """The profiles programs/host_child.py hosts with (same name, same program)."""
    agent = CommandProfile(
        name="agent", command=[sys.executable, str(PROGRAMS / "agent.py")], timeout=60, grace=0.2
    )
    return profile_set(agent)


async def agentdeck(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        str(AGENTDECK),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_a_host_killed_mid_run_is_taken_over_and_nothing_is_lost(db_address: str | Path) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(PROGRAMS / "host_child.py"),
        str(db_address),
        "local",
        "crash",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    program_pid = None
    try:
        line = await asyncio.wait_for(child.stdout.readline(), 20)
        assert line, (await child.stderr.read()).decode()  # type: ignore[union-attr]
        ready = json.loads(line)
        program_pid = ready["program_pid"]
        assert ready["ready"] and program_pid
        child.send_signal(signal.SIGKILL)
        assert await child.wait() == -signal.SIGKILL
        committed = {seq: event_id for seq, event_id in ready["events"]}

        store = await open_store(db_address)
        try:
            # Same host, dead pid: taken over at once, however fresh its last heartbeat.
            rt = await Runtime.host(store, "local", profiles=child_profiles())
            try:
                await check_takeover(rt, committed)
            finally:
                await rt.close()
            assert (await store.hosts()).get("local") is None, "a clean close releases"
        finally:
            await store.close()
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
        if program_pid:
            kill_quietly(program_pid)  # the dead host's program is an orphan now

    code, out, err = await agentdeck("--db", str(db_address), "verify")
    assert code == 0, out + err


async def check_takeover(rt: Runtime, committed: dict[int, str]) -> None:
    ref = WorkerRef(runtime_id="local", worker_id="w-1")
    events = await all_events(rt)
    by_seq = {e.seq: str(e.event_id) for e in events}
    # Everything the dead host had committed is still there, unchanged.
    assert {seq: by_seq.get(seq) for seq in committed} == committed
    restored = [e for e in events if e.kind == "runtime.restored"]
    assert len(restored) == 1 and restored[0].payload["pid"] == os.getpid()
    assert restored[0].seq == max(committed) + 1

    first = await rt.store.run("local", "w-1.r1")
    assert first is not None
    assert (first.status, first.error) == (RunStatus.FAILED, "host exited")
    first_events = await run_events(rt, "w-1.r1")
    assert [e.run_seq for e in first_events] == list(range(1, len(first_events) + 1))
    assert first_events[-1].kind == "run.failed"
    assert first_events[-1].seq == restored[0].seq + 1

    # The worker goes on with its queue: the second input becomes a run that completes.
    second = await wait_run(rt, "w-1.r2")
    assert second.status is RunStatus.COMPLETED
    assert second.result_text == "started second\nanswer: second"
    detail = await rt.worker_detail(ref)
    assert detail.status is WorkerStatus.RUNNING and detail.queued == 0
    entries = await transcript_text(rt, ref)
    assert entries[:2] == [("user", "hang"), ("user", "second")]
    answer = [
        e.payload["content"] for e in await run_events(rt, "w-1.r2") if e.kind == "worker.output"
    ]
    assert "\n".join(answer) == "started second\nanswer: second"
    summary = await rt.summary()
    assert summary.host is not None and summary.host.pid == os.getpid()
    # The worker takes new input too.
    more = await rt.send_input(ref, "third")
    assert more.run_id == "w-1.r3"
    assert (await wait_run(rt, more.run_id)).status is RunStatus.COMPLETED


async def test_a_clean_close_fails_the_current_run_and_the_next_host_runs_the_queue(
    store: AnyStore, host: HostFactory, tmp_path: Path
) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    profiles = profile_set(agent_profile(gate_dir=gates))
    rt = await host(profiles=profiles)
    w = await rt.create_worker(CreateWorkerRequest(profile="agent"))
    current = await rt.send_input(w.ref, "gate a")
    await wait_run(rt, current.run_id, RunStatus.EXECUTING)
    queued = await rt.send_input(w.ref, "gate b")
    pid = next(
        e.payload["pid"]
        for e in await run_events(rt, current.run_id)
        if e.kind == "exec.command.started"
    )
    await rt.close()
    assert pid_gone(pid)
    run = await store.run("local", current.run_id)
    assert run is not None and (run.status, run.error) == (RunStatus.FAILED, "host closed")
    assert (await store.run("local", queued.run_id)).status is RunStatus.CREATED  # type: ignore[union-attr]
    with pytest.raises(RuntimeStopped):
        await rt.send_input(w.ref, "after close")

    again = await host(profiles=profiles)
    (gates / "b").touch()
    assert (await wait_run(again, queued.run_id)).status is RunStatus.COMPLETED
    run = await store.run("local", current.run_id)
    assert run is not None and run.status is RunStatus.FAILED
    kinds = [e.kind for e in await all_events(again)]
    assert kinds.count("runtime.restored") == 1
    assert kinds.count("run.failed") == 1  # the closed run was not failed a second time


class Recording:
    """Blocks on `block` inputs; records what every run received."""

    seen: list[tuple[str, str]] = []
    release = asyncio.Event()

    async def run(self, ctx: RunContext) -> str:
        Recording.seen.append((ctx.input.role, ctx.input.content))
        await ctx.phase("executing")
        if ctx.input.content == "block":
            await Recording.release.wait()
        return "ok"

    async def close(self) -> None:
        return None


async def test_a_restored_queue_keeps_its_order_and_roles(
    host: HostFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    Recording.seen = []
    Recording.release = asyncio.Event()
    monkeypatch.setattr("engine.scheduling.make_driver", lambda profile, worker: Recording())
    rt = await host()
    w = await rt.create_worker(CreateWorkerRequest())
    blocked = await rt.send_input(w.ref, "block")
    await wait_run(rt, blocked.run_id, RunStatus.EXECUTING)
    acks = [
        await rt.send_input(w.ref, "be terse", role="system"),
        await rt.send_input(w.ref, "question 1"),
        await rt.send_input(w.ref, "question 2"),
    ]
    await rt.close()
    Recording.seen = []
    again = await host()
    for ack in acks:
        assert (await wait_run(again, ack.run_id)).status is RunStatus.COMPLETED
    assert Recording.seen == [
        ("system", "be terse"),
        ("user", "question 1"),
        ("user", "question 2"),
    ]
    assert (await again.store.run("local", blocked.run_id)).error == "host closed"  # type: ignore[union-attr]


class EndsWhenReleased:
    """Ignores cancellation, then ends its run when the test releases it."""

    cancelled = asyncio.Event()
    release = asyncio.Event()

    async def run(self, ctx: RunContext) -> str:
        await ctx.phase("executing")
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            EndsWhenReleased.cancelled.set()
            await EndsWhenReleased.release.wait()
        return "ended"

    async def close(self) -> None:
        return None


async def test_close_does_not_hang_when_a_run_ends_at_the_same_moment(
    host: HostFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    EndsWhenReleased.cancelled = asyncio.Event()
    EndsWhenReleased.release = asyncio.Event()
    monkeypatch.setattr("engine.scheduling.make_driver", lambda profile, worker: EndsWhenReleased())
    rt = await host()
    w = await rt.create_worker(CreateWorkerRequest())
    ack = await rt.send_input(w.ref, "work")
    await wait_run(rt, ack.run_id, RunStatus.EXECUTING)
    cancelling = asyncio.create_task(rt.cancel_run(w.ref, ack.run_id))
    await asyncio.wait_for(EndsWhenReleased.cancelled.wait(), 5)
    # The run ends in the very step in which close() cancels the worker's loop:
    # the loop must still end, not mistake the close for its run's cancellation.
    EndsWhenReleased.release.set()
    closing = asyncio.create_task(rt.close())
    done, _ = await asyncio.wait({closing}, timeout=5)
    loop_task = rt._scheduler.workers["w-1"].loop_task
    if not done and loop_task is not None:
        loop_task.cancel()  # unstick it, so the failure below is the only symptom
    assert done, "close() hung: the worker loop swallowed its own cancellation"
    assert await cancelling is True
    run = await rt.store.run("local", ack.run_id)
    assert run is not None and run.status is RunStatus.CANCELLED


async def test_a_restored_worker_whose_profile_is_gone_fails_its_runs_with_the_reason(
    host: HostFactory, tmp_path: Path
) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    rt = await host(profiles=profile_set(agent_profile(gate_dir=gates)))
    w = await rt.create_worker(CreateWorkerRequest(profile="agent"))
    first = await rt.send_input(w.ref, "gate a")
    await wait_run(rt, first.run_id, RunStatus.EXECUTING)
    queued = await rt.send_input(w.ref, "gate b")
    await rt.close()

    again = await host()  # the config no longer has "agent"
    run = await wait_run(again, queued.run_id)
    assert run.status is RunStatus.FAILED
    assert run.error == "profile 'agent' is no longer in the config"
    assert (await again.worker_detail(w.ref)).status is WorkerStatus.RUNNING
