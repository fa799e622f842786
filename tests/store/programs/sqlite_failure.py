"""Make SQLite fail in ways that need process-wide settings, and report the translation.

usage: sqlite_failure.py nomem
       sqlite_failure.py ioerr DB
       sqlite_failure.py open DB MAX_FILE_BYTES

`nomem` caps SQLite's heap (PRAGMA hard_heap_limit, which can never be raised
again in this process) and asks for more. `ioerr` fills a table in DB after
capping the size of any file this process writes (RLIMIT_FSIZE, with SIGXFSZ
ignored so the write fails with EFBIG): SQLite reports an I/O error. `open`
opens DB with `EventStore.open` under that cap, so creating and migrating a
new file fails part way. Each prints one JSON line: the raw exception (none
for `open`), its SQLite code and name, and the store error it became.
"""

import asyncio
import json
import resource
import signal
import sqlite3
import sys
from pathlib import Path

from store.database import translate
from store.errors import StoreError
from store.event_store import EventStore


def report(raw: BaseException | None, error: BaseException) -> None:
    print(json.dumps({
        "raw": type(raw).__name__ if raw is not None else None,
        "code": getattr(raw, "sqlite_errorcode", None),
        "name": getattr(raw, "sqlite_errorname", None),
        "error": type(error).__name__,
        "message": str(error),
    }), flush=True)


def cap_file_size(limit: int) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))


def nomem() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("PRAGMA hard_heap_limit = 2000000").fetchone()
    try:
        conn.execute("SELECT length(randomblob(5000000))").fetchone()
    except (sqlite3.Error, MemoryError) as exc:
        report(exc, translate(exc, Path(":memory:"), 5.0))
    else:
        sys.exit("randomblob did not fail")


def ioerr(db: Path) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL").fetchone()
    conn.execute("CREATE TABLE t (x BLOB)")
    cap_file_size(64 * 1024)
    try:
        conn.execute("BEGIN")
        conn.execute("INSERT INTO t VALUES (zeroblob(1000000))")
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        report(exc, translate(exc, db, 5.0))
    else:
        sys.exit("the write did not fail")


async def open_capped(db: Path, limit: int) -> None:
    cap_file_size(limit)
    try:
        store = await EventStore.open(db, watch=False)
    except StoreError as exc:
        report(None, exc)
    else:
        await store.close()
        sys.exit("the open did not fail")


if __name__ == "__main__":
    case = sys.argv[1]
    if case == "nomem":
        nomem()
    elif case == "ioerr":
        ioerr(Path(sys.argv[2]))
    else:
        asyncio.run(open_capped(Path(sys.argv[2]), int(sys.argv[3])))
