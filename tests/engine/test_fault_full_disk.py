"""Issue 7 item 5, on a real full file system: `agentdeck demo` on a small tmpfs.

Mounting needs privileges; where the machine forbids it these tests are
skipped, and tests/engine/test_fault_store.py covers the same behaviour with
SQLite's own page limit, which runs anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from store.event_store import EventStore
from store.models import RunStatus
from tests.engine.conftest import AGENTDECK


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(folder)],
        capture_output=True, text=True, check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def leave_free(folder: Path, free_bytes: int) -> Path:
    """Fill `folder`'s file system but for about `free_bytes`."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 65536)
        os.ftruncate(fd, max(0, os.fstat(fd).st_size - free_bytes))
    finally:
        os.close(fd)
    return filler


async def read_stderr_until(stream: asyncio.StreamReader, needle: str, timeout: float) -> str:
    seen = []
    async with asyncio.timeout(timeout):
        while True:
            line = (await stream.readline()).decode()
            assert line, "stderr closed before: " + needle + "\n" + "".join(seen)
            seen.append(line)
            if needle in line:
                return "".join(seen)


async def test_demo_on_a_full_disk_holds_reports_and_catches_up(small_disk: Path) -> None:
    """Issue 7 item 5: real ENOSPC: held, said, recovered when space returns; exit 0."""
    db = small_disk / "demo.db"
    async with await EventStore.open(db, watch=False):
        pass
    filler = await asyncio.to_thread(leave_free, small_disk, 600_000)
    demo = await asyncio.create_subprocess_exec(
        str(AGENTDECK), "--db", str(db), "demo", "--workers", "4", "--rate", "400",
        "--duration", "12", "--fail-rate", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert demo.stderr is not None and demo.stdout is not None
    try:
        said = await read_stderr_until(demo.stderr, "cannot write to the database", 30)
        assert "disk is full" in said and "Traceback" not in said
        await asyncio.sleep(1.0)
        filler.unlink()  # space returns
        said += await read_stderr_until(demo.stderr, "takes writes again", 30)
        out, rest = await asyncio.wait_for(demo.communicate(), 60)
    finally:
        if demo.returncode is None:
            demo.kill()
            await demo.wait()
    err = said + rest.decode()
    assert demo.returncode == 0, err
    assert "Traceback" not in err and "RuntimeError" not in err
    summary = out.decode()
    assert summary.startswith("demo: runtime demo, 4 workers")
    async with await EventStore.open(db, read_only=True, watch=False) as store:
        assert (await store.verify()).ok
        notes = [d for d in await store.diagnostics("demo") if d.code == "store.write_failed"]
        assert notes and "disk is full" in notes[0].message
        for worker in ("w-1", "w-2", "w-3", "w-4"):
            for run in await store.runs("demo", worker, 10_000):
                assert not run.status.active, (run.run_id, run.status)
                if run.status is RunStatus.FAILED:
                    assert run.error in ("host closed",) or "could not be recorded" in (
                        run.error or ""
                    ), run.error


async def test_demo_still_full_at_the_end_exits_1_with_one_line(small_disk: Path) -> None:
    """Issue 7 item 5: full until the end: the summary, then one line saying so, exit 1."""
    db = small_disk / "demo.db"
    async with await EventStore.open(db, watch=False):
        pass
    await asyncio.to_thread(leave_free, small_disk, 600_000)
    demo = await asyncio.create_subprocess_exec(
        str(AGENTDECK), "--db", str(db), "demo", "--workers", "4", "--rate", "400",
        "--duration", "5",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(demo.communicate(), 60)
    text = err.decode()
    assert demo.returncode == 1, text
    assert "Traceback" not in text and "RuntimeError" not in text
    lines = text.splitlines()
    assert "cannot write to the database" in lines[0]
    assert "could not be written since" in lines[-1]
    assert out.decode().startswith("demo: runtime demo, 4 workers")
