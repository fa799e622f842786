"""`EventStore`: the store's one entry point, composed of its parts.

Reads come from `Reader` (this class is one); appends go through the group
-commit `Writer`; every commit, local or from another process, reaches
subscribers through the `Feed` (woken by another process's doorbell, its file
watcher, or its poll). A store opened read-only has no writer and no
indexer: it is an observer.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from store.checkpoints import Checkpointer
from store.database import OpenOptions, close_quietly, open_reader, prepare
from store.doorbell import Doorbell
from store.feed import DEFAULT_QUEUE, ChangeWatcher, Feed, Subscription
from store.filters import Filter
from store.hosts import HostLeases
from store.models import Event
from store.past_view import StorePast, open_past, position_at
from store.projector import Connection
from store.reader import Reader
from store.rebuild import RebuildReport, problems_in_file, rebuild_projections, repair_projections
from store.search import Indexer
from store.verify import VerifyReport, verify_file
from store.writer import Writer


class EventStore(Reader, HostLeases):
    """The durable event log with its projections, subscriptions and change feed."""

    def __init__(self, path: Path, options: OpenOptions) -> None:
        super().__init__(path, options)
        self.options = options
        self.read_only = options.read_only
        self.feed = Feed(self)
        self._writer: Writer | None = None
        self._indexer: Indexer | None = None
        self._checkpointer: Checkpointer | None = None
        self._watcher: ChangeWatcher | None = None
        self._bell = Doorbell(self.path)

    @classmethod
    async def open(
        cls,
        path: Path | str,
        *,
        read_only: bool = False,
        watch: bool = True,
        index: bool = True,
        options: OpenOptions | None = None,
        checkpoints: bool = True,
    ) -> EventStore:
        """Open (creating if needed) the database at `path`; raise a typed StoreError if unusable.

        A writable store keeps the free-text index (`index`) and the checkpoints of
        the fold (`checkpoints`, store.checkpoints) behind the log.
        """
        opts = options or OpenOptions(read_only=read_only)
        if read_only and not opts.read_only:
            opts = OpenOptions(
                read_only=True, busy_timeout_s=opts.busy_timeout_s,
                synchronous=opts.synchronous, mounts_file=opts.mounts_file,
            )
        resolved = await asyncio.to_thread(prepare, path, opts)
        store = cls(resolved, opts)
        try:
            await store._start(watch=watch, index=index, checkpoints=checkpoints)
        except BaseException:
            await store.close()
            raise
        return store

    async def _start(self, *, watch: bool, index: bool, checkpoints: bool) -> None:
        await self.start()
        if not self.read_only:
            self._writer = Writer(self.path, self.options, self._committed)
            await self._writer.start()
            if index:
                self._indexer = Indexer(self._writer)
                self.feed.add_listener(self._indexer.nudge)
                self._indexer.start()
            if checkpoints:
                self._checkpointer = Checkpointer(
                    self._source_connection, _close_source, self._writer.run_job
                )
                self.feed.add_listener(self._checkpointer.nudge)
                self._checkpointer.start()
        await self.feed.start()
        if watch:
            # The bell first: a process that commits from now on wakes this feed at once.
            self._bell.listen(self.feed.rung)
            self._watcher = ChangeWatcher(self.path, self.feed, self)
            await self._watcher.start()

    def _committed(self, events: list[Event]) -> None:
        self.feed.publish_local(events)
        self._bell.ring()

    async def close(self) -> None:
        self._bell.close()
        if self._watcher is not None:
            await self._watcher.close()
            self._watcher = None
        await self.feed.close()
        if self._checkpointer is not None:
            await self._checkpointer.close()
            self._checkpointer = None
        if self._indexer is not None:
            await self._indexer.close()
            self._indexer = None
        if self._writer is not None:
            await self._writer.close()
            self._writer = None
        await super().close()

    @property
    def address(self) -> Path:
        """What opens this database again (`open_store`): its path."""
        return self.path

    @property
    def label(self) -> str:
        """The database as messages name it: its path."""
        return str(self.path)

    @property
    def folder(self) -> Path | None:
        """The directory holding the database file (where agentdeck.toml goes by default)."""
        return self.path.parent

    async def __aenter__(self) -> EventStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- writing: append, submit and run_job come from store.group_commit.WritesThrough --

    async def index_now(self) -> None:
        """Bring the free-text index up to the last commit (benchmarks and tests)."""
        if self._indexer is not None:
            await self._indexer.catch_up()

    async def checkpoint_now(self) -> None:
        """Check the checkpoints, repair damage and write every one due (tests, benchmarks)."""
        if self._checkpointer is not None:
            await self._checkpointer.catch_up()

    @property
    def checkpointer(self) -> Checkpointer | None:
        return self._checkpointer

    # -- the past (store.past_view) ------------------------------------------

    def _source_connection(self) -> Connection:
        return open_reader(self.path, self.options)

    async def open_past(self, position: int) -> StorePast:
        """The state just after the event at `position` (clamped to the log); close it."""
        return await open_past(
            self, self._source_connection, _close_source, position, attach_file=self.path
        )

    async def position_at(self, at_us: int) -> int:
        """The last position committed at or before `at_us` (0 if none)."""
        return await position_at(self, at_us)

    # -- following ---------------------------------------------------------

    def subscribe(
        self, after: int = 0, flt: Filter | None = None, max_queue: int = DEFAULT_QUEUE
    ) -> Subscription:
        """Events after position `after`, replayed then live, with lag notices."""
        return self.feed.subscribe(after, flt, max_queue)

    async def verify(self) -> VerifyReport:
        return await asyncio.to_thread(verify_file, self.path)

    # -- projections against the log (store.rebuild) -----------------------

    async def projection_problems(self, runtime_id: str) -> list[str]:
        """Where `runtime_id`'s projections disagree with its log; empty when they agree.

        The cheap indexed check (counts and heads), on a read snapshot of its
        own so appends are not held up; an observer may run it too.
        """
        return await asyncio.to_thread(problems_in_file, self.path, runtime_id, self.options)

    async def rebuild_projections(self, runtime_id: str) -> RebuildReport:
        """Rebuild `runtime_id`'s projections from its log, as one writer job (all or nothing).

        Raises RebuildFailed (nothing changed) if an event of the log does not project.
        """
        return await self.run_job(lambda conn: rebuild_projections(conn, runtime_id))

    async def repair_projections(self, runtime_id: str) -> RebuildReport | None:
        """Check, and rebuild if the check finds a problem, in one writer job.

        None when the projections agree with the log. Check and rebuild share
        one transaction, so no append of this process can slip between them.
        """
        return await self.run_job(lambda conn: repair_projections(conn, runtime_id))


def _close_source(conn: Connection) -> None:
    close_quietly(conn)  # type: ignore[arg-type]  # open_reader's sqlite3.Connection
