"""Command profiles through the runtime, with real programs (tests/engine/programs)."""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from engine.profiles import CommandProfile, parse_profiles
from engine.results import CreateWorkerRequest
from engine.runtime import Runtime
from store.models import RunStatus, WorkerRecord, WorkerStatus
from tests.engine.conftest import (
    HostFactory,
    agent_profile,
    all_events,
    eventually,
    pid_gone,
    profile_set,
    program,
    run_events,
    run_kinds,
    shell_profile,
    transcript_text,
    wait_run,
    wait_transcript,
)


async def worker_with(host: HostFactory, profile: CommandProfile) -> tuple[Runtime, WorkerRecord]:
    rt = await host(profiles=profile_set(profile))
    worker = await rt.create_worker(CreateWorkerRequest(profile=profile.name))
    return rt, worker


def payload_of(events: list[Any], kind: str) -> dict[str, Any]:
    found = [e.payload for e in events if e.kind == kind]
    assert len(found) == 1, f"expected one {kind}, got {[e.kind for e in events]}"
    return dict(found[0])


def said(entries: list[tuple[str, str]], role: str) -> str:
    return "\n".join(text for r, text in entries if r == role)


async def test_exit_zero_completes_with_stdout_as_answer_and_stderr_as_tool(
    host: HostFactory,
) -> None:
    profile = CommandProfile(
        name="stdio", command=program("stdio.py", "--flag"), env={"EXTRA": "yes"}, grace=0.3
    )
    rt, w = await worker_with(host, profile)
    ack = await rt.send_input(w.ref, "hello\nworld")
    run = await wait_run(rt, ack.run_id)
    assert run.status is RunStatus.COMPLETED
    events = await run_events(rt, ack.run_id)
    kinds = [e.kind for e in events]
    assert kinds[:4] == [
        "worker.input.accepted",
        "run.created",
        "run.planning",
        "exec.command.started",
    ]
    assert kinds[-3:] == ["exec.command.completed", "run.verifying", "run.completed"]
    started = payload_of(events, "exec.command.started")
    assert started["argv"] == profile.command and started["pid"] > 0
    assert started["mode"] == "per-input"
    done = payload_of(events, "exec.command.completed")
    assert done["exit_code"] == 0 and done["pid"] == started["pid"] and done["duration_s"] >= 0
    entries = await transcript_text(rt, w.ref)
    assert said(entries, "assistant") == (
        "arg: --flag\nout: hello\nout: world\nrun: w-1.r1 extra: yes"
    )
    assert said(entries, "tool") == "err: hello\nerr: world"
    assert run.result_text is not None and run.result_text.endswith("run: w-1.r1 extra: yes")
    assert pid_gone(started["pid"])


async def test_a_non_zero_exit_fails_the_run_with_the_code(host: HostFactory) -> None:
    rt, w = await worker_with(host, agent_profile())
    ack = await rt.send_input(w.ref, "exit 3")
    run = await wait_run(rt, ack.run_id)
    assert run.status is RunStatus.FAILED
    assert run.error is not None and "exited with code 3" in run.error
    assert "exiting with 3" in run.error  # the last stderr line says why
    events = await run_events(rt, ack.run_id)
    failed = payload_of(events, "exec.command.failed")
    assert failed["exit_code"] == 3 and failed["argv"] == agent_profile().command
    assert [e.kind for e in events][-1] == "run.failed"
    failure = next(e for e in events if e.kind == "run.failed")
    assert failure.payload["exit_code"] == 3
    # The worker is fine: the next input runs.
    nxt = await rt.send_input(w.ref, "all good")
    assert (await wait_run(rt, nxt.run_id)).status is RunStatus.COMPLETED


async def test_argument_input_mode(host: HostFactory) -> None:
    rt, w = await worker_with(host, agent_profile(input="argument"))
    ack = await rt.send_input(w.ref, "as an argument")
    assert (await wait_run(rt, ack.run_id)).status is RunStatus.COMPLETED
    started = payload_of(await run_events(rt, ack.run_id), "exec.command.started")
    assert started["argv"][-1] == "as an argument"
    assert "answer: as an argument" in said(await transcript_text(rt, w.ref), "assistant")


