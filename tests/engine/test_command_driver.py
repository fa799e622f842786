"""CommandDriver against real programs (tests/engine/programs), through a recording context."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from engine.drivers.base import RunFailed, RunInput
from engine.drivers.command import CommandDriver
from engine.profiles import CommandProfile
from store import catalog
from store.catalog import Payload

PROGRAMS = Path(__file__).parent / "programs"


def program(name: str, *args: str) -> list[str]:
    return [sys.executable, str(PROGRAMS / name), *args]


class FakeWorker:
    """The runtime's side of a worker: records what the driver emits."""

    def __init__(self) -> None:
        self.worker_id = "w-1"
        self.process_env = {"AGENTDECK_HOST_MARK": "test-mark"}
        self.events: list[tuple[str, str, dict[str, Any]]] = []
        self.diagnostics: list[tuple[str, str, str]] = []

    async def event(self, kind: str, message: str, payload: Payload) -> None:
        # As the runtime would: the catalog refuses a payload that does not fit its kind.
        built = catalog.event(kind, payload, event_id=uuid4(), at=datetime.now(UTC))
        self.events.append((kind, message, built.payload))

    async def diagnostic(self, severity: str, code: str, message: str) -> None:
        self.diagnostics.append((severity, code, message))

    def kinds(self) -> list[str]:
        return [kind for kind, _, _ in self.events]


class FakeRun:
    """The runtime's side of a run: records phases, outputs, events and diagnostics."""

    def __init__(self, content: str, run_id: str = "r-1") -> None:
        self.input = RunInput(run_id=run_id, worker_id="w-1", role="user", content=content)
        self.phases: list[str] = []
        self.outputs: list[tuple[str, str]] = []
        self.events: list[tuple[str, str, dict[str, Any]]] = []
        self.diagnostics: list[tuple[str, str, str]] = []

    async def phase(self, phase: str) -> None:
        self.phases.append(phase)

    async def output(self, role: str, content: str) -> None:
        self.outputs.append((role, content))

    async def event(self, kind: str, message: str, payload: Payload) -> None:
        # As the runtime would: the catalog refuses a payload that does not fit its kind.
        built = catalog.event(kind, payload, event_id=uuid4(), at=datetime.now(UTC))
        self.events.append((kind, message, built.payload))

    async def diagnostic(self, severity: str, code: str, message: str) -> None:
        self.diagnostics.append((severity, code, message))

    def text(self, role: str) -> str:
        return "\n".join(content for r, content in self.outputs if r == role)

    def kinds(self) -> list[str]:
        return [kind for kind, _, _ in self.events]

    def payload(self, kind: str) -> dict[str, Any]:
        return next(p for k, _, p in self.events if k == kind)


def profile(command: list[str], **settings: Any) -> CommandProfile:
    settings.setdefault("grace", 0.3)
    settings.setdefault("timeout", 10)
    return CommandProfile(name="tester", command=command, **settings)


def driver(command: list[str], **settings: Any) -> tuple[CommandDriver, FakeWorker]:
    worker = FakeWorker()
    return CommandDriver(profile(command, **settings), worker), worker


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


