"""Helpers shared by the store tests and tests/test_cli_store.py (no fixtures here)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from uuid6 import uuid7

from store.event_store import EventStore
from store.feed import Subscription
from store.models import Event, Lag, NewEvent

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
PROGRAMS = Path(__file__).parent / "programs"
AGENTDECK = Path(sys.executable).parent / "agentdeck"


NEUTRAL_KIND = "exec.session.input"
"""The kind `new_event` makes by default: in the catalog, every payload key optional
(store.catalog.ProcessFacts), level info, and nothing to project but the bookkeeping."""


def new_event(kind: str = NEUTRAL_KIND, **fields: Any) -> NewEvent:
    """A NewEvent with a fresh UUIDv7 and the current time unless given."""
    fields.setdefault("event_id", uuid7())
    fields.setdefault("at", datetime.now(UTC))
    return NewEvent(kind=kind, **fields)


def step_event(step: int, title: str = "a step", **fields: Any) -> NewEvent:
    """A `run.step.started` carrying a number of the test's own in `payload["step"]`."""
    return new_event("run.step.started", payload={"step": step, "title": title}, **fields)


def program(name: str, *args: object) -> list[str]:
    """The argv that runs tests/store/programs/NAME with this interpreter."""
    return [sys.executable, str(PROGRAMS / name), *(str(a) for a in args)]


def child_env() -> dict[str, str]:
    """The environment for child programs: the repository importable, output unbuffered."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def spawn(name: str, *args: object, **popen: Any) -> subprocess.Popen[str]:
    popen.setdefault("stdin", subprocess.PIPE)
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(program(name, *args), env=child_env(), text=True, **popen)


def wait_for_line(proc: subprocess.Popen[str], expected: str, timeout: float = 15.0) -> str:
    """Read the child's stdout until a line starting with `expected`.

    A blocked readline cannot be given a timeout, so it runs in a thread; when
    the time is up the child is killed (which ends the read) and the test fails
    instead of hanging.
    """
    assert proc.stdout is not None
    stdout = proc.stdout
    seen: list[str] = []
    found: list[str] = []

    def read() -> None:
        for line in stdout:
            if line.startswith(expected):
                found.append(line.strip())
                return
            seen.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    if found:
        return found[0]
    if reader.is_alive():
        proc.kill()
        reader.join(5)
        problem = f"timed out after {timeout}s"
    else:
        problem = f"stdout ended (exit status {proc.wait(5)})"
    stderr = proc.stderr.read() if proc.stderr and proc.poll() is not None else ""
    raise AssertionError(f"waiting for {expected!r}: {problem}; stdout {seen!r}; stderr {stderr!r}")


async def eventually(
    check: Callable[[], Awaitable[T | None] | T | None], timeout: float = 10.0, what: str = ""
) -> T:
    """Poll `check` until it returns something truthy, and return it."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.02)


async def collect(
    sub: Subscription, count: int, timeout: float = 10.0
) -> tuple[list[Event], list[Lag]]:
    """Take items from `sub` until `count` events have arrived (lag notices kept apart)."""
    events: list[Event] = []
    lags: list[Lag] = []

    async def run() -> None:
        while len(events) < count:
            for item in await sub.next_batch():
                if isinstance(item, Lag):
                    lags.append(item)
                else:
                    events.append(item)

    try:
        await asyncio.wait_for(run(), timeout)
    except TimeoutError:
        raise AssertionError(
            f"subscription delivered {len(events)} of {count} events in {timeout}s "
            f"(last position {events[-1].position if events else None}, lags {lags})"
        ) from None
    return events, lags


async def read_all(store: EventStore) -> list[Event]:
    """The whole log through the store's own bounded reads."""
    out: list[Event] = []
    position = 0
    while True:
        batch = await store.read_after(position, store.max_batch)
        out.extend(batch.events)
        position = batch.cursor.position
        if not batch.has_more:
            return out


def behind_the_store(address: str | Path, sql: str, params: tuple[Any, ...] = ()) -> int:
    """Run `sql` (`?` placeholders) on the database at `address` with a plain connection of
    its own, as another program would behind the store's back; return the rows it changed."""
    if isinstance(address, str):
        import psycopg

        from store.postgres.adapter import to_pyformat

        with psycopg.connect(address, autocommit=True) as pg:
            return pg.execute(to_pyformat(sql) if params else sql, params or None).rowcount
    conn = sqlite3.connect(address, isolation_level=None)
    try:
        return conn.execute(sql, params).rowcount
    finally:
        conn.close()


def query(address: str | Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The rows of a read with a plain connection of its own (`?` placeholders)."""
    if isinstance(address, str):
        import psycopg

        from store.postgres.adapter import to_pyformat

        with psycopg.connect(address, autocommit=True) as pg:
            return list(pg.execute(to_pyformat(sql) if params else sql, params or None).fetchall())
    conn = sqlite3.connect(f"file:{address}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def sidecars(path: Path) -> dict[str, bool]:
    """Which of the database's -wal and -shm files exist."""
    return {s: path.with_name(path.name + s).exists() for s in ("-wal", "-shm")}


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file in `folder` with its bytes: 'unchanged' means this compares equal.

    A `-shm` file counts by its presence only: it is SQLite's shared-memory index,
    which any reader may write to, not part of the database.
    """
    return {
        p.name: None if p.name.endswith("-shm") else p.read_bytes()
        for p in sorted(folder.iterdir())
        if p.is_file()
    }
