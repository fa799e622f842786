"""Operate a runtime hosted by another process through its command inbox, as a script would.

usage: remote_client.py DB RUNTIME INPUT...

Creates a worker (the runtime's default profile) and sends it each INPUT, all
through `engine.remote.CommandClient`; prints one JSON line per answer
(`{"worker": ID}`, then `{"run": ID}` for each input), or `{"error": CLASS,
"message": LINE}` when a command is refused, and exits.
"""

import asyncio
import json
import sys

from engine.errors import EngineError
from engine.remote import CommandClient
from engine.results import CreateWorkerRequest
from store.event_store import EventStore
from store.models import AssistantIntent


async def main(db: str, runtime_id: str, inputs: list[str]) -> int:
    store = await EventStore.open(db)
    client = CommandClient(store)
    try:
        runtime = client.runtime(runtime_id)
        worker = await runtime.create_worker(CreateWorkerRequest(intent=AssistantIntent()))
        print(json.dumps({"worker": worker.worker_id}), flush=True)
        for text in inputs:
            ack = await runtime.send_input(worker.ref, text)
            print(json.dumps({"run": ack.run_id}), flush=True)
    except EngineError as exc:
        print(json.dumps({"error": type(exc).__name__, "message": str(exc)}), flush=True)
        return 1
    finally:
        await client.close()
        await store.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:])))
