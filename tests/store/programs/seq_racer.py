"""One of two processes racing to append to one runtime with an expected seq.

usage: seq_racer.py DB RUNTIME NAME TARGET

Prints `ready`, waits for a line on stdin, then until the runtime's log
reaches TARGET: read the last seq, append one event expecting it, and on
SequenceConflict read again and retry. A racer that has not yet won once
and lost once goes on past TARGET (up to twice it), so on a loaded machine
where one started late the two still race. Prints one JSON line:
{"name": NAME, "wins": [seq, ...], "conflicts": N}.
"""

import asyncio
import json
import sys
from datetime import UTC, datetime

from uuid6 import uuid7

from store.errors import SequenceConflict
from store.models import NewEvent
from store.open import open_store, parse_address


async def main(db: str, runtime_id: str, name: str, target: int) -> None:
    store = await open_store(parse_address(db), watch=False, index=False)
    wins: list[int] = []
    conflicts = 0
    try:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        while True:
            last = await store.last_seq(runtime_id)
            raced = bool(wins) and conflicts > 0
            if last >= 2 * target or (last >= target and raced):
                break
            # payload: who wrote it (title) and the seq it expected (step)
            event = NewEvent(event_id=uuid7(), kind="run.step.started", message=name,
                             payload={"step": last, "title": name}, at=datetime.now(UTC))
            try:
                [committed] = await store.append(runtime_id, last, [event])
            except SequenceConflict:
                conflicts += 1
                continue
            assert committed.seq == last + 1, (committed.seq, last)
            wins.append(committed.seq)
    finally:
        await store.close()
    print(json.dumps({"name": name, "wins": wins, "conflicts": conflicts}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
