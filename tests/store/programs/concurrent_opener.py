"""Open a database at the same instant as other processes, then append one event.

usage: concurrent_opener.py DB BARRIER NAME

Imports everything first, prints `ready`, then waits on a shared lock on the
BARRIER file, which the test holds exclusively and lets go of once every
process is ready: all waiters wake together, so the opens really race. Then
`EventStore.open(DB)` (as a console does: watcher and indexer on), one append
to runtime `race`, and `ok SEQ` on stdout. A typed store error ends in one
line on stderr and exit status 2, like the command line; anything else is a
traceback and exit status 1, which the test counts as a failure too.
"""

import asyncio
import fcntl
import sys
from datetime import UTC, datetime

from uuid6 import uuid7

from store.errors import StoreError
from store.event_store import EventStore
from store.models import NewEvent


async def main(db: str, name: str) -> None:
    async with await EventStore.open(db) as store:
        [event] = await store.append("race", None, [
            NewEvent(event_id=uuid7(), kind="run.step.started", message=f"{name} opened",
                     payload={"step": 1, "title": name}, at=datetime.now(UTC))
        ])
        print(f"ok {event.seq}", flush=True)


if __name__ == "__main__":
    db, barrier, name = sys.argv[1:4]
    with open(barrier, "rb") as fh:  # noqa: PTH123 - a plain file handle for flock
        print("ready", flush=True)
        fcntl.flock(fh, fcntl.LOCK_SH)
    try:
        asyncio.run(main(db, name))
    except StoreError as exc:
        print(f"agentdeck: {exc}", file=sys.stderr)
        sys.exit(2)
