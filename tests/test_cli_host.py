"""`agentdeck host` (issue 9 item 3): a headless host, stopped by a service manager's signals.

Real `agentdeck host` processes, real `sh -c` workers, real signals; the
database is prepared by an in-process host that closes with work queued.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.results import CreateWorkerRequest
from engine.runtime import Runtime
from store.event_store import EventStore
from store.filters import parse_filter
from store.models import AssistantIntent, RunStatus, WorkerRef
from tests.store.support import AGENTDECK, child_env, wait_for_line

CONFIG = 'default_profile = "sh"\n[profiles.sh]\ncommand = ["sh", "-c"]\ninput = "argument"\ngrace = 0.3\n'
MARK = "agentdeck-host-test"


async def queue_work(db: Path, *inputs: str) -> WorkerRef:
    """A worker with `inputs` queued: the first starts and is failed by closing, the rest wait."""
    (db.parent / "agentdeck.toml").write_text(CONFIG)
    store = await EventStore.open(db, watch=False)
    runtime = await Runtime.host(store, "local", config_path=db.parent / "agentdeck.toml")
    try:
        worker = await runtime.create_worker(CreateWorkerRequest(intent=AssistantIntent()))
        for text in inputs:
            await runtime.send_input(worker.ref, text)
        while not runtime.work_in_progress()[0]:
            await asyncio.sleep(0.02)
        return worker.ref
    finally:
        await runtime.close()
        await store.close()


async def run_statuses(db: Path, ref: WorkerRef) -> list[RunStatus]:
    store = await EventStore.open(db, read_only=True, watch=False)
    try:
        return [r.status for r in reversed(await store.runs(ref.runtime_id, ref.worker_id, 100))]
    finally:
        await store.close()


async def lines_of(db: Path, expr: str) -> list[str]:
    store = await EventStore.open(db, read_only=True, watch=False)
    try:
        batch = await store.read_after(0, 1000, parse_filter(expr))
        return [event.message for event in batch.events]
    finally:
        await store.close()


def start_host(db: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(AGENTDECK), "--db", str(db), "host"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=child_env(),
    )


def marked_processes() -> list[int]:
    """Pids of the test's `sleep` programs still alive (their command line carries MARK)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if MARK.encode() in cmdline and b"sleep" in cmdline:
            found.append(int(entry.name))
    return found


def until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_host_resumes_queued_work_and_a_stop_signal_ends_it_cleanly(
    tmp_path: Path, signum: signal.Signals
) -> None:
    """Queued runs resume under the host; SIGTERM/SIGINT: exit 0, the running run fails
    "host closed" with its program ended, and what is still queued stays queued."""
    db = tmp_path / "a.db"
    sleeper = f"sleep 30 # {MARK}"
    ref = asyncio.run(queue_work(db, sleeper, "echo resumed", sleeper, "echo later"))
    host = start_host(db)
    try:
        assert "hosting runtime local" in wait_for_line(host, "agentdeck: host local: hosting")
        until(lambda: asyncio.run(run_statuses(db, ref))[2] is RunStatus.EXECUTING)
        assert marked_processes(), "the resumed sleep should be running"
        host.send_signal(signum)
        output, _ = host.communicate(timeout=20)
    finally:
        if host.poll() is None:
            host.kill()
    assert host.returncode == 0, output
    assert "Traceback" not in output
    assert f"{signum.name} received; stopping (1 run running, 1 queued)" in output
    assert '1 run failed "host closed", 1 run queued kept for the next host' in output
    assert asyncio.run(run_statuses(db, ref)) == [
        RunStatus.FAILED, RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CREATED,
    ]
    assert "assistant: resumed" in asyncio.run(lines_of(db, "kind:worker.output"))
    assert marked_processes() == []


