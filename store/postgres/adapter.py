"""A psycopg connection seen through the DB-API subset the shared fold uses.

store.projector (the fold) and store.hosts (the lease jobs) speak sqlite3's
dialect of DB-API: `conn.execute(sql, params)` with `?` placeholders, a
cursor with `.fetchone()`, `.fetchall()` and `.rowcount`, and
`conn.executemany`. `PgConnection` gives them that over a sync psycopg
connection, turning `?` into `%s`, so one fold serves both back ends rather
than a copy per back end that could drift. The SQL they run is kept portable
(no SQLite-only functions); a `?` inside a string literal is not supported
(none is used).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import psycopg


@lru_cache(maxsize=512)
def to_pyformat(sql: str) -> str:
    """`?` placeholders as psycopg's `%s` (and a literal `%` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


class PgConnection:
    """sqlite3.Connection's `execute` / `executemany` over a psycopg connection."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.raw = conn

    def execute(self, sql: str, parameters: Any = (), /) -> psycopg.Cursor[Any]:
        # The SQL comes from this code base, never from input: not a `LiteralString`.
        cur = self.raw.cursor()
        if parameters:
            cur.execute(to_pyformat(sql), tuple(parameters))
        else:  # no parameters: psycopg sends the text as is (a `%` stays single)
            cur.execute(sql)
        return cur

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> psycopg.Cursor[Any]:
        cur = self.raw.cursor()
        params = [tuple(p) for p in parameters]
        if params:
            cur.executemany(to_pyformat(sql), params)
        return cur
