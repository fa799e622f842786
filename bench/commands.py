"""Commands through the inbox: latency and throughput across processes.

Part of `agentdeck bench engine`. A host process (`python -m bench.commands
host DB`) hosts runtime `bench` with one echo worker; this process issues
`send_input` commands to it through the store (engine.remote) and times each
from the call until its answer is back. Beside it, in the same run, the same
operation called locally on a runtime this process hosts on the same file.
Throughput: five issuing processes (`python -m bench.commands issue ...`)
each send their share concurrently, timed from a common start line until the
last answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.common import PROJECT_ROOT, latency_ms
from engine.remote import CommandClient, this_issuer
from engine.results import CreateWorkerRequest
from engine.runtime import Runtime
from store.event_store import EventStore
from store.models import WorkerRef

RUNTIME = "bench"
ISSUERS = 5
IN_FLIGHT = 10  # commands each issuing process keeps in flight


# -- the child programs ------------------------------------------------------------------


async def _host_main(db: str) -> None:
    """Host RUNTIME with an echo worker; print `ready WORKER`; run until stdin ends."""
    store = await EventStore.open(db, index=False)
    runtime = await Runtime.host(store, RUNTIME)
    worker = await runtime.create_worker(CreateWorkerRequest())
    print(f"ready {worker.worker_id}", flush=True)
    await asyncio.to_thread(sys.stdin.read)
    await runtime.close()
    await store.close()


async def _issue_main(db: str, worker_id: str, count: int, tag: str) -> None:
    """Wait for `go` on stdin, send `count` inputs (IN_FLIGHT at a time), print the tally."""
    store = await EventStore.open(db, index=False)
    client = CommandClient(store, issuer=this_issuer(f"bench-{tag}"))
    remote = client.runtime(RUNTIME)
    ref = WorkerRef(runtime_id=RUNTIME, worker_id=worker_id)
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    queue = list(range(count))
    errors: list[str] = []

    async def lane() -> None:
        while queue:
            i = queue.pop()
            try:
                await remote.send_input(ref, f"{tag}-{i}")
            except Exception as exc:  # counted, so the figure says what failed
                errors.append(f"{type(exc).__name__}: {exc}")

    await asyncio.gather(*(lane() for _ in range(IN_FLIGHT)))
    print(json.dumps({"done": count - len(errors), "errors": errors[:3]}), flush=True)
    await client.close()
    await store.close()


# -- the measurements --------------------------------------------------------------------


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PROJECT_ROOT, env.get("PYTHONPATH")) if p)
    return env


async def _spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.commands", *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=_env(),
    )


async def _line(proc: asyncio.subprocess.Process, timeout: float = 60.0) -> str:
    assert proc.stdout is not None
    async with asyncio.timeout(timeout):
        return (await proc.stdout.readline()).decode().strip()


async def _end(proc: asyncio.subprocess.Process) -> None:
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    try:
        async with asyncio.timeout(20):
            await proc.wait()
    except TimeoutError:
        proc.kill()
        await proc.wait()


@contextlib.asynccontextmanager
async def _remote_host(db: Path) -> AsyncIterator[str]:
    proc = await _spawn("host", str(db))
    try:
        line = await _line(proc)
        if not line.startswith("ready "):
            raise RuntimeError(f"the bench host did not start: {line!r}")
        yield line.split()[1]
    finally:
        await _end(proc)


async def _timed(call: Callable[[], Awaitable[Any]], samples: int, warmup: int) -> list[float]:
    out: list[float] = []
    for i in range(warmup + samples):
        started = time.perf_counter()
        await call()
        if i >= warmup:
            out.append(time.perf_counter() - started)
    return out


async def command_latency(work: Path, samples: int) -> dict[str, Any]:
    """send_input through the inbox (host in another process) vs the same call locally."""
    db = work / "commands-latency.db"
    creator = await EventStore.open(db, index=False)  # the schema, before anyone watches
    try:
        local = await Runtime.host(creator, "local-baseline")
        worker = await local.create_worker(CreateWorkerRequest())
        local_s = await _timed(lambda: local.send_input(worker.ref, "ping"), samples, 20)
        await local.close()
        async with _remote_host(db) as worker_id:
            client = CommandClient(creator, issuer=this_issuer("bench-latency"))
            remote = client.runtime(RUNTIME)
            ref = WorkerRef(runtime_id=RUNTIME, worker_id=worker_id)
            remote_s = await _timed(lambda: remote.send_input(ref, "ping"), samples, 20)
            await client.close()
    finally:
        await creator.close()
    return {"command": latency_ms(remote_s), "local": latency_ms(local_s)}


async def command_throughput(work: Path, per_issuer: int) -> dict[str, Any]:
    """Commands answered per second with ISSUERS processes issuing at once."""
    db = work / "commands-throughput.db"
    creator = await EventStore.open(db, index=False)
    await creator.close()
    async with _remote_host(db) as worker_id:
        issuers = [
            await _spawn("issue", str(db), worker_id, str(per_issuer), f"p{n}")
            for n in range(ISSUERS)
        ]
        try:
            for proc in issuers:
                if await _line(proc) != "ready":
                    raise RuntimeError("a bench issuer did not start")
            started = time.perf_counter()
            for proc in issuers:
                assert proc.stdin is not None
                proc.stdin.write(b"go\n")
                await proc.stdin.drain()
            tallies = [json.loads(await _line(proc, 300)) for proc in issuers]
            wall = time.perf_counter() - started
        finally:
            for proc in issuers:
                await _end(proc)
    done = sum(t["done"] for t in tallies)
    errors = [e for t in tallies for e in t["errors"]]
    return {
        "commands": ISSUERS * per_issuer,
        "answered": done,
        "errors": errors,
        "wall_s": wall,
        "per_s": done / wall if wall else 0.0,
    }


def main(argv: list[str]) -> None:
    match argv:
        case ["host", db]:
            asyncio.run(_host_main(db))
        case ["issue", db, worker_id, count, tag]:
            asyncio.run(_issue_main(db, worker_id, int(count), tag))
        case _:
            raise SystemExit("usage: python -m bench.commands host DB | issue DB WORKER N TAG")


if __name__ == "__main__":
    main(sys.argv[1:])
