"""`agentdeck bench store --db postgresql://…`: the store's figures on PostgreSQL.

The same figures as on SQLite (bench.store, whose workloads, measurements and
figure builders these are), each next to raw psycopg measured in the same run
on the same server, with the same durability (`synchronous_commit = on`):

- append_throughput: 50 producers through PgEventStore vs raw `executemany`
  and raw `COPY` of the same rows in batches of 1000, one transaction each.
- append_latency: p99 per append at a steady 1,000/s vs raw one-transaction
  inserts on the same schedule.
- read_after_1000: `read_after(cursor, 1000)` on the big log vs the raw query.
- text_filter_first_100: the newest 100 matches of a free-text filter
  through the store's filtered read vs a raw scan with a regular expression.
- cross_process_visibility: a child process commits through its own
  PgEventStore; this one sees it through its change feed (LISTEN/NOTIFY) vs
  a raw LISTEN connection.

The URL names a server (and a database to connect to first); the benchmark
makes its own databases beside it: a scratch one (`agentdeck_bench_scratch_PID`,
dropped at the end, every session in it at `synchronous_commit = on`) and
the big log (`agentdeck_bench_N`, kept and reused while its marker, a
database comment naming the generator and a digest of the migrations, and its
event count say it is the same log). The big log is the SQLite bench's cached
log (bench/data/) copied table by table with COPY into a database migrated to
the schema those tables have, then opened once through PgEventStore so every
later migration (and its backfill) runs as on any upgraded database.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import os
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from bench.common import (
    Progress,
    figure,
    machine_info,
    median,
    now,
)
from bench.store import (
    GENERATOR_VERSION,
    MATCH_LIMIT,
    RAW_BATCH,
    READ_SQL,
    SIZES,
    SearchQuery,
    Sizes,
    Visibility,
    Workload,
    ensure_dataset,
    latency_figure,
    latency_workload,
    paced_appends,
    producers_rate,
    raw_paced,
    read_after_figure,
    store_observer,
    store_report,
    text_filter_figure,
    throughput_rows,
    visibility,
    visibility_figure,
    visibility_progress,
)
from store.database import open_reader
from store.postgres.adapter import PgConnection, to_pyformat
from store.postgres.event_store import PgEventStore
from store.postgres.schema import APPLICATION, LATEST_VERSION, MIGRATIONS, migrate
from store.postgres.writer import CHANNEL
from store.projector import INSERT_EVENT, STORED_COLUMNS, Row, project
from store.reader import EVENT_COLUMNS

__all__ = ["run_pg_store_bench"]

# The PostgreSQL schema version whose tables are the SQLite dataset's tables (events and
# the projections, commands included): the big log is copied in at this version, and
# every later migration runs on the copy when the store first opens it.
COPY_AT_VERSION = 2
COPY_ROWS_PROGRESS = 200_000
SEARCH_BUDGET_S = 10.0  # a query slower than this is timed fewer than search_repeats times
LISTEN_WAIT_S = 0.1


# ---------------------------------------------------------------------------
# Databases on the server
# ---------------------------------------------------------------------------


def database_url(url: str, name: str) -> str:
    """`url` naming database `name` instead (same server, user, password and options)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + quote(name, safe="")))


def database_name(url: str) -> str:
    return unquote(urlsplit(url).path.lstrip("/")) or "postgres"


def connect(url: str) -> psycopg.Connection[Any]:
    """A raw autocommit connection with the durability the store's commits have."""
    conn = psycopg.connect(url, autocommit=True, application_name="agentdeck-bench")
    conn.execute("SET synchronous_commit = on")
    return conn


def _create_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        # Every session in it, the store's included, commits durably whatever the server's default.
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET synchronous_commit = on").format(sql.Identifier(name))
        )


def _drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextlib.contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    """A new database for the write figures (URL), migrated by the store, dropped afterwards."""
    name = f"agentdeck_bench_scratch_{os.getpid()}"
    _create_database(admin_url, name)
    try:
        url = database_url(admin_url, name)
        with connect(url) as conn:
            migrate(conn, url)
        yield url
    finally:
        _drop_database(admin_url, name)


