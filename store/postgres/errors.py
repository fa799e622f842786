"""The ways a PostgreSQL server can refuse, as store errors with one line an operator acts on.

store.errors keeps the classes both back ends share (SequenceConflict, HostFenced,
NewerSchema...); these are the ones only a server has. Every message names the
database by its URL without the password (`safe_url`).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from store.errors import DiskFull, ForeignDatabase, StoreError, UnusableDatabase


def safe_url(url: str) -> str:
    """`url` without its password, fit for a message (URL or key=value conninfo)."""
    if "://" in url:
        parts = urlsplit(url)
        if parts.password is not None:
            user = parts.username or ""
            host = parts.netloc.rpartition("@")[2]
            parts = parts._replace(netloc=f"{user}:***@{host}")
        query = re.sub(r"(?i)(^|&)password=[^&]*", r"\1password=***", parts.query)
        return urlunsplit(parts._replace(query=query))
    return re.sub(r"(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", url)


class ServerError(StoreError):
    """Base of the errors of a PostgreSQL database: `.url` is the safe URL."""

    def __init__(self, url: str, message: str) -> None:
        self.url = safe_url(url)
        super().__init__(f"{self.url}: {message}")


class ServerUnreachable(ServerError):
    def __init__(self, url: str, detail: str) -> None:
        super().__init__(
            url,
            f"cannot reach the PostgreSQL server ({detail}); check the host and port, "
            "and that the server is running",
        )


class AuthenticationFailed(ServerError):
    def __init__(self, url: str, detail: str) -> None:
        super().__init__(
            url, f"the server refused the login ({detail}); check the user name and password"
        )


class PgDatabaseMissing(ServerError):
    def __init__(self, url: str, detail: str) -> None:
        super().__init__(
            url,
            f"no such database on the server ({detail}); create it first "
            "(createdb, or CREATE DATABASE as a user allowed to)",
        )


class PermissionDenied(ServerError):
    def __init__(self, url: str, detail: str) -> None:
        super().__init__(
            url,
            f"permission denied ({detail}); agentdeck's user needs CONNECT on the database, "
            "and CREATE on its schema to set it up",
        )


class ConnectionLost(ServerError):
    def __init__(self, url: str, detail: str) -> None:
        super().__init__(
            url, f"the connection to the server was lost ({detail}); nothing more was written, retry"
        )


class AppendLockTimeout(ServerError):
    """Waited `lock_timeout` for the append lock (or a row lock): another writer held it."""

    def __init__(self, url: str, detail: str) -> None:
        super().__init__(
            url,
            f"another agentdeck process held the database's write lock too long ({detail}); "
            "nothing was written, retry",
        )


class ServerDiskFull(DiskFull):
    """SQLSTATE 53100: the server could not extend a file. A DiskFull, as SQLite's full
    disk is, so the engine holds its work and resumes the same way once writes succeed."""

    def __init__(self, url: str, detail: str) -> None:
        self.url = safe_url(url)
        StoreError.__init__(
            self,
            f"{self.url}: the server's disk is full, nothing was written ({detail}); "
            "free some space on the server and retry",
        )
        self.path = Path(self.url)


class ServerFailure(ServerError):
    """A server error no other class covers: its SQLSTATE and first line."""

    def __init__(self, url: str, sqlstate: str | None, detail: str) -> None:
        self.sqlstate = sqlstate
        super().__init__(url, f"the server refused the operation ({sqlstate or '?'}: {detail})")


class ForeignPgDatabase(ForeignDatabase):
    """A database that holds tables but no agentdeck marker: not ours, left untouched."""

    def __init__(self, url: str) -> None:
        UnusableDatabase.__init__(
            self,
            safe_url(url),
            "a PostgreSQL database that agentdeck did not create (tables but no agentdeck_meta)",
            "point --db at an agentdeck database or an empty one",
        )
        self.url = safe_url(url)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def translate(exc: BaseException, url: str) -> BaseException:
    """The store error for a psycopg error (the error itself when it is not psycopg's)."""
    if isinstance(exc, StoreError) or not isinstance(exc, psycopg.Error):
        return exc
    detail = _first_line(exc)
    # At connect time libpq gives no SQLSTATE for some failures: read its message too.
    sqlstate = exc.sqlstate
    lowered = str(exc).lower()
    if sqlstate == "28P01" or "password authentication failed" in lowered or (
        "no password supplied" in lowered
    ):
        return AuthenticationFailed(url, detail)
    if sqlstate == "28000":
        return AuthenticationFailed(url, detail)
    if sqlstate == "3D000" or re.search(r'database ".*" does not exist', lowered):
        return PgDatabaseMissing(url, detail)
    if sqlstate == "42501" or (sqlstate is None and "permission denied" in lowered):
        return PermissionDenied(url, detail)
    if sqlstate == "53100":
        return ServerDiskFull(url, detail)
    if sqlstate == "55P03":
        return AppendLockTimeout(url, detail)
    if isinstance(exc, psycopg.OperationalError):
        if sqlstate is None and any(
            s in lowered
            for s in (
                "connection refused",
                "no such file or directory",
                "could not translate host name",
                "timeout expired",
                "no route to host",
                "network is unreachable",
                "connection failed",
            )
        ):
            return ServerUnreachable(url, detail)
        if sqlstate is None or sqlstate.startswith("08") or sqlstate.startswith("57P"):
            return ConnectionLost(url, detail)
    return ServerFailure(url, sqlstate, detail)
