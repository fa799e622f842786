"""Issue 7 item 2: what a SIGKILLed host left running is ended by the host that takes over.

A real host process (programs/host_child.py) runs real `sh` programs and a
session process, is killed with SIGKILL, and this process takes the runtime
over on the same database file.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from engine.leftovers import MARK_VAR, end_leftovers, find_leftovers, host_mark
from engine.profiles import CommandProfile
from engine.runtime import Runtime
from store.models import RunStatus
from store.open import open_store
from tests.engine.conftest import PROGRAMS, kill_quietly, pid_gone, profile_set, run_events


async def start_family_host(db_address: str | Path) -> tuple[asyncio.subprocess.Process, dict[str, Any]]:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(PROGRAMS / "host_child.py"),
        str(db_address),
        "local",
        "family",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None and child.stderr is not None
    line = await asyncio.wait_for(child.stdout.readline(), 30)
    assert line, (await child.stderr.read()).decode()
    ready: dict[str, Any] = json.loads(line)
    assert ready["ready"]
    return child, ready


def has_ended(pid: int) -> bool:
    """Gone, or a zombie: the dead host's orphans may be re-parented to this test process
    (the engine makes it a child subreaper), so reap what ended here."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    if pid_gone(pid):
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] in "ZX"


async def sleeper(mark: str, *argv: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *argv, env={**os.environ, MARK_VAR: mark}, start_new_session=True
    )


def family_profiles() -> Any:
    sh = CommandProfile(name="sh", command=["sh", "-c"], input="argument", grace=0.2)
    return profile_set(sh)


async def test_a_new_host_ends_what_a_killed_host_left_running(db_address: str | Path) -> None:
    """Issue 7 item 2: after SIGKILL, the next host on this machine ends the leftovers."""
    child, ready = await start_family_host(db_address)
    pids = [ready["sh"], ready["bg"], ready["session"]]
    # Someone else's program that happens to look alike must survive the takeover.
    bystander = await sleeper(host_mark("another host"), "sleep", "300")
    try:
        child.send_signal(signal.SIGKILL)
        assert await child.wait() == -signal.SIGKILL
        await asyncio.sleep(0.2)
        assert not any(has_ended(pid) for pid in pids), "the SIGKILL itself ended the programs"

        store = await open_store(db_address)
        try:
            rt = await Runtime.host(store, "local", profiles=family_profiles())
            try:
                # Ended before the new host answers: nothing of the dead host runs on.
                assert [pid for pid in pids if not has_ended(pid)] == []
                assert bystander.returncode is None, "a process of another host was ended"
                failed = await store.run("local", "w-1.r1")
                assert failed is not None
                assert (failed.status, failed.error) == (RunStatus.FAILED, "host exited")
                last = (await run_events(rt, "w-1.r1"))[-1]
                ended = {p["pid"]: p["ended"] for p in last.payload["ended_processes"]}
                # sh, the background sleep and the foreground one: the whole family.
                assert {ready["sh"], ready["bg"]} < set(ended) and len(ended) == 3
                assert set(ended.values()) <= {"terminated", "killed"}
                notes = [d for d in await rt.diagnostics() if d.code == "host.takeover"]
                assert len(notes) == 1 and "ended 4 processes" in notes[0].message
                assert f"pid {ready['session']}" in notes[0].message
            finally:
                await rt.close()
        finally:
            await store.close()
    finally:
        bystander.kill()
        await bystander.wait()
        if child.returncode is None:
            child.kill()
            await child.wait()
        for pid in pids:
            kill_quietly(pid)


async def test_leftovers_are_found_by_their_mark_only() -> None:
    """Issue 7 item 2: a process is a leftover only if it carries the dead host's mark."""
    mark = host_mark("dead host token")
    script = "sleep 300 & sleep 301"
    marked = await sleeper(mark, "sh", "-c", script)
    other = await sleeper(mark + "x", "sleep", "300")
    try:
        await asyncio.sleep(0.2)
        found = await asyncio.to_thread(find_leftovers, mark)
        assert marked.pid in {lo.pid for lo in found}
        assert len(found) == 3  # sh and both sleeps: children inherit the mark
        assert other.pid not in {lo.pid for lo in found}
        await end_leftovers(found, grace=1.0)
        assert all(lo.ended == "terminated" for lo in found)
        assert await asyncio.wait_for(marked.wait(), 5) == -signal.SIGTERM
        assert other.returncode is None
    finally:
        for proc in (marked, other):
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