def migrate_to(conn: psycopg.Connection[Any], version: int) -> None:
    """The store's own migrations 1..`version` (store.postgres.schema) on an empty database,
    marked as agentdeck's at that version: the store migrates the rest when it opens it."""
    with conn.transaction():
        for step in (s for number in range(1, version + 1) for s in MIGRATIONS[number]):
            # A step is a statement or a function (migration 3's backfill is one).
            step(conn) if callable(step) else conn.execute(step)
        conn.execute(
            "INSERT INTO agentdeck_meta (key, value) VALUES"
            " ('application', %s), ('schema_version', %s)",
            (APPLICATION, str(version)),
        )


def fresh_tables(url: str) -> None:
    """Empty every table of the scratch database but the schema marker (the schema stays)."""
    with connect(url) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            " AND tablename <> 'agentdeck_meta'"
        ).fetchall()]
        if tables:
            conn.execute(sql.SQL("TRUNCATE {}").format(
                sql.SQL(", ").join(sql.Identifier(t) for t in tables)))


def settings(url: str, *names: str) -> dict[str, Any]:
    """Settings as a new session in `url`'s database gets them (the store's sessions do)."""
    with psycopg.connect(url, autocommit=True) as conn:
        shown = {n: conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(n))).fetchone()
                 for n in names}
    return {n: (v[0] if v else None) for n, v in shown.items()}


# ---------------------------------------------------------------------------
# 1: append throughput
# ---------------------------------------------------------------------------


def _insert(conn: psycopg.Connection[Any], values: Sequence[tuple[Any, ...]], how: str) -> None:
    """The event rows, by `executemany` (pipelined by psycopg) or by `COPY`."""
    cur = conn.cursor()
    if how == "copy":
        with cur.copy(f"COPY events ({STORED_COLUMNS}) FROM STDIN") as copy:
            for v in values:
                copy.write_row(v)
    else:
        cur.executemany(to_pyformat(INSERT_EVENT), values)


def raw_throughput(
    url: str, setup: list[Row], batches: list[list[Row]], how: str, projections: bool = False
) -> float:
    """Events/s of raw inserts of `batches`, one transaction each, on fresh tables."""
    fresh_tables(url)
    values = [[r.column_values() for r in batch] for batch in batches]
    with connect(url) as conn:
        with conn.transaction():
            _insert(conn, [r.column_values() for r in setup], "executemany")
            project(PgConnection(conn), setup)
        start = now()
        for batch, vals in zip(batches, values, strict=True):
            with conn.transaction():
                _insert(conn, vals, how)
                if projections:
                    project(PgConnection(conn), batch)
        return sum(map(len, batches)) / (now() - start)


async def store_throughput(url: str, load: Workload) -> float:
    fresh_tables(url)
    store = await PgEventStore.open(url)
    try:
        return await producers_rate(store, load)
    finally:
        await store.close()


