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

    def __init__(
        self, conn: psycopg.Connection[Any], pipeline: psycopg.Pipeline | None = None
    ) -> None:
        self.raw = conn
        self.pipeline = pipeline  # set while `conn` is in pipeline mode (conn.pipeline())

    def execute(self, sql: str, parameters: Any = (), /) -> psycopg.Cursor[Any]:
        # The SQL comes from this code base, never from input: not a `LiteralString`.
        cur = self.raw.cursor()
        if parameters:
            cur.execute(to_pyformat(sql), tuple(parameters))
        else:  # no parameters: psycopg sends the text as is (a `%` stays single)
            cur.execute(sql)
        if self.pipeline is not None:
            return _Answered(cur, self.pipeline)  # type: ignore[return-value]
        return cur

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> psycopg.Cursor[Any]:
        cur = self.raw.cursor()
        params = [tuple(p) for p in parameters]
        if params:
            cur.executemany(to_pyformat(sql), params)
        return cur


class _Answered:
    """A cursor of a pipelined statement whose `rowcount` waits for its answer.

    In pipeline mode psycopg sends a statement without waiting; a fetch waits
    by itself, but `rowcount` is -1 until the server has answered, so it syncs
    first (the fold reads it to settle a command exactly once).
    """

    def __init__(self, cur: psycopg.Cursor[Any], pipeline: psycopg.Pipeline) -> None:
        self._cur = cur
        self._pipeline = pipeline

    @property
    def rowcount(self) -> int:
        self._pipeline.sync()
        return self._cur.rowcount

    def fetchone(self) -> Any:
        return self._cur.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cur.fetchall()
