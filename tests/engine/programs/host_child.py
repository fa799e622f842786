"""Host a runtime in a process of its own, for the engine's cross-process tests.

usage: host_child.py DB RUNTIME MODE

  hold   host the runtime, print `hosting <pid>`, and close cleanly (releasing
         the lease) when stdin ends.
  crash  host it with the `agent` command profile (programs/agent.py), create
         a worker, send `hang` then `second`; once the first run is executing,
         print one JSON line (`ready`, the program's pid, every committed
         event's seq and id), then wait to be killed.
  family host it with an `sh -c` profile and a session profile; start a run
         `sleep 300 & echo bg=$!; sleep 301` on w-1 and a session on w-2; once
         both run, print one JSON line (`ready`, the pids of sh, of the
         background sleep and of the session process), then wait to be killed.
"""

import asyncio
import json
import os
import sys
from pathlib import Path

from engine.profiles import CommandProfile, ProfileSet
from engine.results import CreateWorkerRequest
from engine.runtime import Runtime
from store.models import Event
from store.open import open_store, parse_address

AGENT = Path(__file__).with_name("agent.py")


def profiles() -> ProfileSet:
    agent = CommandProfile(
        name="agent", command=[sys.executable, str(AGENT)], timeout=60, grace=0.2
    )
    return ProfileSet(profiles={"agent": agent})


async def hold(db: str, name: str) -> None:
    store = await open_store(parse_address(db))
    runtime = await Runtime.host(store, name, heartbeat_s=0.1)
    print(f"hosting {os.getpid()}", flush=True)
    await asyncio.to_thread(sys.stdin.read)
    await runtime.close()
    await store.close()
    print("released", flush=True)


async def crash(db: str, name: str) -> None:
    store = await open_store(parse_address(db))
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


def family_profiles() -> ProfileSet:
    sh = CommandProfile(name="sh", command=["sh", "-c"], input="argument", grace=0.2)
    chat = CommandProfile(
        name="chat",
        # Lingers after its stdin closes, as a careless session program would.
        command=[
            "sh",
            "-c",
            'while read l; do echo "said $l"; echo "<<<end>>>"; done; exec sleep 300',
        ],
        mode="session",
        grace=0.2,
    )
    return ProfileSet(profiles={"sh": sh, "chat": chat})


async def family(db: str, name: str) -> None:
    store = await open_store(parse_address(db))
    runtime = await Runtime.host(store, name, profiles=family_profiles(), heartbeat_s=0.1)
    runner = await runtime.create_worker(CreateWorkerRequest(profile="sh"))
    talker = await runtime.create_worker(CreateWorkerRequest(profile="chat"))
    await runtime.send_input(runner.ref, "sleep 300 & echo bg=$!; sleep 301")
    said = await runtime.send_input(talker.ref, "hello")
    pids: dict[str, int] = {}
    while len(pids) < 3:
        await asyncio.sleep(0.02)
        for event in (await runtime.read_events(runtime.cursor_from_start(), 1000)).events:
            if event.kind == "exec.command.started":
                key = "sh" if event.worker_id == runner.worker_id else "session"
                pids[key] = event.payload["pid"]
            if event.kind == "worker.output" and "bg=" in event.payload["content"]:
                pids["bg"] = int(event.payload["content"].split("bg=")[1].split()[0])
        run = await store.run(name, said.run_id)
        if run is None or run.status.value != "completed":
            pids.pop("session", None)
    print(json.dumps({"ready": True, **pids}), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    db, name, mode = sys.argv[1:4]
    main = {"hold": hold, "crash": crash, "family": family}[mode]
    asyncio.run(main(db, name))