def test_a_hang_up_stops_the_host_with_129(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    asyncio.run(queue_work(db, f"sleep 30 # {MARK}"))
    host = start_host(db)
    wait_for_line(host, "agentdeck: host local: hosting")
    host.send_signal(signal.SIGHUP)
    output, _ = host.communicate(timeout=20)
    assert host.returncode == 129, output
    assert "SIGHUP received" in output


def test_a_host_started_on_a_dead_hosts_runtime_takes_over_and_ends_its_leftovers(
    tmp_path: Path,
) -> None:
    """Item 5 for `agentdeck host`: the first host is SIGKILLed mid-run; the second takes
    over at once (same machine, pid gone), fails that run "host exited", ends its
    program, and runs what was queued."""
    db = tmp_path / "a.db"
    sleeper = f"sleep 30 # {MARK}"
    ref = asyncio.run(queue_work(db, sleeper, sleeper, "echo after the takeover"))
    first = start_host(db)
    try:
        wait_for_line(first, "agentdeck: host local: hosting")
        until(lambda: asyncio.run(run_statuses(db, ref))[1] is RunStatus.EXECUTING)
        assert marked_processes()
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    second = start_host(db)
    try:
        wait_for_line(second, "agentdeck: host local: hosting")
        took_over = wait_for_line(second, "agentdeck: host local: diagnostic.raised")
        assert "ended 1 process" in took_over or "ended 2 processes" in took_over, took_over
        until(lambda: asyncio.run(run_statuses(db, ref))[-1] is RunStatus.COMPLETED)
        assert marked_processes() == []
        second.send_signal(signal.SIGTERM)
        output, _ = second.communicate(timeout=20)
    finally:
        if second.poll() is None:
            second.kill()
    assert second.returncode == 0, output
    statuses = asyncio.run(run_statuses(db, ref))
    assert statuses[:2] == [RunStatus.FAILED, RunStatus.FAILED]  # "host closed", "host exited"
    failures = asyncio.run(lines_of(db, "kind:run.failed"))
    assert any("host exited" in line for line in failures), failures


def test_a_second_host_of_a_live_runtime_is_refused_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    asyncio.run(queue_work(db, f"sleep 30 # {MARK}"))
    host = start_host(db)
    try:
        wait_for_line(host, "agentdeck: host local: hosting")
        other = subprocess.run(
            [str(AGENTDECK), "--db", str(db), "host"], capture_output=True, text=True,
            env=child_env(), timeout=30, check=False,
        )
        assert other.returncode == 1
        lines = other.stderr.splitlines()
        assert len(lines) == 1 and f"hosted by pid {host.pid}" in lines[0], other.stderr
    finally:
        host.send_signal(signal.SIGTERM)
        host.communicate(timeout=20)
    assert host.returncode == 0


async def operate_through_inbox(db: Path, ref: WorkerRef) -> tuple[str, str]:
    """From this process (not the host): one input that runs, one the host refuses."""
    from engine.errors import WorkerNotFound
    from engine.remote import CommandClient, this_issuer

    store = await EventStore.open(db)
    client = CommandClient(store, issuer=this_issuer("console-cli-test"))
    try:
        ack = await client.runtime("local").send_input(ref, "echo through the inbox")
        missing = WorkerRef(runtime_id="local", worker_id="w-9")
        with pytest.raises(WorkerNotFound) as refused:
            await client.runtime("local").stop_worker(missing)
        return ack.run_id, str(refused.value)
    finally:
        await client.close()
        await store.close()


def test_the_host_runs_commands_other_processes_issue_and_logs_who_asked(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    ref = asyncio.run(queue_work(db, f"sleep 30 # {MARK}"))
    host = start_host(db)
    try:
        wait_for_line(host, "agentdeck: host local: hosting")
        run_id, refusal = asyncio.run(operate_through_inbox(db, ref))
        asked = wait_for_line(host, "agentdeck: host local: command.issued")
        assert "console-cli-test (pid" in asked and "input to w-1" in asked, asked
        done = wait_for_line(host, "agentdeck: host local: command.completed")
        assert f"run {run_id} queued for w-1" in done, done
        failed = wait_for_line(host, "agentdeck: host local: command.failed")
        assert refusal in failed, failed
        until(lambda: asyncio.run(run_statuses(db, ref))[-1] is RunStatus.COMPLETED)
    finally:
        host.send_signal(signal.SIGTERM)
        output, _ = host.communicate(timeout=20)
    assert host.returncode == 0, output