async def append_throughput(url: str, sizes: Sizes, progress: Progress) -> dict[str, Any]:
    load, setup, batches, rounds = throughput_rows(sizes, progress)
    mine: list[float] = []
    many: list[float] = []
    copy: list[float] = []
    grouped: list[float] = []
    for r in range(sizes.repeats):
        many.append(raw_throughput(url, setup, batches, "executemany"))
        copy.append(raw_throughput(url, setup, batches, "copy"))
        grouped.append(raw_throughput(url, setup, rounds, "executemany", projections=True))
        mine.append(await store_throughput(url, load))
        progress(
            f"  round {r + 1}: raw executemany {many[-1]:,.0f}/s, raw COPY {copy[-1]:,.0f}/s,"
            f" raw+projections grouped like the writer {grouped[-1]:,.0f}/s;"
            f" store {mine[-1]:,.0f}/s"
        )
    rate, base, base_copy, base_grouped = (median(x) for x in (mine, many, copy, grouped))
    return figure(
        value=rate,
        unit="events/s",
        desc=f"PgEventStore.append through the group-commit writer with projections (one"
        f" transaction a batch: append lock, max(position), INSERT, fold, NOTIFY), {load.events}"
        f" events; {sizes.producers} asyncio producers (one worker each,"
        f" {max(1, sizes.producers // 10)} runtimes), each awaiting its own append before the"
        " next; the SQLite figure's workload; expected_seq=None",
        baseline=base,
        baseline_desc=f"raw psycopg executemany (pipelined) of the same event rows in batches of"
        f" {RAW_BATCH}, one transaction per batch, synchronous_commit=on, tables of the real"
        " schema, no projections (the search column left at its default: no tokens)",
        goal=None,
        baseline_copy=base_copy,
        baseline_copy_desc=f"raw psycopg COPY events FROM STDIN of the same rows in batches of"
        f" {RAW_BATCH}, one transaction per batch, synchronous_commit=on",
        ratio_to_copy=rate / base_copy,
        baseline_grouped_like_writer=base_grouped,
        baseline_grouped_like_writer_desc=f"raw executemany plus store.projector.project, one"
        f" transaction per round of {sizes.producers} appends (one per producer): the most"
        " group commit can gather when every producer awaits its own append",
        ratio_to_grouped_like_writer=rate / base_grouped,
        runs=mine,
        baseline_runs=many,
        baseline_copy_runs=copy,
        events=load.events,
        appends=load.appends,
    )


# ---------------------------------------------------------------------------
# 2: per-append latency at a steady rate
# ---------------------------------------------------------------------------


async def append_latency(url: str, sizes: Sizes, progress: Progress) -> dict[str, Any]:
    load = latency_workload(sizes, progress)
    fresh_tables(url)
    store = await PgEventStore.open(url)
    try:
        paced = await paced_appends(store, load, sizes)
    finally:
        await store.close()
    fresh_tables(url)
    setup, appends = load.raw_rows()
    with connect(url) as conn:
        with conn.transaction():
            _insert(conn, [r.column_values() for r in setup], "executemany")

        def commit(values: list[tuple[Any, ...]]) -> None:
            with conn.transaction():
                _insert(conn, values, "executemany")

        raw = raw_paced(commit, appends, 1.0 / sizes.latency_rate)
    return latency_figure(
        paced, raw, load, sizes, store_desc="PgEventStore.append, defaults",
        baseline_desc="the same appends on the same 1,000/s schedule from one thread with one raw"
        " psycopg connection, each append its own BEGIN/INSERT/COMMIT (synchronous_commit=on,"
        " so one WAL flush each), no projections: the floor for making one event durable"
        " without batching",
    )


# ---------------------------------------------------------------------------
# The big log, copied from the SQLite bench's cached one and kept on the server
# ---------------------------------------------------------------------------


def schema_fingerprint() -> str:
    """A digest of the PostgreSQL migrations (statements, and the modules of the functions
    among them): a kept log migrated by other steps than today's is built again."""
    digest = hashlib.sha256()
    for number in sorted(MIGRATIONS):
        for step in MIGRATIONS[number]:
            module = inspect.getmodule(step) if callable(step) else None
            digest.update((inspect.getsource(module) if module else str(step)).encode())
    return digest.hexdigest()[:16]


def _marker(events: int) -> str:
    return (
        f"agentdeck bench log: {events} events, generator {GENERATOR_VERSION},"
        f" schema {LATEST_VERSION} {schema_fingerprint()}"
    )


def _dataset_ok(url: str, events: int) -> bool:
    try:
        with connect(url) as conn:
            row = conn.execute(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database"
                " WHERE datname = current_database()"
            ).fetchone()
            if row is None or row[0] != _marker(events):
                return False
            count = conn.execute("SELECT count(*), max(position) FROM events").fetchone()
            return count is not None and tuple(count) == (events, events)
    except psycopg.Error:
        return False


