"""`PgEventStore`: the `EventLog` (store.interface) on a PostgreSQL database.

The same composition as store.event_store.EventStore: reads from `PgReader`
(this class is one), appends and lease jobs through the group-commit
`PgWriter`, and every commit, local or from another process, reaches
subscribers through store.feed's `Feed`: local commits from the writer's
on_commit, other processes' from LISTEN/NOTIFY (`PgListener`). A store opened
read-only has no writer: it is an observer, and does not migrate.
"""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path
from typing import Any

import psycopg

from store.checkpoints import Checkpointer
from store.errors import MissingDatabase
from store.feed import DEFAULT_QUEUE, Feed, Subscription
from store.filters import Filter
from store.hosts import HostLeases
from store.interface import EventLog
from store.models import Event
from store.past_view import StorePast, open_past, position_at
from store.postgres.adapter import PgConnection
from store.postgres.errors import safe_url, translate
from store.postgres.feed import PgListener
from store.postgres.reader import PgReader
from store.postgres.schema import schema_version
from store.postgres.writer import PgWriter
from store.projector import Connection
from store.rebuild import RebuildReport, projection_problems, rebuild_projections
from store.rebuild import repair_projections as repair_in_transaction
from store.verify import VerifyReport

# store.rebuild's check is written for SQLite; two of its statements are SQLite's own.
_SQLITE_ONLY = {
    # A planner hint PostgreSQL does without (it has statistics).
    " INDEXED BY events_by_kind": "",
    # Whether the commands table exists (schema 2).
    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'commands'":
        "SELECT 1 WHERE to_regclass('commands') IS NOT NULL",
}


class _RebuildConnection(PgConnection):
    """A writer job's connection as store.rebuild expects it: inside a transaction (the
    job's), and with its two SQLite-only statements said PostgreSQL's way."""

    in_transaction = True  # a writer job always runs inside its transaction

    def execute(self, sql: str, parameters: Any = (), /) -> Any:
        for sqlite_text, pg_text in _SQLITE_ONLY.items():
            sql = sql.replace(sqlite_text, pg_text)
        return super().execute(sql, parameters)