async def test_past_the_timeout_the_program_is_killed_and_the_run_fails(
    host: HostFactory,
) -> None:
    rt, w = await worker_with(host, agent_profile(timeout=0.4, grace=0.2))
    ack = await rt.send_input(w.ref, "hang")
    run = await wait_run(rt, ack.run_id)
    assert run.status is RunStatus.FAILED
    assert run.error == "timed out after 0.4s"
    events = await run_events(rt, ack.run_id)
    timeout = payload_of(events, "exec.command.timeout")
    assert timeout["timeout_s"] == 0.4 and timeout["ended"] in ("terminated", "killed")
    assert pid_gone(timeout["pid"])
    assert [e.kind for e in events][-2:] == ["exec.command.timeout", "run.failed"]


async def test_cancel_ends_the_whole_process_group(host: HostFactory) -> None:
    family = CommandProfile(name="family", command=program("family.py"), grace=0.3)
    rt, w = await worker_with(host, family)
    ack = await rt.send_input(w.ref, "go")
    await wait_transcript(rt, w.ref, "pids ")
    text = said(await transcript_text(rt, w.ref), "assistant")
    found = re.search(r"pids (\d+) (\d+)", text)
    assert found is not None
    parent, child = int(found.group(1)), int(found.group(2))
    assert not pid_gone(parent) and not pid_gone(child)
    await rt.cancel_worker(w.ref)
    # cancel_worker returns once the driver has cleaned up: the whole group is gone.
    assert pid_gone(parent) and pid_gone(child)
    try:
        os.killpg(parent, 0)
    except ProcessLookupError:
        pass
    else:
        raise AssertionError("the process group still exists")
    assert (await rt.store.run("local", ack.run_id)).status is RunStatus.CANCELLED  # type: ignore[union-attr]


async def test_a_program_that_cannot_start_fails_the_run_with_the_reason(
    host: HostFactory,
) -> None:
    missing = CommandProfile(name="missing", command=["/nonexistent/agentdeck-nothing", "-x"])
    rt, w = await worker_with(host, missing)
    ack = await rt.send_input(w.ref, "hello")
    run = await wait_run(rt, ack.run_id)
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert "cannot start /nonexistent/agentdeck-nothing" in run.error
    assert "No such file" in run.error
    events = await run_events(rt, ack.run_id)
    failed = payload_of(events, "exec.command.failed")
    assert "No such file" in failed["reason"]
    assert "exec.command.started" not in [e.kind for e in events]
    assert (await rt.worker_detail(w.ref)).status is WorkerStatus.RUNNING


async def test_a_flood_of_output_arrives_in_few_entries_and_none_is_lost(
    host: HostFactory,
) -> None:
    lines = 50_000
    flood = CommandProfile(name="flood", command=program("flood.py", str(lines)), timeout=30)
    rt, w = await worker_with(host, flood)
    ack = await rt.send_input(w.ref, "go")
    assert (await wait_run(rt, ack.run_id, timeout=20)).status is RunStatus.COMPLETED
    outputs = [e for e in await run_events(rt, ack.run_id) if e.kind == "worker.output"]
    assert 1 <= len(outputs) <= 100, f"{len(outputs)} entries for {lines} lines"
    text = "\n".join(e.payload["content"] for e in outputs)
    assert text.split("\n") == [f"line {i}" for i in range(lines)]
    assert "exec.output.truncated" not in {d.code for d in await rt.diagnostics()}


async def test_output_over_the_cap_is_cut_with_a_diagnostic(host: HostFactory) -> None:
    cap = 100_000
    flood = CommandProfile(
        name="flood", command=program("flood.py", "200000"), max_output_bytes=cap, timeout=30
    )
    rt, w = await worker_with(host, flood)
    ack = await rt.send_input(w.ref, "go")
    run = await wait_run(rt, ack.run_id, timeout=20)
    assert run.status is RunStatus.COMPLETED
    events = await run_events(rt, ack.run_id)
    outputs = [e.payload["content"] for e in events if e.kind == "worker.output"]
    recorded = sum(len(text.encode()) + 1 for text in outputs)
    assert recorded <= cap + len(outputs)
    assert outputs[0].startswith("line 0\nline 1\n")
    done = payload_of(events, "exec.command.completed")
    assert done["truncated_bytes"] > 0
    cut = [d for d in await rt.diagnostics() if d.code == "exec.output.truncated"]
    assert len(cut) == 1
    assert cut[0].worker_id == "w-1" and cut[0].severity.value == "warning"
    assert str(cap) in cut[0].message


