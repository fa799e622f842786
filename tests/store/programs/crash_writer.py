"""A writer to be killed: appends bursts forever and reports each acknowledged one.

usage: crash_writer.py DB ROUND SEED

Three tasks each own a runtime `crash-K` with one worker `w-1` and append
bursts (one append each) of 1-12 `worker.output` events with contiguous
transcript sequences, through the store's group-commit writer. Every event's
message is `BURST I/N` (its burst id, its index `i` and the burst's size `n`;
the payloads are the catalog's, which have no room for them), so a reader can
tell a complete burst from a partial one. After an append returns
(committed and durable), the task prints

    ack RUNTIME BURST N FIRST_POSITION LAST_POSITION LAST_SEQ

and flushes. It opens the store only after reading a line on stdin (so the
parent can start it, imports and all, while it checks the previous round),
and prints `ready` once the store is open.
"""

import asyncio
import random
import sys
from datetime import UTC, datetime
from typing import Any

from uuid6 import uuid7

from store.event_store import EventStore
from store.models import NewEvent


def burst_events(burst: str, items: list[tuple[str, str | None, dict[str, Any]]]) -> list[NewEvent]:
    n = len(items)
    return [
        NewEvent(event_id=uuid7(), kind=kind, worker_id=worker_id, message=f"{burst} {i}/{n}",
                 payload=payload, at=datetime.now(UTC))
        for i, (kind, worker_id, payload) in enumerate(items)
    ]


def ack(runtime_id: str, burst: str, committed: list[Any]) -> None:
    print(f"ack {runtime_id} {burst} {len(committed)} {committed[0].position} "
          f"{committed[-1].position} {committed[-1].seq}", flush=True)


async def writer(store: EventStore, k: int, round_no: str, rng: random.Random) -> None:
    runtime_id = f"crash-{k}"
    last = await store.last_seq(runtime_id)
    if last == 0:
        burst = f"{round_no}-{k}-init"
        committed = await store.append(runtime_id, 0, burst_events(burst, [
            ("runtime.started", None, {"limits": {}}),
            ("worker.created", "w-1", {"spec": {}}),
        ]))
        ack(runtime_id, burst, committed)
        last = committed[-1].seq
    worker = await store.worker(runtime_id, "w-1")
    assert worker is not None
    transcript_len = worker.transcript_len
    b = 0
    while True:
        burst = f"{round_no}-{k}-{b}"
        size = rng.randint(1, 12)
        items = [
            ("worker.output", "w-1", {"role": "assistant", "content": "x" * rng.randint(0, 300),
                                      "sequence": transcript_len + 1 + i})
            for i in range(size)
        ]
        committed = await store.append(runtime_id, last, burst_events(burst, items))
        ack(runtime_id, burst, committed)
        last = committed[-1].seq
        transcript_len += size
        b += 1
        await asyncio.sleep(rng.random() * 0.004)


async def main(db: str, round_no: str, seed: int) -> None:
    sys.stdin.readline()
    store = await EventStore.open(db, watch=False)
    print("ready", flush=True)
    rng = random.Random(seed)
    await asyncio.gather(*(writer(store, k, round_no, random.Random(rng.random())) for k in range(3)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
