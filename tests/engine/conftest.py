"""Shared pieces of the engine tests: a real store on each back end, hosted runtimes, waits."""

from __future__ import annotations

import asyncio
import inspect
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest

from engine.profiles import BuiltinProfile, CommandProfile, ProfileSet
from engine.runtime import Runtime
from store.feed import Subscription
from store.models import Event, RunRecord, RunStatus, WorkerRef
from store.open import open_store

if TYPE_CHECKING:
    from store.open import AnyStore

PROGRAMS = Path(__file__).parent / "programs"
VENV_BIN = Path(sys.executable).parent
AGENTDECK = VENV_BIN / "agentdeck"

TERMINAL = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)


def program(name: str, *args: str) -> list[str]:
    return [sys.executable, str(PROGRAMS / name), *args]


def agent_profile(
    name: str = "agent", gate_dir: Path | None = None, **settings: Any
) -> CommandProfile:
    """A command profile running programs/agent.py (see its docstring)."""
    settings.setdefault("timeout", 20)
    settings.setdefault("grace", 0.3)
    env = dict(settings.pop("env", {}))
    if gate_dir is not None:
        env["GATE_DIR"] = str(gate_dir)
    return CommandProfile(name=name, command=program("agent.py"), env=env, **settings)


def shell_profile(name: str = "sh", **settings: Any) -> CommandProfile:
    """What an operator configures for scripts: `command = ["sh", "-c"]`, `input = "argument"`."""
    settings.setdefault("grace", 0.3)
    return CommandProfile(name=name, command=["sh", "-c"], input="argument", **settings)


def demo_profile(name: str = "slow", **settings: Any) -> BuiltinProfile:
    """A demo profile that never fails unless told to (tests need determinism)."""
    values = {"pace": 0.05, "steps": 3, "fail_rate": 0.0, "tool_rate": 1.0, **settings}
    return BuiltinProfile(name=name, builtin="demo", demo=values)


def profile_set(
    *profiles: BuiltinProfile | CommandProfile, default: str | None = None
) -> ProfileSet:
    return ProfileSet(profiles={p.name: p for p in profiles}, default_profile=default)


async def eventually(check: Callable[[], Any], timeout: float = 5.0, what: str = "") -> Any:
    """Poll `check` (sync or async) until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.01)


async def all_events(runtime: Runtime) -> list[Event]:
    """The runtime's whole log, read through the engine's own cursor API."""
    out: list[Event] = []
    cursor = runtime.cursor_from_start()
    while True:
        batch = await runtime.read_events(cursor, min(1000, runtime.limits.max_event_batch_items))
        out.extend(batch.events)
        cursor = batch.cursor
        if not batch.has_more:
            return out


async def run_events(runtime: Runtime, run_id: str) -> list[Event]:
    return await runtime.store.read_run(runtime.runtime_id, run_id, 0, 10_000)


async def run_kinds(runtime: Runtime, run_id: str) -> list[str]:
    return [e.kind for e in await run_events(runtime, run_id)]


async def wait_run(
    runtime: Runtime,
    run_id: str,
    *statuses: RunStatus,
    timeout: float = 10.0,
) -> RunRecord:
    """Wait until the run's projection reaches one of `statuses` (default: any terminal)."""
    wanted = statuses or TERMINAL

    async def reached() -> RunRecord | None:
        run = await runtime.store.run(runtime.runtime_id, run_id)
        return run if run is not None and run.status in wanted else None

    found: RunRecord = await eventually(reached, timeout, f"run {run_id} to be {wanted}")
    return found


async def transcript_text(runtime: Runtime, ref: WorkerRef) -> list[tuple[str, str]]:
    page = await runtime.transcript_page(ref, 0, runtime.limits.max_transcript_projection_items)
    return [(entry.role.value, entry.content) for entry in page.items]


async def wait_transcript(
    runtime: Runtime, ref: WorkerRef, needle: str, timeout: float = 10.0
) -> None:
    async def seen() -> bool:
        return any(needle in content for _, content in await transcript_text(runtime, ref))

    await eventually(seen, timeout, f"{needle!r} in the transcript of {ref}")


async def collect(
    sub: Subscription, until: Callable[[Event], bool], timeout: float = 10.0
) -> list[Event | Any]:
    """Items of a subscription up to and including the first event matching `until`."""
    out: list[Event | Any] = []
    async with asyncio.timeout(timeout):
        async for item in sub:
            out.append(item)
            if isinstance(item, Event) and until(item):
                return out
    return out


def pid_gone(pid: int) -> bool:
    """True once `pid` no longer exists (a zombie still counts as existing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def kill_quietly(pid: int) -> None:
    try:
        os.killpg(pid, 9)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        os.kill(pid, 9)
    except (ProcessLookupError, PermissionError):
        pass


class HostFactory(Protocol):
    def __call__(self, name: str = ..., **settings: Any) -> Awaitable[Runtime]: ...


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "deck.db"


@pytest.fixture
async def store(db_address: str | Path) -> AsyncIterator[AnyStore]:
    """A writer store on a new database of each back end (tests/backends.py)."""
    opened = await open_store(db_address)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def host(store: AnyStore) -> AsyncIterator[HostFactory]:
    """Host runtimes on the test's store; every one is closed at the end."""
    hosted: list[Runtime] = []

    async def make(name: str = "local", **settings: Any) -> Runtime:
        runtime = await Runtime.host(store, name, **settings)
        hosted.append(runtime)
        return runtime

    try:
        yield make
    finally:
        for runtime in reversed(hosted):
            await runtime.close()