async def test_invalid_utf8_is_replaced_never_fatal(host: HostFactory) -> None:
    bad = CommandProfile(name="bad", command=program("badutf8.py"))
    rt, w = await worker_with(host, bad)
    ack = await rt.send_input(w.ref, "go")
    assert (await wait_run(rt, ack.run_id)).status is RunStatus.COMPLETED
    entries = await transcript_text(rt, w.ref)
    assert said(entries, "assistant") == "café \ufffd\ufffd ok"
    assert said(entries, "tool") == "bad \ufffd( byte"


async def test_a_nul_byte_in_the_output_is_replaced_never_fatal(host: HostFactory) -> None:
    """PostgreSQL's text cannot hold a NUL: the run failed there, its output unrecorded."""
    rt, w = await worker_with(host, shell_profile())
    ack = await rt.send_input(w.ref, "printf 'a\\000b\\n'; printf 'c\\000d\\n' >&2")
    run = await wait_run(rt, ack.run_id)
    assert run.status is RunStatus.COMPLETED, run.error
    entries = await transcript_text(rt, w.ref)
    assert said(entries, "assistant") == "a\ufffdb"
    assert said(entries, "tool") == "c\ufffdd"


async def test_closing_the_runtime_ends_a_running_program(host: HostFactory) -> None:
    rt, w = await worker_with(host, agent_profile())
    ack = await rt.send_input(w.ref, "hang")
    await wait_transcript(rt, w.ref, "started hang")
    pid = payload_of(await run_events(rt, ack.run_id), "exec.command.started")["pid"]
    await rt.close()
    assert pid_gone(pid)
    run = await rt.store.run("local", ack.run_id)
    assert run is not None and (run.status, run.error) == (RunStatus.FAILED, "host closed")


# -- session mode ---------------------------------------------------------------------


def session_profile(command: list[str], **settings: Any) -> CommandProfile:
    settings.setdefault("grace", 0.3)
    settings.setdefault("timeout", 10)
    settings.setdefault("restart_backoff", 0.05)
    return CommandProfile(name="session", command=command, mode="session", **settings)


async def test_a_session_answers_inputs_from_one_process_and_restarts_when_it_dies(
    host: HostFactory,
) -> None:
    rt, w = await worker_with(host, session_profile(program("session.py")))
    first = await rt.send_input(w.ref, "one")
    second = await rt.send_input(w.ref, "two")
    for ack in (first, second):
        assert (await wait_run(rt, ack.run_id)).status is RunStatus.COMPLETED
    text = said(await transcript_text(rt, w.ref), "assistant")
    pids = set(re.findall(r"pid (\d+) answers", text))
    assert len(pids) == 1, text
    assert "thinking about one" in said(await transcript_text(rt, w.ref), "tool")
    first_kinds = await run_kinds(rt, first.run_id)
    assert "exec.command.started" in first_kinds
    assert "exec.command.started" not in await run_kinds(rt, second.run_id)
    assert first_kinds[-2:] == ["run.verifying", "run.completed"]

    dying = await rt.send_input(w.ref, "die")
    run = await wait_run(rt, dying.run_id)
    assert run.status is RunStatus.FAILED
    assert run.error is not None and "exited with code 7" in run.error

    async def restarted() -> list[str]:
        kinds = [e.kind for e in await all_events(rt) if e.kind.startswith("worker.restart")]
        return kinds if "worker.restarted" in kinds else []

    kinds = await eventually(restarted)
    assert kinds[-3:] == ["worker.restarting", "worker.restart.backoff", "worker.restarted"]
    after = await rt.send_input(w.ref, "three")
    assert (await wait_run(rt, after.run_id)).status is RunStatus.COMPLETED
    text = said(await transcript_text(rt, w.ref), "assistant")
    pids_after = set(re.findall(r"pid (\d+) answers three", text))
    assert pids_after and not pids_after & pids