def copy_sqlite_tables(sqlite_path: Path, conn: psycopg.Connection[Any], progress: Progress) -> int:
    """COPY every table the SQLite file and the PostgreSQL database both have; rows copied."""
    lite = open_reader(sqlite_path)
    try:
        lite_tables = {r[0] for r in lite.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        pg_tables = {r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
        total = 0
        for table in sorted((lite_tables & pg_tables) - {"agentdeck_meta"}):
            # The columns both have: the dataset is at SQLite's latest schema, the copy at
            # COPY_AT_VERSION, and the later migrations fill the columns they add.
            theirs = {r[0] for r in conn.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND table_name = %s", (table,))}
            columns = [r[1] for r in lite.execute(f"PRAGMA table_info({table})") if r[1] in theirs]
            names = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
            statement = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table), names)
            done = 0
            with conn.transaction(), conn.cursor().copy(statement) as copy:
                for row in lite.execute(f"SELECT {', '.join(columns)} FROM {table}"):
                    copy.write_row(row)
                    done += 1
                    if done % COPY_ROWS_PROGRESS == 0:
                        progress(f"  {table}: {done:,} rows")
            total += done
        return total
    finally:
        lite.close()


async def ensure_pg_dataset(
    admin_url: str, events: int, progress: Progress
) -> tuple[str, dict[str, Any]]:
    """The big log's URL (copied now unless the server has it) and what was done for it."""
    name = f"agentdeck_bench_{events}"
    url = database_url(admin_url, name)
    start = now()
    built = not _dataset_ok(url, events)
    info: dict[str, Any] = {"events": events, "database": name, "built_now": built}
    if built:
        sqlite_path, sqlite_s = ensure_dataset(events, progress)
        info["sqlite_source"] = str(sqlite_path)
        info["sqlite_build_s"] = sqlite_s
        progress(f"copying the {events:,}-event log into database {name} (once; kept there)")
        _create_database(admin_url, name)
        with connect(url) as conn:
            migrate_to(conn, COPY_AT_VERSION)
            copy_start = now()
            info["rows_copied"] = copy_sqlite_tables(sqlite_path, conn, progress)
            info["copy_s"] = now() - copy_start
    # Opened once as a writer: the migrations after COPY_AT_VERSION run (on a cached log
    # too, when a newer agentdeck added one since), with whatever backfill they do.
    migrate_start = now()
    store = await PgEventStore.open(url, watch=False)
    await store.close()
    info["open_and_migrate_s"] = now() - migrate_start
    if built:
        with connect(url) as conn:
            progress("  VACUUM ANALYZE")
            conn.execute("VACUUM ANALYZE")
            conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(name), sql.Literal(_marker(events))))
        info["build_s"] = now() - start
    with connect(url) as conn:
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        version = conn.execute(
            "SELECT value FROM agentdeck_meta WHERE key = 'schema_version'").fetchone()
    info["bytes"] = size[0] if size else None
    info["schema_version"] = int(version[0]) if version else None
    return url, info


# ---------------------------------------------------------------------------
# 3 and 4: reads on the big log
# ---------------------------------------------------------------------------


async def read_after(url: str, sizes: Sizes, progress: Progress) -> dict[str, Any]:
    store = await PgEventStore.open(url, read_only=True, watch=False)
    try:
        with connect(url) as raw:
            return await read_after_figure(
                store, lambda text, params: raw.execute(to_pyformat(text), params).fetchall(),
                sizes, progress, store_desc="read-only store, its connection pool",
                baseline_desc="the same SELECT (store.reader.EVENT_COLUMNS, position > ?,"
                f" LIMIT 1001) fetchall on one raw psycopg connection in this thread, interleaved"
                f" with the store's reads: {READ_SQL}",
                fetch_only_desc="the same SELECT through the store's pool (PgReader.fetchall),"
                " without building Event objects",
            )
    finally:
        await store.close()


_PHRASE = re.compile(r'"((?:[^"]|"")*)"(\*?)')
_NOT_TOKEN = "[^[:alnum:]]"


