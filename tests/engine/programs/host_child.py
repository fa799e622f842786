"""Host a runtime in a process of its own, for the engine's cross-process tests.

usage: host_child.py DB RUNTIME MODE

  hold   host the runtime, print `hosting <pid>`, and close cleanly (releasing
         the lease) when stdin ends.
  crash  host it with the `agent` command profile (programs/agent.py), create
         a worker, send `hang` then `second`; once the first run is executing,
         print one JSON line (`ready`, the program's pid, every committed
         event's seq and id), then wait to be killed.
"""

import asyncio
import json
import os
import sys
from pathlib import Path

from engine.profiles import CommandProfile, ProfileSet
from engine.results import CreateWorkerRequest
from engine.runtime import Runtime
from store.event_store import EventStore
from store.models import Event

AGENT = Path(__file__).with_name("agent.py")


def profiles() -> ProfileSet:
    agent = CommandProfile(
        name="agent", command=[sys.executable, str(AGENT)], timeout=60, grace=0.2
    )
    return ProfileSet(profiles={"agent": agent})


async def hold(db: str, name: str) -> None:
    store = await EventStore.open(db)
    runtime = await Runtime.host(store, name, heartbeat_s=0.1)
    print(f"hosting {os.getpid()}", flush=True)
    await asyncio.to_thread(sys.stdin.read)
    await runtime.close()
    await store.close()
    print("released", flush=True)


async def crash(db: str, name: str) -> None:
    store = await EventStore.open(db)
    runtime = await Runtime.host(store, name, profiles=profiles(), heartbeat_s=0.1)
    worker = await runtime.create_worker(CreateWorkerRequest(profile="agent"))
    with await runtime.subscribe_run(f"{worker.worker_id}.r1") as sub:
        await runtime.send_input(worker.ref, "hang")
        await runtime.send_input(worker.ref, "second")
        program_pid = None
        async for item in sub:
            if not isinstance(item, Event):
                continue
            if item.kind == "exec.command.started":
                program_pid = item.payload["pid"]
            if item.kind == "run.executing":
                break
    batch = await runtime.read_events(runtime.cursor_from_start(), 1000)
    line = {
        "ready": True,
        "program_pid": program_pid,
        "events": [[e.seq, str(e.event_id)] for e in batch.events],
    }
    print(json.dumps(line), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    db, name, mode = sys.argv[1:4]
    asyncio.run(hold(db, name) if mode == "hold" else crash(db, name))
