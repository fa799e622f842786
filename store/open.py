"""Open the store a database address names: a SQLite file, or a PostgreSQL database.

An address is a path (a SQLite file, created if missing) or a URL beginning
`postgresql://` or `postgres://` (an existing database on a server, set up on
first write). Both stores answer what the command line and the console ask of
any store: `label` (the path, or the URL without its password) and `folder`
(the directory holding a SQLite file; None for a server).

store.postgres (and psycopg) is imported only when an address names a server.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from store.event_store import EventStore
    from store.postgres.event_store import PgEventStore

    AnyStore: TypeAlias = EventStore | PgEventStore

ENV_VAR = "AGENTDECK_DB"
_SCHEMES = ("postgresql://", "postgres://")


def is_server_address(address: str | Path) -> bool:
    """Whether `address` names a PostgreSQL database (a URL) rather than a SQLite file."""
    return isinstance(address, str) and address.lower().startswith(_SCHEMES)


def parse_address(text: str) -> str | Path:
    """A command-line `--db`: the URL as given, or a path."""
    return text if is_server_address(text) else Path(text)


def address_label(address: str | Path) -> str:
    """`address` fit for a message: a path as is, a URL without its password."""
    if is_server_address(address):
        from store.postgres.errors import safe_url

        return safe_url(str(address))
    return str(address)


def has_password(address: str | Path) -> bool:
    """Whether showing `address` (in argv, `ps`) would show a password."""
    return is_server_address(address) and address_label(address) != str(address)


def chosen_address(given: str | Path | None, default: Path) -> str | Path:
    """`--db` when given, else $AGENTDECK_DB when set (and not empty), else `default`."""
    if given is not None:
        return given
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return parse_address(env)
    return default


async def open_store(
    address: str | Path, *, read_only: bool = False, watch: bool = True, index: bool = True
) -> AnyStore:
    """The store at `address`: an EventStore for a path, a PgEventStore for a URL.

    `index` (the free-text indexer) is SQLite's; a server store has none to start.
    Raises the back end's typed StoreError when the database is unusable.
    """
    if is_server_address(address):
        import logging

        from store.postgres.event_store import PgEventStore

        # psycopg_pool logs each failed connection attempt; with no handler configured,
        # Python would print them raw on stderr. The StoreError raised says it in one line.
        psycopg_log = logging.getLogger("psycopg")
        if not psycopg_log.handlers:
            psycopg_log.addHandler(logging.NullHandler())

        return await PgEventStore.open(str(address), read_only=read_only, watch=watch)
    from store.event_store import EventStore

    return await EventStore.open(address, read_only=read_only, watch=watch, index=index)


def unusable_server_error(exc: BaseException) -> bool:
    """Whether `exc` says a server database cannot be used at all (exit 2, like an
    unusable SQLite file): unreachable, login refused, missing, or no permission.

    Looks only if store.postgres was loaded (no server opened: not one of these)."""
    import sys

    errors = sys.modules.get("store.postgres.errors")
    if errors is None:
        return False
    kinds = (
        errors.ServerUnreachable,
        errors.AuthenticationFailed,
        errors.PgDatabaseMissing,
        errors.PermissionDenied,
    )
    return isinstance(exc, kinds)
