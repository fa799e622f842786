"""`verify` on a PostgreSQL database: store.verify's own check, read from one snapshot.

The log and every projection are read in one REPEATABLE READ, READ ONLY
transaction, so they come from one moment however long the check takes: the
writer commits an append's events and projection changes together, and in
position order (store.postgres.writer), so any snapshot holds a log and
projections that must agree. The check takes no lock: appenders carry on
while it reads (their commits are simply not in its snapshot).

The comparison is store.verify's (`check_log`): the same rebuild with the
writer's fold into a scratch SQLite database, the same report.
"""

from __future__ import annotations

from typing import Any

import psycopg

from store.postgres.adapter import PgConnection
from store.postgres.errors import translate
from store.postgres.event_store import readable_schema
from store.verify import VerifyReport, check_log


def verify_database(url: str) -> VerifyReport:
    """Check the agentdeck database at `url` (synchronous; run it in a thread from async code).

    Raises a typed StoreError (store.postgres.errors, MissingDatabase for a
    database agentdeck never set up) when the database cannot be read.
    """
    try:
        conn = psycopg.connect(url, autocommit=True, application_name="agentdeck-verify")
    except psycopg.Error as exc:
        raise translate(exc, url) from None
    try:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        readable_schema(conn, url)  # the first statement: the snapshot begins here
        source = PgConnection(conn)
        report = check_log(source, lambda table: _columns(conn, table))
        conn.execute("COMMIT")
        return report
    except psycopg.Error as exc:
        raise translate(exc, url) from None
    finally:
        conn.close()


def _columns(conn: psycopg.Connection[Any], table: str) -> set[str]:
    """The columns of the database's `table` in the current schema (none: no such table)."""
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = %s",
        (table,),
    ).fetchall()
    return {str(r[0]) for r in rows}
