"""Issue commands to a runtime hosted by another process, for the inbox tests.

usage: issuer.py DB RUNTIME WORKER COUNT TAG

Waits for a line on stdin (so every issuer starts at once), then sends COUNT
inputs `TAG-<i>` to WORKER concurrently through the command inbox and prints
one JSON line: each input's command answer (run id) or error line.
"""

import asyncio
import json
import sys

from engine.remote import CommandClient, this_issuer
from store.models import WorkerRef
from store.open import open_store, parse_address


async def main(db: str, runtime_id: str, worker_id: str, count: int, tag: str) -> None:
    store = await open_store(parse_address(db))
    client = CommandClient(store, issuer=this_issuer(f"issuer-{tag}"))
    remote = client.runtime(runtime_id)
    ref = WorkerRef(runtime_id=runtime_id, worker_id=worker_id)
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)

    async def one(i: int) -> dict[str, str]:
        try:
            ack = await remote.send_input(ref, f"{tag}-{i}")
        except Exception as exc:  # reported, so the test sees every outcome
            return {"input": f"{tag}-{i}", "error": f"{type(exc).__name__}: {exc}"}
        return {"input": f"{tag}-{i}", "run_id": ack.run_id}

    answers = await asyncio.gather(*(one(i) for i in range(count)))
    print(json.dumps(answers), flush=True)
    await client.close()
    await store.close()


if __name__ == "__main__":
    db, runtime_id, worker_id, count, tag = sys.argv[1:6]
    asyncio.run(main(db, runtime_id, worker_id, int(count), tag))
