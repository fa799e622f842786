"""Issue 7: runs end when their program does, closing starts nothing, time never runs back.

Real programs (`sh -c ...` command profiles, as an operator configures them),
real SQLite files, real process groups.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import timedelta
from pathlib import Path

import pytest

from engine.clock import SteppingClock
from engine.results import CreateWorkerRequest
from engine.runtime import Runtime
from store.models import RunStatus
from store.open import open_store
from tests.engine.conftest import (
    HostFactory,
    all_events,
    eventually,
    pid_gone,
    profile_set,
    run_events,
    shell_profile,
    transcript_text,
    wait_run,
)


def pids_in(text: str, label: str) -> list[int]:
    return [int(n) for n in re.findall(rf"{label}=(\d+)", text)]


@pytest.mark.parametrize("timeout", [3.0, 0.0])
async def test_a_run_ends_when_its_program_exits_not_when_a_background_child_does(
    host: HostFactory, timeout: float
) -> None:
    """Issue 7 item 3: `sleep 20 & sleep 0.5; echo bye` completes at once, its child is ended."""
    rt = await host(profiles=profile_set(shell_profile(timeout=timeout)))
    worker = await rt.create_worker(CreateWorkerRequest(profile="sh"))
    started = time.monotonic()
    ack = await rt.send_input(worker.ref, "sleep 20 & echo child=$!; sleep 0.5; echo bye")
    run = await wait_run(rt, ack.run_id, timeout=8)
    took = time.monotonic() - started
    assert run.status is RunStatus.COMPLETED, run.error
    assert took < 2.5, f"the run took {took:.1f}s: it waited for the background child"
    text = "\n".join(content for role, content in await transcript_text(rt, worker.ref))
    assert "bye" in text
    [child] = pids_in(text, "child")
    # The rest of its group was ended with it, and the run says so.
    await eventually(lambda: pid_gone(child), 3, "the background child to be ended")
    events = await run_events(rt, ack.run_id)
    completed = next(e for e in events if e.kind == "exec.command.completed")
    assert completed.payload["exit_code"] == 0
    assert completed.payload["leftovers"] in ("terminated", "killed")
    assert not any(e.kind == "exec.command.timeout" for e in events)


async def test_output_written_just_before_exit_is_all_recorded(host: HostFactory) -> None:
    """Issue 7 item 3: finishing at the program's exit still drains what it buffered."""
    rt = await host(profiles=profile_set(shell_profile(timeout=5)))
    worker = await rt.create_worker(CreateWorkerRequest(profile="sh"))
    script = "sleep 30 & i=0; while [ $i -lt 2000 ]; do echo line $i; i=$((i+1)); done"
    ack = await rt.send_input(worker.ref, script)
    assert (await wait_run(rt, ack.run_id)).status is RunStatus.COMPLETED
    text = "\n".join(c for r, c in await transcript_text(rt, worker.ref) if r == "assistant")
    assert text.splitlines() == [f"line {i}" for i in range(2000)]


async def test_closing_starts_no_queued_run_and_the_next_host_resumes_them(
    db_address: str | Path,
) -> None:
    """Issue 7 item 4: after close, queued runs stay `created` and the next host runs them."""
    profiles = profile_set(shell_profile())
    store = await open_store(db_address, watch=False)
    try:
        rt = await Runtime.host(store, "local", profiles=profiles)
        workers = [await rt.create_worker(CreateWorkerRequest(profile="sh")) for _ in range(8)]
        # Sent together (one group commit, not 240 round trips): on a loaded machine or a
        # server, one by one took long enough for every run to finish before the close.
        acks = await asyncio.gather(
            *(rt.send_input(w.ref, "sleep 0.02; echo done") for _ in range(30) for w in workers)
        )
        # Close while runs are finishing one after the other.
        await asyncio.sleep(0.15)
        await rt.close()
        closing = [e for e in await all_events(rt) if e.payload.get("error") == "host closed"]
        last_close = max((e.position for e in closing), default=0)
        assert last_close, "close recorded no 'host closed' failure"
        later = (await store.read_after(last_close, 10_000)).events
        after = [e for e in later if e.kind.startswith("run.")]
        assert after == [], f"runs started after the host closed: {[e.kind for e in after]}"
        statuses = {}
        for ack in acks:
            run = await store.run("local", ack.run_id)
            assert run is not None
            statuses[ack.run_id] = run.status
        active = [r for r, s in statuses.items() if s.active]
        assert active == [], f"left active by close: {active}"
        queued = [r for r, s in statuses.items() if s is RunStatus.CREATED]
        assert queued, "the test closed too late to leave anything queued"

        again = await Runtime.host(store, "local", profiles=profiles)
        try:
            for run_id in queued:
                run = await wait_run(again, run_id, timeout=20)
                assert run.status is RunStatus.COMPLETED, (run_id, run.error)
        finally:
            await again.close()
    finally:
        await store.close()


async def test_event_times_never_run_backwards_under_a_clock_that_is_behind(
    db_address: str | Path,
) -> None:
    """Issue 7 item 14: a host whose clock is behind stamps no event before the last one."""
    store = await open_store(db_address, watch=False)
    try:
        ahead = SteppingClock()
        rt = await Runtime.host(store, "local", clock=ahead, profiles=profile_set(shell_profile()))
        worker = await rt.create_worker(CreateWorkerRequest(profile="sh"))
        await rt.send_input(worker.ref, "sleep 60")
        await rt.send_input(worker.ref, "echo resumed")
        await eventually(
            lambda: rt.store.run("local", "w-1.r2"), 5, "the second input to be queued"
        )
        await rt.close()
        last = (await all_events(rt))[-1]

        behind = SteppingClock(start=ahead.start - timedelta(minutes=2))
        again = await Runtime.host(store, "local", clock=behind, profiles=profile_set(shell_profile()))
        try:
            run = await wait_run(again, "w-1.r2")
            assert run.status is RunStatus.COMPLETED
            events = await all_events(again)
            times = [e.at for e in events]
            assert times == sorted(times), "an event is stamped before an earlier one"
            resumed = [e for e in events if e.run_id == "w-1.r2"]
            later = [e for e in resumed if e.position > last.position]
            assert [e.kind for e in later][-1] == "run.completed"
            assert all(e.at >= last.at for e in later)
        finally:
            await again.close()
    finally:
        await store.close()
