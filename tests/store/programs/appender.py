"""Append events to a store from a process of its own (the cross-process feed tests).

usage: appender.py DB RUNTIME COUNT [PAUSE_S]

Prints `ready` once the store is open, waits for a line on stdin, then
appends COUNT events to RUNTIME in bursts of 1-5 (pausing PAUSE_S between
bursts), each a `run.step.started` with payload {"step": i, ...}, and prints `done COUNT` when the last
one is committed.
"""

import asyncio
import random
import sys
from datetime import UTC, datetime

from uuid6 import uuid7

from store.models import NewEvent
from store.open import open_store, parse_address


async def main(db: str, runtime_id: str, count: int, pause: float) -> None:
    store = await open_store(parse_address(db), watch=False, index=False)
    try:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        rng = random.Random(runtime_id)
        n = 0
        while n < count:
            size = min(rng.randint(1, 5), count - n)
            events = [
                NewEvent(event_id=uuid7(), kind="run.step.started", message=f"child {n + i}",
                         payload={"step": n + i, "title": "appended by the child"},
                         at=datetime.now(UTC))
                for i in range(size)
            ]
            await store.append(runtime_id, n, events)
            n += size
            await asyncio.sleep(pause)
        print(f"done {n}", flush=True)
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4] if len(sys.argv) > 4 else 0)))