async def test_a_session_that_keeps_dying_backs_off_then_gives_up(host: HostFactory) -> None:
    profile = session_profile(program("crash.py"), restart_max=2, restart_backoff=0.05)
    rt, w = await worker_with(host, profile)
    ack = await rt.send_input(w.ref, "hello")
    run = await wait_run(rt, ack.run_id)
    assert run.status is RunStatus.FAILED
    assert run.error is not None and "exited with code 3" in run.error

    async def gave_up() -> list[Any]:
        events = [e for e in await all_events(rt) if e.kind.startswith("worker.restart")]
        return events if any(e.kind == "worker.restart.failed" for e in events) else []

    events = await eventually(gave_up)
    kinds = [e.kind for e in events]
    assert kinds == [
        "worker.restarting",
        "worker.restart.backoff",
        "worker.restarted",
        "worker.restarting",
        "worker.restart.backoff",
        "worker.restarted",
        "worker.restart.failed",
    ]
    delays = [e.payload["delay_s"] for e in events if e.kind == "worker.restart.backoff"]
    assert delays == [0.05, 0.1], "exponential backoff"
    attempts = [e.payload["attempt"] for e in events if e.kind == "worker.restarting"]
    assert attempts == [1, 2]
    assert events[0].payload["exit_code"] == 3
    assert "cannot work today" in events[0].payload["stderr_tail"]
    # Given up: the next input fails at once with the reason instead of hanging.
    nxt = await rt.send_input(w.ref, "again")
    failed = await wait_run(rt, nxt.run_id)
    assert failed.status is RunStatus.FAILED and "gave up" in (failed.error or "")


async def test_profiles_from_toml_text_run_through_the_runtime(host: HostFactory) -> None:
    agent = agent_profile().command
    config = parse_profiles(
        f"""
        [profiles.coder]
        command = {agent!r}
        timeout = 5
        env = {{ GREETING = "hi" }}
        """.replace("'", '"')
    )
    rt = await host(profiles=config)
    w = await rt.create_worker(CreateWorkerRequest(profile="coder"))
    ack = await rt.send_input(w.ref, "fix the bug")
    assert (await wait_run(rt, ack.run_id)).status is RunStatus.COMPLETED
    assert "answer: fix the bug" in said(await transcript_text(rt, w.ref), "assistant")


async def test_the_working_folder_and_the_payload_of_a_failure(
    host: HostFactory, tmp_path: Path
) -> None:
    where = tmp_path / "work"
    where.mkdir()
    script = "import os, sys; print(os.getcwd()); sys.exit(int(sys.stdin.read()))"
    profile = CommandProfile(name="pwd", command=[sys.executable, "-c", script], cwd=str(where))
    rt, w = await worker_with(host, profile)
    ack = await rt.send_input(w.ref, "5")
    run = await wait_run(rt, ack.run_id)
    assert run.status is RunStatus.FAILED and "exited with code 5" in (run.error or "")
    assert said(await transcript_text(rt, w.ref), "assistant") == str(where)
    events = await run_events(rt, ack.run_id)
    assert payload_of(events, "exec.command.started")["cwd"] == str(where)
    failed = payload_of(events, "exec.command.failed")
    assert failed["exit_code"] == 5 and failed["duration_s"] >= 0 and failed["pid"] > 0
    assert failed["argv"] == profile.command


async def test_a_flooding_program_does_not_stall_other_workers(host: HostFactory) -> None:
    flood = CommandProfile(name="flood", command=program("firehose.py", "1.5"), timeout=30)
    rt = await host(profiles=profile_set(flood))
    noisy = await rt.create_worker(CreateWorkerRequest(profile="flood"))
    quiet = await rt.create_worker(CreateWorkerRequest())
    flooding = await rt.send_input(noisy.ref, "go")
    await wait_run(rt, flooding.run_id, RunStatus.EXECUTING)
    round_trips = []
    while (await rt.store.run("local", flooding.run_id)).status is RunStatus.EXECUTING:  # type: ignore[union-attr]
        began = time.monotonic()
        ack = await rt.send_input(quiet.ref, "ping")
        await wait_run(rt, ack.run_id)
        round_trips.append(time.monotonic() - began)
    run = await wait_run(rt, flooding.run_id, timeout=30)
    assert run.status is RunStatus.COMPLETED
    assert len(round_trips) >= 3
    assert max(round_trips) < 0.5, f"echo round trips during the flood: {round_trips}"
    outputs = [e for e in await run_events(rt, flooding.run_id) if e.kind == "worker.output"]
    assert len(outputs) <= 40  # capped at 1 MiB, in chunks of up to 64 KiB
    assert "exec.output.truncated" in {d.code for d in await rt.diagnostics()}