def word_regex(fts_phrase: str) -> str:
    """A PostgreSQL regular expression for one FTS5 phrase of bench.store's SEARCHES
    (`"a b"*`): the tokens in a row at token boundaries, the last a prefix if starred."""
    match = _PHRASE.fullmatch(fts_phrase)
    assert match is not None, fts_phrase
    tokens = match.group(1).replace('""', '"').split()
    body = f"{_NOT_TOKEN}+".join(re.escape(t) for t in tokens)
    return f"(^|{_NOT_TOKEN}){body}" + ("" if match.group(2) else f"({_NOT_TOKEN}|$)")


def tsquery(fts: str) -> str:
    """One of bench.store's SEARCHES' FTS5 queries as a tsquery over the lexemes of
    `events.search` (migration 3): each token quoted, the last of a starred phrase a
    prefix; a phrase's tokens are ANDed (the column has no positions)."""
    operands = []
    for phrase in fts.split(" AND "):
        match = _PHRASE.fullmatch(phrase.strip())
        assert match is not None, phrase
        tokens = match.group(1).replace('""', '"').split()
        operands += [f"'{t}'" for t in tokens[:-1]]
        operands.append(f"'{tokens[-1]}'" + (":*" if match.group(2) else ""))
    return " & ".join(operands)


def search_where(q: SearchQuery, indexed: bool) -> tuple[str, list[Any]]:
    """`q` as plain SQL over `events e` (`%s`), structured terms as they are (GLOB as LIKE).

    The words: with the tsvector column (`indexed`), one tsquery over it, and a phrase of
    several tokens rechecked by its regex (the tsvector has no positions); without, a
    case-insensitive regex per FTS phrase on the text the filter searches."""
    phrases = [p.strip() for p in q.fts.split(" AND ")]
    if indexed:
        phrases = [p for p in phrases if " " in p]
    where = " AND ".join(
        [*(["e.search @@ %s::tsquery"] if indexed else []),
         *(["(e.message || ' ' || e.payload) ~* %s"] * len(phrases))]
    )
    params: list[Any] = [*([tsquery(q.fts)] if indexed else []), *map(word_regex, phrases)]
    extra = q.extra_sql.replace(" GLOB ", " LIKE ")
    params += [p.replace("*", "%") if " GLOB " in q.extra_sql else p for p in q.extra_params]
    return where + to_pyformat(extra), params


async def text_filter(url: str, sizes: Sizes, progress: Progress) -> dict[str, Any]:
    store = await PgEventStore.open(url, read_only=True, watch=False)
    try:
        with connect(url) as raw:
            found = raw.execute(
                "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()"
                " AND table_name = 'events' AND column_name = 'search' AND data_type = 'tsvector'"
            ).fetchone()
            indexed = found is not None

            def newest(q: SearchQuery, before: int) -> list[Any]:
                where, params = search_where(q, indexed)
                # Not prepared: a generic plan would plan a rare word like a common one.
                return raw.execute(
                    f"SELECT {EVENT_COLUMNS} FROM events e WHERE e.position < %s AND {where}"
                    " ORDER BY e.position DESC LIMIT %s", (before, *params, MATCH_LIMIT),
                    prepare=False,
                ).fetchall()

            def count(q: SearchQuery) -> int:  # of the words alone, as on SQLite
                where, params = search_where(replace(q, extra_sql="", extra_params=()), indexed)
                row = raw.execute(f"SELECT count(*) FROM events e WHERE {where}", params).fetchone()
                return int(row[0]) if row else 0

            return await text_filter_figure(
                store, newest, count, sizes, progress, all_indexed=indexed,
                budget_s=SEARCH_BUDGET_S,
                baseline_desc=(
                    "the hand-written SQL for the same query on one raw psycopg connection:"
                    " events.search (migration 3's tsvector of FTS5 tokens, GIN index)"
                    " @@ the words as a tsquery ('tok':* for a prefix, a phrase's tokens"
                    " ANDed, then the phrase checked by a regular expression at token"
                    " boundaries over message || payload), structured terms as plain WHERE,"
                    " ORDER BY position DESC LIMIT 100, not prepared; for the same (worst)"
                    " query"
                    if indexed else
                    "raw psycopg, no text index in this schema: events newest first (primary"
                    " key, backwards) filtered by a case-insensitive regular expression per"
                    " word at token boundaries over message || payload (structured terms as"
                    " plain WHERE), LIMIT 100, for the same (worst) query (the regex's word"
                    " boundaries are close to, not exactly, the filter's tokens)"
                ),
                text_index=indexed,
            )
    finally:
        await store.close()