async def eventually(check: Any, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def output_appears(ctx: FakeRun, needle: str, timeout: float = 5.0) -> str:
    await eventually(lambda: any(needle in content for _, content in ctx.outputs), timeout)
    return next(content for _, content in ctx.outputs if needle in content)


# -- per-input mode ------------------------------------------------------------------


async def test_exit_zero_streams_stdout_as_assistant_and_stderr_as_tool() -> None:
    drv, _ = driver(program("stdio.py"), env={"EXTRA": "hello"})
    ctx = FakeRun("first line\nsecond line")
    result = await drv.run(ctx)

    assert ctx.kinds() == ["exec.command.started", "exec.command.completed"]
    started = ctx.payload("exec.command.started")
    assert started["argv"] == program("stdio.py")
    assert isinstance(started["pid"], int) and started["cwd"]
    assert ctx.events[0][1] == f"started tester (pid {started['pid']})"
    assert ctx.phases == ["executing"]
    assert ctx.text("assistant").splitlines() == [
        "out: first line",
        "out: second line",
        "run: r-1 extra: hello",
    ]
    assert ctx.text("tool").splitlines() == ["err: first line", "err: second line"]
    # Few lines arriving together are one entry per stream, not one per line.
    assert len(ctx.outputs) <= 4
    completed = ctx.payload("exec.command.completed")
    assert completed["exit_code"] == 0 and completed["pid"] == started["pid"]
    assert completed["duration_s"] >= 0
    assert "run: r-1" in result


async def test_non_zero_exit_fails_the_run_with_the_code() -> None:
    drv, _ = driver(program("stdio.py"), env={"EXIT_CODE": "3"})
    ctx = FakeRun("x")
    with pytest.raises(RunFailed) as failed:
        await drv.run(ctx)
    assert failed.value.reason.startswith("exited with code 3")
    assert "something went wrong" in failed.value.reason
    assert ctx.kinds() == ["exec.command.started", "exec.command.failed"]
    assert ctx.payload("exec.command.failed")["exit_code"] == 3
    assert "out: x" in ctx.text("assistant")


async def test_killed_by_a_signal_names_the_signal() -> None:
    drv, _ = driver([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), 9)"])
    ctx = FakeRun("x")
    with pytest.raises(RunFailed, match="killed by SIGKILL"):
        await drv.run(ctx)
    assert ctx.payload("exec.command.failed")["signal"] == "SIGKILL"


async def test_argument_mode_passes_the_input_as_the_last_argument() -> None:
    drv, _ = driver(program("stdio.py", "--flag"), input="argument")
    ctx = FakeRun("the input, with spaces")
    await drv.run(ctx)
    lines = ctx.text("assistant").splitlines()
    assert lines[:2] == ["arg: --flag", "arg: the input, with spaces"]
    assert not any(line.startswith("out:") for line in lines)
    assert ctx.payload("exec.command.started")["argv"][-1] == "the input, with spaces"


async def test_timeout_kills_the_program_and_its_children() -> None:
    drv, _ = driver(program("family.py"), timeout=0.5)
    ctx = FakeRun("x")
    started = time.monotonic()
    with pytest.raises(RunFailed, match=r"timed out after 0\.5s"):
        await drv.run(ctx)
    assert time.monotonic() - started < 3
    assert ctx.kinds() == ["exec.command.started", "exec.command.timeout"]
    pid, grandchild = (int(p) for p in ctx.text("assistant").split()[1:3])
    assert ctx.payload("exec.command.timeout")["timeout_s"] == 0.5
    assert not pid_exists(pid) and not pid_exists(grandchild) and not group_exists(pid)


async def test_cancel_ends_the_whole_process_group() -> None:
    drv, _ = driver(program("family.py"))
    ctx = FakeRun("x")
    task = asyncio.create_task(drv.run(ctx))
    line = await output_appears(ctx, "pids ")
    pid, grandchild = (int(p) for p in line.split()[1:3])
    assert pid_exists(pid) and pid_exists(grandchild)
    assert os.getpgid(grandchild) == pid  # the program leads its own group

    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 1.0  # SIGTERM was enough: no wait for the grace
    await eventually(lambda: not pid_exists(pid) and not pid_exists(grandchild), 2.0)
    assert not group_exists(pid)


async def test_a_program_ignoring_sigterm_is_killed_after_the_grace() -> None:
    drv, _ = driver(program("stubborn.py"), grace=0.3)
    ctx = FakeRun("x")
    task = asyncio.create_task(drv.run(ctx))
    await output_appears(ctx, "ignoring SIGTERM")
    pid = ctx.payload("exec.command.started")["pid"]
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    took = time.monotonic() - started
    assert 0.25 <= took < 2.0
    await eventually(lambda: not pid_exists(pid), 2.0)
    assert not group_exists(pid)


async def test_a_missing_program_fails_with_the_reason() -> None:
    drv, _ = driver(["/nonexistent/agent-program", "--x"])
    ctx = FakeRun("x")
    with pytest.raises(RunFailed) as failed:
        await drv.run(ctx)
    assert failed.value.reason.startswith("cannot start /nonexistent/agent-program:")
    assert "No such file" in failed.value.reason
    assert ctx.kinds() == ["exec.command.failed"]
    assert "No such file" in ctx.payload("exec.command.failed")["reason"]


async def test_a_missing_working_folder_fails_with_the_reason(tmp_path: Path) -> None:
    drv, _ = driver(program("stdio.py"), cwd=str(tmp_path / "nowhere"))
    ctx = FakeRun("x")
    with pytest.raises(RunFailed, match="working folder does not exist"):
        await drv.run(ctx)
    assert ctx.kinds() == ["exec.command.failed"]


async def test_a_program_that_is_not_executable_fails_with_the_reason(tmp_path: Path) -> None:
    script = tmp_path / "agent.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    drv, _ = driver([str(script)])
    with pytest.raises(RunFailed, match=r"cannot start .*Permission denied"):
        await drv.run(FakeRun("x"))


async def test_a_flood_of_lines_arrives_as_few_chunks_and_none_is_lost() -> None:
    lines = 100_000
    drv, _ = driver(program("flood.py", str(lines)), max_output_bytes=10 * 1024 * 1024)
    ctx = FakeRun("x")
    started = time.monotonic()
    result = await drv.run(ctx)
    assert time.monotonic() - started < 5
    assert len(ctx.outputs) < lines / 500
    got = ctx.text("assistant").split("\n")
    assert got == [f"line {i}" for i in range(lines)]
    assert result.endswith(f"line {lines - 1}")
    assert len(result) <= 2000
    assert not ctx.diagnostics


async def test_output_over_the_cap_is_cut_with_one_diagnostic() -> None:
    lines = 200_000  # about 1.3 MB
    drv, _ = driver(program("flood.py", str(lines)), max_output_bytes=100_000)
    ctx = FakeRun("x")
    await drv.run(ctx)  # the program is drained, so it finishes and exits 0
    recorded = ctx.text("assistant")
    assert 90_000 <= len(recorded) <= 100_000
    assert recorded.startswith("line 0\nline 1\n")
    assert len(ctx.outputs) < 20
    assert [(s, c) for s, c, _ in ctx.diagnostics] == [("warning", "exec.output.truncated")]
    completed = ctx.payload("exec.command.completed")
    total = sum(len(f"line {i}\n") for i in range(lines))
    assert completed["output_bytes"] == total
    assert completed["truncated_bytes"] == total - 100_000
    assert str(total - 100_000) in ctx.diagnostics[0][2]


async def test_invalid_utf8_is_replaced_not_fatal() -> None:
    drv, _ = driver(program("badutf8.py"))
    ctx = FakeRun("x")
    await drv.run(ctx)
    assert ctx.text("assistant") == "café \ufffd\ufffd ok"
    assert ctx.text("tool") == "bad \ufffd( byte"


async def test_close_ends_a_run_still_going() -> None:
    drv, _ = driver(program("stubborn.py"), grace=0.2)
    ctx = FakeRun("x")
    task = asyncio.create_task(drv.run(ctx))
    await output_appears(ctx, "ignoring SIGTERM")
    pid = ctx.payload("exec.command.started")["pid"]
    await drv.close()
    await eventually(lambda: not pid_exists(pid), 2.0)
    with pytest.raises(RunFailed, match="killed by SIGKILL"):
        await task


# -- session mode ----------------------------------------------------------------------


def session_driver(command: list[str], **settings: Any) -> tuple[CommandDriver, FakeWorker]:
    settings.setdefault("restart_backoff", 0.05)
    return driver(command, mode="session", **settings)


async def test_session_answers_inputs_in_order_from_one_process() -> None:
    drv, worker = session_driver(program("session.py"))
    try:
        first, second = FakeRun("one", "r-1"), FakeRun("two", "r-2")
        await drv.run(first)
        result2 = await drv.run(second)
        pid = first.payload("exec.command.started")["pid"]
        assert first.kinds() == [
            "exec.command.started",
            "exec.session.input",
            "exec.session.answered",
        ]
        assert second.kinds() == ["exec.session.input", "exec.session.answered"]
        assert first.text("assistant") == f"pid {pid} answers one\nsecond line for one"
        assert second.text("assistant") == f"pid {pid} answers two\nsecond line for two"
        assert first.text("tool") == "thinking about one"
        assert second.text("tool") == "thinking about two"
        assert result2 == f"pid {pid} answers two\nsecond line for two"
        assert first.phases == second.phases == ["executing"]
        assert not worker.events
    finally:
        await drv.close()
    await eventually(lambda: not pid_exists(pid), 2.0)


async def test_session_with_a_custom_turn_end() -> None:
    drv, _ = session_driver(program("session.py"), turn_end="DONE", env={"TURN_END": "DONE"})
    try:
        ctx = FakeRun("hi")
        await drv.run(ctx)
        assert ctx.text("assistant").endswith("second line for hi")
    finally:
        await drv.close()


async def test_session_that_dies_mid_run_fails_it_and_is_restarted() -> None:
    drv, worker = session_driver(program("session.py"))
    try:
        first = FakeRun("one", "r-1")
        await drv.run(first)
        old_pid = first.payload("exec.command.started")["pid"]

        dying = FakeRun("die", "r-2")
        with pytest.raises(RunFailed, match="session process exited with code 7"):
            await drv.run(dying)
        assert "dying on request" in dying.text("tool")
        assert dying.payload("exec.command.failed")["exit_code"] == 7

        third = FakeRun("three", "r-3")
        await drv.run(third)  # waits for the restart
        assert worker.kinds() == ["worker.restarting", "worker.restart.backoff", "worker.restarted"]
        restarting = worker.events[0][2]
        assert restarting["attempt"] == 1 and restarting["delay_s"] == 0.05
        new_pid = worker.events[2][2]["pid"]
        assert new_pid != old_pid
        assert third.text("assistant").startswith(f"pid {new_pid} answers three")
    finally:
        await drv.close()


async def test_session_restarts_with_backoff_then_gives_up() -> None:
    drv, worker = session_driver(program("crash.py"), restart_max=3, restart_backoff=0.02)
    try:
        ctx = FakeRun("hello")
        with pytest.raises(RunFailed, match="session process exited with code 3"):
            await drv.run(ctx)
        assert "cannot work today" in ctx.text("tool")
        await eventually(lambda: "worker.restart.failed" in worker.kinds(), 5.0)
        kinds = worker.kinds()
        assert kinds.count("worker.restarting") == 3
        assert kinds.count("worker.restarted") == 3
        assert kinds[-1] == "worker.restart.failed"
        delays = [p["delay_s"] for k, _, p in worker.events if k == "worker.restart.backoff"]
        assert delays == [0.02, 0.04, 0.08]
        attempts = [p["attempt"] for k, _, p in worker.events if k == "worker.restarting"]
        assert attempts == [1, 2, 3]

        later = FakeRun("again", "r-2")
        started = time.monotonic()
        with pytest.raises(RunFailed, match="gave up after 3 restarts"):
            await drv.run(later)
        assert time.monotonic() - started < 0.5
        assert not later.events
    finally:
        await drv.close()


async def test_a_session_that_stayed_up_long_enough_starts_its_count_again() -> None:
    # With restart_reset_after = 0 every death follows a "long enough" life: no giving up.
    drv, worker = session_driver(
        program("crash.py"), restart_max=1, restart_backoff=0.01, restart_reset_after=0
    )
    try:
        with pytest.raises(RunFailed):
            await drv.run(FakeRun("hello"))
        await eventually(lambda: worker.kinds().count("worker.restarted") >= 3, 5.0)
        assert "worker.restart.failed" not in worker.kinds()
        attempts = {p["attempt"] for k, _, p in worker.events if k == "worker.restarting"}
        assert attempts == {1}
    finally:
        await drv.close()
    count = len(worker.events)
    await asyncio.sleep(0.1)
    assert len(worker.events) == count  # closed: no more restarts


async def test_output_is_forwarded_while_the_program_runs() -> None:
    slow = [
        sys.executable,
        "-c",
        "import time\nprint('early', flush=True)\ntime.sleep(0.5)\nprint('late', flush=True)",
    ]
    drv, _ = driver(slow)
    ctx = FakeRun("x")
    task = asyncio.create_task(drv.run(ctx))
    await output_appears(ctx, "early")
    assert not task.done()
    assert await task == "early\nlate"
    assert ctx.outputs == [("assistant", "early"), ("assistant", "late")]


async def test_session_timeout_kills_the_process_and_the_next_run_starts_fresh() -> None:
    silent = [sys.executable, "-c", "import sys, time\nfor _ in sys.stdin: time.sleep(60)"]
    drv, worker = session_driver(silent, timeout=0.3)
    try:
        ctx = FakeRun("x")
        with pytest.raises(RunFailed, match=r"timed out after 0\.3s"):
            await drv.run(ctx)
        pid = ctx.payload("exec.command.started")["pid"]
        assert "exec.command.timeout" in ctx.kinds()
        await eventually(lambda: not pid_exists(pid), 2.0)
        again = FakeRun("y", "r-2")
        with pytest.raises(RunFailed, match="timed out"):
            await drv.run(again)
        assert again.payload("exec.command.started")["pid"] != pid
        assert not worker.events  # ended on purpose: no crash, no backoff
    finally:
        await drv.close()


async def test_cancelling_a_session_run_ends_the_session_group() -> None:
    family = [
        sys.executable,
        "-c",
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "for _ in sys.stdin:\n"
        "    print('child', child.pid, flush=True)\n"
        "    time.sleep(60)\n",
    ]
    drv, _ = session_driver(family)
    try:
        ctx = FakeRun("x")
        task = asyncio.create_task(drv.run(ctx))
        line = await output_appears(ctx, "child ")
        grandchild = int(line.split()[1])
        pid = ctx.payload("exec.command.started")["pid"]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await eventually(lambda: not pid_exists(pid) and not pid_exists(grandchild), 2.0)
        assert not group_exists(pid)
    finally:
        await drv.close()


async def test_close_terminates_the_session_process() -> None:
    drv, worker = session_driver(program("session.py"))
    ctx = FakeRun("one")
    await drv.run(ctx)
    pid = ctx.payload("exec.command.started")["pid"]
    await drv.close()
    await eventually(lambda: not pid_exists(pid), 2.0)
    assert not worker.events
    with pytest.raises(RunFailed, match="closed"):
        await drv.run(FakeRun("two"))


async def test_session_program_that_cannot_start_fails_the_run() -> None:
    drv, _ = session_driver(["/nonexistent/session-agent"])
    ctx = FakeRun("x")
    with pytest.raises(RunFailed, match="cannot start /nonexistent/session-agent"):
        await drv.run(ctx)
    assert ctx.kinds() == ["exec.command.failed"]
    await drv.close()
