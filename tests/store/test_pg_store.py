"""PgEventStore (store.postgres.event_store): the EventLog on a real throwaway PostgreSQL server.

What is PostgreSQL's own: every read compared with what a SQLite EventStore
answers for the same appends, the LISTEN connection and pooled connections
cut by the server, the seam with another OS process appending meanwhile, and
the pool's cancellation. The semantics both back ends share (cursors, leases,
commands, rebuilds...) run on both from the `db_address` fixture
(tests/backends.py) in the other store and engine tests.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from store.errors import HostFenced, ReadOnlyDatabase, StoreClosed
from store.event_store import EventStore
from store.feed import Subscription
from store.filters import parse_filter
from store.hosts import LeaseClaim
from store.models import Event, NewEvent, WorkerRef
from store.postgres.event_store import PgEventStore
from store.postgres.reader import PgReader
from store.postgres.schema import LATEST_VERSION, schema_version
from tests.store.support import child_env, new_event
from tests.store.test_commands import Inbox
from tests.store.test_rebuild import fill

Appends = list[tuple[str, list[NewEvent]]]


@pytest.fixture
async def pg(pg_url: str) -> AsyncIterator[PgEventStore]:
    store = await PgEventStore.open(pg_url)
    try:
        yield store
    finally:
        await store.close()


async def recorded() -> Appends:
    """The appends of store.test_rebuild's `fill` (two runtimes) plus settled and
    pending commands: something for every read query to answer."""

    class Recorder:
        def __init__(self) -> None:
            self.appends: Appends = []

        async def append(self, runtime_id: str, expected: None, events: list[NewEvent]) -> None:
            self.appends.append((runtime_id, list(events)))

    recorder = Recorder()
    await fill(recorder)  # type: ignore[arg-type]
    inbox = Inbox()
    one, two, three = inbox.issue(worker_id="w-1"), inbox.issue(), inbox.issue(worker_id="w-2")
    recorder.appends += [
        ("alpha", [one, two, three]),
        ("alpha", [inbox.worker_stopped("w-2"), inbox.completed(one, worker_id="w-1")]),
        ("alpha", [inbox.failed(two)]),
    ]
    return recorder.appends


async def both(pg: PgEventStore, sqlite: EventStore, appends: Appends) -> None:
    for runtime_id, events in appends:
        a = await sqlite.append(runtime_id, None, events)
        b = await pg.append(runtime_id, None, events)
        assert a == b


async def positions(sub: Subscription, count: int, timeout: float = 30.0) -> list[int]:
    out: list[int] = []
    async with asyncio.timeout(timeout):
        while len(out) < count:
            for item in await sub.next_batch():
                assert isinstance(item, Event), item
                out.append(item.position)
    return out


# ---------------------------------------------------------------------------
# Open
# ---------------------------------------------------------------------------


async def test_open_migrates_and_an_observer_cannot_write(pg_url: str) -> None:
    store = await PgEventStore.open(pg_url)
    try:
        assert await store.last_position() == 0
        assert store.read_only is False
        await store.append("rt", None, [new_event()])
    finally:
        await store.close()
    with psycopg.connect(pg_url) as conn:
        assert schema_version(conn, pg_url) == LATEST_VERSION
    observer = await PgEventStore.open(pg_url, read_only=True)
    try:
        assert observer.read_only
        assert await observer.last_position() == 1
        with pytest.raises(ReadOnlyDatabase):
            await observer.append("rt", None, [new_event()])
    finally:
        await observer.close()
    with pytest.raises(StoreClosed):
        await store.append("rt", None, [new_event()])


# ---------------------------------------------------------------------------
# Every read answers what SQLite answers
# ---------------------------------------------------------------------------


async def test_every_read_query_answers_what_sqlite_answers(
    pg: PgEventStore, tmp_path: Path
) -> None:
    appends = await recorded()
    sqlite = await EventStore.open(tmp_path / "deck.db", watch=False)
    try:
        await both(pg, sqlite, appends)
        for store in (pg, sqlite):  # the lease table too
            await store.claim_lease(
                LeaseClaim("alpha", 42, "box", "tok", 1_000_000), lambda h, t: True
            )
        calls: list[tuple[str, tuple[Any, ...]]] = [
            ("last_position", ()),
            ("read_after", (0, 10_000)),
            ("read_after", (3, 5)),
            ("read_before", (10**9, 10_000)),
            ("read_before", (20, 4)),
            ("read_runtime", ("alpha", 0, 10_000)),
            ("read_runtime", ("beta", 2, 3)),
            ("read_run", ("alpha", "r-1", 0, 100)),
            ("read_run", ("alpha", "r-2", 1, 2)),
            ("last_seq", ("alpha",)),
            ("last_seq", ("nobody",)),
            ("runtimes", ()),
            ("runtime", ("beta",)),
            ("runtime", ("nobody",)),
            ("workers_by_status", ("alpha",)),
            ("workers", ("alpha",)),
            ("worker", ("alpha", "w-2")),
            ("worker", ("alpha", "w-9")),
            ("runs", ("alpha", "w-1")),
            ("runs", ("alpha", "w-1", 1)),
            ("run", ("alpha", "r-2")),
            ("run", ("alpha", "r-9")),
            ("newest_run_ids", ("alpha",)),
            ("open_runs", ("alpha",)),
            ("transcript", (WorkerRef(runtime_id="alpha", worker_id="w-1"), 0, 500)),
            ("transcript", (WorkerRef(runtime_id="alpha", worker_id="w-1"), 1, 2)),
            ("diagnostics", ("alpha",)),
            ("diagnostics", ("beta", 1)),
            ("diagnostic_count", ("alpha",)),
            ("pending_commands", ("alpha",)),
            ("pending_commands", ("beta",)),
            ("hosts", ()),
        ]
        for name, args in calls:
            want = await getattr(sqlite, name)(*args)
            got = await getattr(pg, name)(*args)
            assert got == want, (name, args)
            assert (
                want
                or name in {"runtime", "worker", "run", "pending_commands", "last_seq"}
                or name == "diagnostics"
            ), (name, args, "compare something")
        for _runtime_id, events in appends:
            for event in events:
                if event.kind == "command.issued":
                    command_id = str(event.event_id)
                    assert await pg.command_state(command_id) == await sqlite.command_state(
                        command_id
                    )
        assert await pg.command_state("no-such-command") is None
        assert len(await pg.pending_commands("alpha")) == 1
    finally:
        await sqlite.close()


@pytest.mark.parametrize(
    "text",
    [
        "kind:run.completed",
        "worker:w-1 level:info",
        "-worker:w-1 runtime:alpha",  # SQLite's IS NOT 1, PostgreSQL's IS NOT TRUE
        "after:2026-11-29 before:2026-11-30 -kind:run.executing",
        "level:warning",
        "kind:run.*",  # a glob: SQLite's GLOB, PostgreSQL's LIKE
        "answer",  # free words: FTS5 there, the tsvector here
        "answer -second worker:1",
    ],
)
async def test_filters_answer_what_sqlite_answers(
    pg: PgEventStore, tmp_path: Path, text: str
) -> None:
    flt = parse_filter(text)
    sqlite = await EventStore.open(tmp_path / "deck.db", watch=False)
    try:
        await both(pg, sqlite, await recorded())
        await sqlite.index_now()
        want = await sqlite.read_after(0, 10_000, flt)
        assert want.events, "the filter matches something"
        assert await pg.read_after(0, 10_000, flt) == want
        # Paged two at a time, both ways.
        for store in (pg, sqlite):
            pages: list[list[int]] = []
            position, more = 0, True
            while more:
                batch = await store.read_after(position, 2, flt)
                pages.append([e.position for e in batch.events])
                position, more = batch.cursor.position, batch.has_more
            assert [p for page in pages for p in page] == [e.position for e in want.events]
        assert await pg.read_before(10**9, 2, flt) == await sqlite.read_before(10**9, 2, flt)
        assert await pg.read_before(10**9, 10_000, flt) == await sqlite.read_before(
            10**9, 10_000, flt
        )
    finally:
        await sqlite.close()


# ---------------------------------------------------------------------------
# Subscriptions: replay, then live, across processes
# ---------------------------------------------------------------------------

CHILD_BATCHES = 60


def _child_main() -> None:
    """Another OS process: append CHILD_BATCHES batches of 1-3 events through a PgEventStore."""
    url = sys.argv[1]

    async def run() -> None:
        store = await PgEventStore.open(url, watch=False)
        print("ready", flush=True)
        sys.stdin.readline()
        try:
            for i in range(CHILD_BATCHES):
                await store.append("child", None, [new_event() for _ in range(i % 3 + 1)])
        finally:
            await store.close()
        print("done", flush=True)

    asyncio.run(run())


def _spawn_child(url: str) -> subprocess.Popen[str]:
    code = "from tests.store.test_pg_store import _child_main; _child_main()"
    return subprocess.Popen(
        [sys.executable, "-c", code, url],
        env=child_env(),
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


async def test_subscribe_replays_then_follows_another_process_with_no_gap(
    pg_url: str, pg: PgEventStore
) -> None:
    await pg.append("here", None, [new_event() for _ in range(50)])
    child = _spawn_child(pg_url)
    try:
        assert child.stdout is not None and child.stdin is not None
        line = await asyncio.to_thread(child.stdout.readline)
        assert line.startswith("ready"), (line, child.stderr.read() if child.stderr else "")
        sub = pg.subscribe(after=10)
        # The child appends while the subscription replays, and this process appends too.
        child.stdin.write("go\n")
        child.stdin.flush()
        for _ in range(20):
            await pg.append("here", None, [new_event(), new_event()])
        total = 50 + 40 + sum(i % 3 + 1 for i in range(CHILD_BATCHES))
        got = await positions(sub, total - 10)
        assert got == list(range(11, total + 1))
        sub.close()
        assert (await asyncio.to_thread(child.stdout.readline)).startswith("done")
        assert await asyncio.to_thread(child.wait, 30) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


async def test_a_second_store_sees_commits_live_and_after_its_listen_connection_drops(
    pg_url: str, pg: PgEventStore
) -> None:
    watcher = await PgEventStore.open(pg_url, read_only=True)
    try:
        sub = watcher.subscribe(after=0, flt=parse_filter("runtime:rt"))
        await pg.append("rt", None, [new_event() for _ in range(3)])
        await pg.append("other", None, [new_event()])
        assert await positions(sub, 3, timeout=5) == [1, 2, 3]
        # Cut the observer's LISTEN connection, as a network drop or server restart would.
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'agentdeck-listen' AND datname = current_database()"
            )
        await pg.append("rt", None, [new_event()])  # perhaps while no one listens
        assert await positions(sub, 1, timeout=5) == [5]
        listener = watcher._listener
        assert listener is not None
        async with asyncio.timeout(5):
            while listener.reconnects == 0:
                await asyncio.sleep(0.01)
        await pg.append("rt", None, [new_event()])
        assert await positions(sub, 1, timeout=5) == [6]
        sub.close()
    finally:
        await watcher.close()


async def test_reads_carry_on_after_the_server_ends_the_pooled_connections(
    pg_url: str, pg: PgEventStore
) -> None:
    await pg.append("rt", None, [new_event() for _ in range(3)])
    await asyncio.gather(*(pg.read_after(0, 10) for _ in range(6)))  # several pooled
    with psycopg.connect(pg_url, autocommit=True) as admin:
        ended = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = 'agentdeck-reader' AND datname = current_database()"
        ).fetchone()
    assert ended is not None and ended[0] >= 1
    assert await pg.last_position() == 3
    assert [e.position for e in (await pg.read_after(0, 10)).events] == [1, 2, 3]


def test_a_notification_at_or_below_the_published_position_needs_no_read() -> None:
    from store.postgres.feed import _news

    assert _news("7", 6) and not _news("6", 6) and not _news("5", 6)
    assert _news("not a position", 6)


# ---------------------------------------------------------------------------
# Leases, commands, projections
# ---------------------------------------------------------------------------


async def test_leases_claim_refuse_beat_release_and_pass(pg: PgEventStore) -> None:
    def live(holder: Any, token: str) -> bool:
        return False

    def gone(holder: Any, token: str) -> bool:
        return True

    first = await pg.claim_lease(LeaseClaim("rt", 10, "box", "a", 1_000_000), live)
    assert first.refused_by is None and first.replaced is None
    refused = await pg.claim_lease(LeaseClaim("rt", 11, "box2", "b", 2_000_000), live)
    assert refused.refused_by is not None and refused.refused_by.pid == 10
    assert await pg.beat_lease("rt", "a", 3_000_000)
    assert not await pg.beat_lease("rt", "b", 3_000_000)
    lease = (await pg.hosts())["rt"]
    assert lease.pid == 10 and lease.host_name == "box"
    assert lease.heartbeat_at > lease.started_at
    # The fence: an append with the holder's token commits, another's does not.
    await pg.append("rt", None, [new_event()], fence="a")
    with pytest.raises(HostFenced):
        await pg.append("rt", None, [new_event()], fence="b")
    assert await pg.pass_lease("rt", "a", "successor", 4_000_000)
    assert not await pg.pass_lease("rt", "a", "other", 4_000_000)
    await pg.append("rt", None, [new_event()], fence="successor")
    taken = await pg.claim_lease(LeaseClaim("rt", 12, "box3", "c", 5_000_000), gone)
    assert taken.replaced is not None and taken.replaced_token == "successor"
    await pg.release_lease("rt", "wrong")
    assert "rt" in await pg.hosts()
    await pg.release_lease("rt", "c")
    assert await pg.hosts() == {}


@pytest.mark.parametrize("steps", [0, 1, 2, 3])
async def test_a_read_cancelled_as_the_pool_hands_it_a_connection_is_cancelled(
    pg_url: str, steps: int
) -> None:
    """A read waiting for a pooled connection, cancelled in the loop turns between the pool
    handing it one and the read resuming, ends cancelled: the pool's asyncio.wait_for drops
    such a cancel on Python 3.11, and the read then ran on as if never cancelled (a
    follower cancelled mid-read carried on into its live wait, and its host's stop hung)."""
    reader = PgReader(pg_url, pool_max=1)
    await reader.start()
    try:
        pool = reader._pool
        assert pool is not None
        async with pool.connection():  # the only connection: the read below must wait
            read = asyncio.create_task(reader.fetchall("SELECT 1"))
            async with asyncio.timeout(5):
                while not pool._waiting:
                    await asyncio.sleep(0.001)
        # Given back: the pool hands it to the waiting read; `steps` loop turns later, cancel.
        for _ in range(steps):
            await asyncio.sleep(0)
        read.cancel()
        async with asyncio.timeout(5):
            done = await asyncio.gather(read, return_exceptions=True)
        assert isinstance(done[0], asyncio.CancelledError), done
        assert await reader.fetchall("SELECT 2") == [(2,)]  # the connection went back whole
    finally:
        await reader.close()