# ---------------------------------------------------------------------------
# 5: cross-process visibility through LISTEN/NOTIFY
# ---------------------------------------------------------------------------


def _listen(url: str, seen: dict[int, float], stop: threading.Event,
            ready: threading.Event) -> None:
    """The baseline observer: LISTEN, and on each notification read position > last."""
    with connect(url) as conn:
        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
        found = conn.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()
        last = int(found[0]) if found else 0
        ready.set()
        read = to_pyformat(f"SELECT {EVENT_COLUMNS} FROM events e WHERE e.position > ?"
                           " ORDER BY e.position")
        while not stop.is_set():
            if not list(conn.notifies(timeout=LISTEN_WAIT_S, stop_after=1)):
                continue
            rows = conn.execute(read, (last,)).fetchall()
            stamp = time.monotonic()
            for row in rows:
                seen[row[0]] = stamp
            if rows:
                last = rows[-1][0]


@contextlib.asynccontextmanager
async def raw_listener(url: str, seen: dict[int, float]) -> AsyncIterator[None]:
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=_listen, args=(url, seen, stop, ready), daemon=True)
    thread.start()
    try:
        await asyncio.to_thread(ready.wait, 10.0)
        yield
    finally:
        stop.set()
        await asyncio.to_thread(thread.join)


async def cross_process(url: str, sizes: Sizes, progress: Progress) -> dict[str, Any]:
    visibility_progress(sizes, progress, "raw LISTEN")
    results: list[Visibility] = []
    for watcher in (store_observer, raw_listener):
        fresh_tables(url)
        results.append(await visibility(url, sizes, watcher))
    return visibility_figure(
        results[0], results[1], store_name="PgEventStore", watched_by="LISTEN/NOTIFY",
        baseline_desc="a raw psycopg connection in a thread LISTENing on the store's channel"
        f" ({CHANNEL!r}, notified by the child's commits) and reading position > last on each"
        " notification: the floor for a LISTENing reader",
    )


# ---------------------------------------------------------------------------
# The program
# ---------------------------------------------------------------------------


async def run_pg_store_bench(url: str, *, quick: bool, json_only: bool, size: str | None) -> int:
    """Every figure on the server `url` names; print the JSON object; 0 unless something broke."""
    sizes = SIZES[size or ("quick" if quick else "full")]
    progress = Progress(json_only)
    started = now()
    server = settings(url, "server_version", "synchronous_commit", "fsync", "wal_sync_method",
                      "shared_buffers", "max_connections")
    progress(f"PostgreSQL {server['server_version']} at {database_name(url)!r}'s server")
    dataset_url, dataset = await ensure_pg_dataset(url, sizes.dataset_events, progress)
    if not dataset["built_now"]:
        progress(f"using the {sizes.dataset_events:,}-event log kept in {dataset['database']}")
    with scratch_database(url) as scratch:
        # What the write figures' sessions, the store's included, commit with.
        server["scratch_database_synchronous_commit"] = settings(
            scratch, "synchronous_commit")["synchronous_commit"]
        throughput = await append_throughput(scratch, sizes, progress)
        latency = await append_latency(scratch, sizes, progress)
        visible = await cross_process(scratch, sizes, progress)
    read = await read_after(dataset_url, sizes, progress)
    search = await text_filter(dataset_url, sizes, progress)
    return store_report(
        quick, sizes, started, json_only,
        backend="postgresql",
        machine=machine_info(),
        server=server,
        dataset=dataset,
        figures={
            "append_throughput": throughput,
            "append_latency": latency,
            "read_after_1000": read,
            "text_filter_first_100": search,
            "cross_process_visibility": visible,
        },
    )
