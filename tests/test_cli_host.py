"""`agentdeck host` (issue 9 item 3): a headless host, stopped by a service manager's signals.

Real `agentdeck host` processes, real `sh -c` workers, real signals; the
database is prepared by an in-process host that closes with work queued.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
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


def start_host(db: Path, *more: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`agentdeck host` on `db` with the arguments `more` (default: runtime local)."""
    return subprocess.Popen(
        [str(AGENTDECK), "--db", str(db), "host", *more],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**child_env(), **(env or {})},
    )


def marked_processes(mark: str = MARK) -> list[int]:
    """Pids of the test's `sleep` programs still alive (their command line carries `mark`)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if mark.encode() in cmdline and b"sleep" in cmdline:
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


# -- issue 10: several runtimes, standing by, the host name presented ----------------------


def test_a_standby_on_the_same_machine_takes_over_when_the_host_is_killed(tmp_path: Path) -> None:
    """`--standby`: one line naming the holder, then the take-over the moment its pid is
    gone (same host name), its leftovers ended, its queue run here."""
    db = tmp_path / "a.db"
    mine = f"{MARK}-{os.getpid()}-{tmp_path.name}"  # other sessions may run this file too
    sleeper = f"sleep 30 # {mine}"
    ref = asyncio.run(queue_work(db, sleeper, sleeper, "echo after the takeover"))
    first = start_host(db)
    wait_for_line(first, "agentdeck: host local: hosting")
    standby = start_host(db, "--standby")
    try:
        line = wait_for_line(standby, "agentdeck: host local: standing by")
        assert f"standing by for runtime local, hosted by pid {first.pid} on " in line, line
        until(lambda: asyncio.run(run_statuses(db, ref))[1] is RunStatus.EXECUTING)
        assert marked_processes(mine)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        took = wait_for_line(standby, "agentdeck: host local: taking over from pid")
        assert f"from pid {first.pid} on " in took and "that process is gone" in took, took
        wait_for_line(standby, "agentdeck: host local: hosting runtime local")
        until(lambda: asyncio.run(run_statuses(db, ref))[-1] is RunStatus.COMPLETED)
        # The dead host's program was ended by the standby (same machine), not left behind.
        until(lambda: marked_processes(mine) == [], timeout=10)
        standby.send_signal(signal.SIGTERM)
        output, _ = standby.communicate(timeout=20)
    finally:
        for process in (first, standby):
            if process.poll() is None:
                process.kill()
                process.communicate(timeout=10)
    assert standby.returncode == 0, output
    assert "Traceback" not in output


def test_several_runtimes_are_hosted_and_all_stop_cleanly(tmp_path: Path) -> None:
    """`--runtime` more than once: each is hosted (or stood by for); a standby takes
    over what a host that stopped cleanly let go; SIGTERM/SIGINT stop them all."""
    db = tmp_path / "a.db"
    (tmp_path / "agentdeck.toml").write_text(CONFIG)
    host = start_host(db, "--runtime", "alpha", "--runtime", "beta", "--runtime", "alpha")
    other: subprocess.Popen[str] | None = None
    try:
        wait_for_line(host, "agentdeck: host alpha: hosting runtime alpha")
        wait_for_line(host, "agentdeck: host beta: hosting runtime beta")
        other = start_host(db, "--runtime", "beta", "--runtime", "alpha")
        wait_for_line(other, "agentdeck: host beta: standing by for runtime beta")
        wait_for_line(other, "agentdeck: host alpha: standing by for runtime alpha")
        host.send_signal(signal.SIGTERM)
        output, _ = host.communicate(timeout=20)
        took = wait_for_line(other, "agentdeck: host beta: taking over")
        assert took.endswith(f"pid {host.pid} on {socket.gethostname()} stopped hosting it"), took
        wait_for_line(other, "agentdeck: host beta: hosting runtime beta")
        wait_for_line(other, "agentdeck: host alpha: hosting runtime alpha", timeout=5)
        other.send_signal(signal.SIGINT)
        said, _ = other.communicate(timeout=20)
    finally:
        for process in (host, other):
            if process is not None and process.poll() is None:
                process.kill()
                process.communicate(timeout=10)
    assert host.returncode == 0, output
    for name in ("alpha", "beta"):
        assert f"host {name}: SIGTERM received; stopping (0 runs running, 0 queued)" in output
        assert f'host {name}: stopped; 0 runs failed "host closed"' in output
        assert f"host {name}: SIGINT received; stopping" in said, said
    assert other.returncode == 0, said
    assert "Traceback" not in output + said


@pytest.mark.parametrize("bad", ["box a ", "box\tb"])
def test_an_unusable_host_name_is_refused_in_one_line(tmp_path: Path, bad: str) -> None:
    refused = subprocess.run(
        [str(AGENTDECK), "--db", str(tmp_path / "a.db"), "host"], capture_output=True,
        text=True, env={**child_env(), "AGENTDECK_HOST_NAME": bad}, timeout=30, check=False,
    )
    assert refused.returncode == 2
    lines = refused.stderr.splitlines()
    assert len(lines) == 1 and "AGENTDECK_HOST_NAME=" in lines[0], refused.stderr
    assert not (tmp_path / "a.db").exists()  # refused before the database was opened


def test_the_host_name_presented_is_the_one_recorded(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    host = start_host(db, "--runtime", "alpha", env={"AGENTDECK_HOST_NAME": "box-a"})
    try:
        wait_for_line(host, "agentdeck: host alpha: hosting")
        refused = subprocess.run(
            [str(AGENTDECK), "--db", str(db), "host", "--runtime", "alpha"],
            capture_output=True, text=True, env=child_env(), timeout=30, check=False,
        )
        assert refused.returncode == 1
        assert f"hosted by pid {host.pid} on box-a" in refused.stderr, refused.stderr
    finally:
        host.send_signal(signal.SIGTERM)
        host.communicate(timeout=20)
    assert host.returncode == 0