class PgEventStore(PgReader, HostLeases):
    """The durable event log on PostgreSQL, with its projections, subscriptions and feed."""

    def __init__(self, url: str, *, read_only: bool = False) -> None:
        super().__init__(url)
        self.read_only = read_only
        self.feed = Feed(self)
        self._writer: PgWriter | None = None
        self._listener: PgListener | None = None
        self._checkpointer: Checkpointer | None = None

    @classmethod
    async def open(
        cls, url: str, *, read_only: bool = False, watch: bool = True, checkpoints: bool = True
    ) -> PgEventStore:
        """Connect to the database at `url` (migrating it unless `read_only`); raise a typed
        StoreError (store.postgres.errors) if it is unusable. A writable store keeps the
        checkpoints of the fold (store.checkpoints) behind the log unless `checkpoints` is off."""
        store = cls(url, read_only=read_only)
        try:
            await store._start(watch=watch, checkpoints=checkpoints)
        except BaseException:
            await store.close()
            raise
        return store

    async def _start(self, *, watch: bool, checkpoints: bool) -> None:
        if not self.read_only:
            # First: the writer's connection migrates, so the reads find the tables.
            # Kept only once started: a writer that failed to start has cleaned up already.
            writer = PgWriter(self.url, self._committed)
            await writer.start()
            self._writer = writer
        else:
            # An observer does not migrate: refuse at once a database it could not read.
            await asyncio.to_thread(_check_readable, self.url)
        await self.start()
        if watch:
            # LISTEN before the feed reads its starting position: a commit from
            # then on is either below that position or notified.
            self._listener = PgListener(self.url, self.feed)
            await self._listener.start()
        if self._writer is not None and checkpoints:
            self._checkpointer = Checkpointer(
                partial(self._source_connection, "agentdeck-checkpoints"), _close_source,
                self._writer.run_job,
            )
            self.feed.add_listener(self._checkpointer.nudge)
            self._checkpointer.start()
        await self.feed.start()

    def _committed(self, events: list[Event]) -> None:
        self.feed.publish_local(events)

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        await self.feed.close()
        if self._checkpointer is not None:
            await self._checkpointer.close()
            self._checkpointer = None
        if self._writer is not None:
            await self._writer.close()
            self._writer = None
        await super().close()

    @property
    def address(self) -> str:
        """What opens this database again (`open_store`): its URL, password included;
        never for display (`label` is)."""
        return self.url

    @property
    def label(self) -> str:
        """The database as messages name it: its URL without the password."""
        return safe_url(self.url)

    @property
    def folder(self) -> Path | None:
        """None: a database on a server has no folder beside it."""
        return None

    async def __aenter__(self) -> PgEventStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- following ---------------------------------------------------------

    def subscribe(
        self, after: int = 0, flt: Filter | None = None, max_queue: int = DEFAULT_QUEUE
    ) -> Subscription:
        """Events after position `after`, replayed then live, with lag notices."""
        return self.feed.subscribe(after, flt, max_queue)

    # -- the past (store.past_view, store.checkpoints) ---------------------------

    def _source_connection(self, name: str = "agentdeck-past") -> Connection:
        try:
            conn = psycopg.connect(self.url, autocommit=True, application_name=name)
        except psycopg.Error as exc:
            raise translate(exc, self.url) from None
        # A view reads headers and versions in one transaction (store.checkpoints.snapshot):
        # REPEATABLE READ makes it one snapshot, as a SQLite read transaction is.
        conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        return PgConnection(conn)

    async def open_past(self, position: int) -> StorePast:
        """The state just after the event at `position` (clamped to the log); close it."""
        return await open_past(self, self._source_connection, _close_source, position)

    async def position_at(self, at_us: int) -> int:
        """The last position committed at or before `at_us` (0 if none)."""
        return await position_at(self, at_us)

    async def checkpoint_now(self) -> None:
        """Check the checkpoints, repair damage and write every one due (tests, benchmarks)."""
        if self._checkpointer is not None:
            await self._checkpointer.catch_up()

    @property
    def checkpointer(self) -> Checkpointer | None:
        return self._checkpointer

    # -- checking the whole database (store.postgres.verify) ------------------

    async def verify(self) -> VerifyReport:
        """The whole database checked, as `agentdeck verify` checks it, from one snapshot."""
        # Imported here: store.postgres.verify imports this module (readable_schema).
        from store.postgres.verify import verify_database

        return await asyncio.to_thread(verify_database, self.url)

    # -- projections against the log (store.rebuild, through _RebuildConnection) --

    async def projection_problems(self, runtime_id: str) -> list[str]:
        """Where `runtime_id`'s projections disagree with its log; empty when they agree.

        store.rebuild's cheap indexed check, as a writer job (one transaction, so
        the log and the projections are read at one moment). Unlike SQLite's it
        holds the append lock while it runs, and an observer cannot run it.
        """
        return await self.run_job(
            lambda conn: projection_problems(_rebuilding(conn), runtime_id)
        )

    async def rebuild_projections(self, runtime_id: str) -> RebuildReport:
        """Rebuild `runtime_id`'s projections from its log, as one writer job (all or nothing)."""
        return await self.run_job(lambda conn: rebuild_projections(_rebuilding(conn), runtime_id))

    async def repair_projections(self, runtime_id: str) -> RebuildReport | None:
        """Check, and rebuild if the check finds a problem, in one writer job; None when
        the projections agree with the log."""
        return await self.run_job(lambda conn: repair_in_transaction(_rebuilding(conn), runtime_id))


def readable_schema(conn: psycopg.Connection[Any], url: str) -> int:
    """The schema version of the database at `url`, for a reader, which does not migrate:
    MissingDatabase (as SQLite's for an empty file) when agentdeck never set it up, and
    schema_version's ForeignPgDatabase or NewerSchema."""
    version = schema_version(conn, url)
    if version < 1:
        raise MissingDatabase(safe_url(url), "the database holds no agentdeck data")
    return version


def _check_readable(url: str) -> None:
    try:
        with psycopg.connect(url, autocommit=True, application_name="agentdeck-reader") as conn:
            readable_schema(conn, url)
    except psycopg.Error as exc:
        raise translate(exc, url) from None


def _rebuilding(conn: PgConnection) -> Any:
    """`conn` as store.rebuild's functions take it (typed sqlite3.Connection there)."""
    return _RebuildConnection(conn.raw)


def _close_source(conn: Connection) -> None:
    if isinstance(conn, PgConnection):
        conn.raw.close()


def _conforms(store: PgEventStore) -> EventLog:
    return store  # mypy checks here that the PostgreSQL store has the whole protocol
