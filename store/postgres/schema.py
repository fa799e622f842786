"""The PostgreSQL schema: DDL, its version, and forward-only migrations.

The same tables and columns as store.schema (SQLite), so the shared fold
(store.projector) writes the same rows on both back ends and a projection
compares equal row for row. Types are PostgreSQL's: every integer is BIGINT
(positions, seqs and `at` microseconds overflow INTEGER), text stays TEXT
(payloads too, not JSONB, so a payload is kept byte for byte as written) and
is collated "C" (byte order, SQLite's BINARY): the queries both back ends
share (store.reader) then order text alike whatever the server's locale.

A table `agentdeck_meta` marks the database as agentdeck's
(`application = agentdeck`) and holds `schema_version`; a database with
tables but no marker is foreign and refused, untouched, and a newer version
is refused too. Migration N brings the database from version N-1 to N. Never
edit a released step: add a new one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg

from store.errors import NewerSchema
from store.postgres.errors import ForeignPgDatabase, safe_url, translate
from store.postgres.search import SEARCH_COLUMN, UNINDEXED, backfill

APPLICATION = "agentdeck"

# pg_advisory_xact_lock keys (any bigint; these spell "ADK" + purpose). The
# append lock serializes every transaction that appends to `events` (see
# store.postgres.writer); the migrate lock two processes creating one database.
APPEND_LOCK_KEY = 0x41444B_0001
MIGRATE_LOCK_KEY = 0x41444B_0002

Step = str | Callable[[psycopg.Connection[Any]], None]
"""A migration step: a statement, or a function running in the migration's transaction."""

MIGRATIONS: dict[int, tuple[Step, ...]] = {
    1: (
        """
        CREATE TABLE agentdeck_meta (
            key   TEXT COLLATE "C" PRIMARY KEY,
            value TEXT COLLATE "C" NOT NULL
        )
        """,
        # The log. `position` is assigned by the writer under APPEND_LOCK_KEY (no
        # sequence: a sequence hands out numbers outside the commit order, which
        # is what makes holes visible to readers).
        """
        CREATE TABLE events (
            position   BIGINT  PRIMARY KEY,
            runtime_id TEXT COLLATE "C"    NOT NULL,
            seq        BIGINT  NOT NULL,
            event_id   TEXT COLLATE "C"    NOT NULL UNIQUE,
            kind       TEXT COLLATE "C"    NOT NULL,
            level      INTEGER NOT NULL,
            worker_id  TEXT COLLATE "C",
            run_id     TEXT COLLATE "C",
            run_seq    BIGINT,
            message    TEXT COLLATE "C"    NOT NULL,
            payload    TEXT COLLATE "C"    NOT NULL,
            at         BIGINT  NOT NULL,
            UNIQUE (runtime_id, seq)
        )
        """,
        "CREATE INDEX events_by_worker ON events (runtime_id, worker_id, position)"
        " WHERE worker_id IS NOT NULL",
        "CREATE INDEX events_by_run ON events (runtime_id, run_id, run_seq) WHERE run_id IS NOT NULL",
        "CREATE INDEX events_by_kind ON events (kind, position)",
        "CREATE INDEX events_by_level ON events (level, position) WHERE level > 0",
        """
        CREATE TABLE runtimes (
            runtime_id   TEXT COLLATE "C" PRIMARY KEY,
            status       TEXT COLLATE "C"   NOT NULL,
            last_seq     BIGINT NOT NULL,
            display_name TEXT COLLATE "C",
            limits       TEXT COLLATE "C"   NOT NULL,
            created_at   BIGINT NOT NULL,
            updated_at   BIGINT NOT NULL
        )
        """,
        """
        CREATE TABLE workers (
            runtime_id         TEXT COLLATE "C"   NOT NULL,
            worker_id          TEXT COLLATE "C"   NOT NULL,
            worker_no          BIGINT NOT NULL,
            status             TEXT COLLATE "C"   NOT NULL,
            spec               TEXT COLLATE "C"   NOT NULL,
            transcript_len     BIGINT NOT NULL,
            queued             BIGINT NOT NULL,
            current_run_id     TEXT COLLATE "C",
            current_run_status TEXT COLLATE "C",
            terminal_event_id  TEXT COLLATE "C",
            last_seq           BIGINT NOT NULL,
            created_at         BIGINT NOT NULL,
            updated_at         BIGINT NOT NULL,
            PRIMARY KEY (runtime_id, worker_id)
        )
        """,
        "CREATE INDEX workers_by_no ON workers (runtime_id, worker_no)",
        """
        CREATE TABLE runs (
            runtime_id     TEXT COLLATE "C"   NOT NULL,
            run_id         TEXT COLLATE "C"   NOT NULL,
            worker_id      TEXT COLLATE "C"   NOT NULL,
            status         TEXT COLLATE "C"   NOT NULL,
            prompt         TEXT COLLATE "C"   NOT NULL,
            input_sequence BIGINT,
            result_text    TEXT COLLATE "C",
            error          TEXT COLLATE "C",
            last_run_seq   BIGINT NOT NULL,
            created_at     BIGINT NOT NULL,
            updated_at     BIGINT NOT NULL,
            PRIMARY KEY (runtime_id, run_id)
        )
        """,
        "CREATE INDEX runs_by_worker ON runs (runtime_id, worker_id, created_at)",
        "CREATE INDEX runs_open ON runs (runtime_id, status) WHERE status NOT IN"
        " ('completed', 'failed', 'cancelled')",
        """
        CREATE TABLE transcript (
            runtime_id TEXT COLLATE "C"   NOT NULL,
            worker_id  TEXT COLLATE "C"   NOT NULL,
            sequence   BIGINT NOT NULL,
            role       TEXT COLLATE "C"   NOT NULL,
            content    TEXT COLLATE "C"   NOT NULL,
            event_id   TEXT COLLATE "C"   NOT NULL,
            run_id     TEXT COLLATE "C",
            at         BIGINT NOT NULL,
            PRIMARY KEY (runtime_id, worker_id, sequence)
        )
        """,
        # `id` is the event's position (set by the fold), not a serial.
        """
        CREATE TABLE diagnostics (
            id         BIGINT PRIMARY KEY,
            runtime_id TEXT COLLATE "C"   NOT NULL,
            severity   TEXT COLLATE "C"   NOT NULL,
            code       TEXT COLLATE "C"   NOT NULL,
            message    TEXT COLLATE "C"   NOT NULL,
            worker_id  TEXT COLLATE "C",
            event_id   TEXT COLLATE "C"   NOT NULL,
            at         BIGINT NOT NULL
        )
        """,
        "CREATE INDEX diagnostics_by_runtime ON diagnostics (runtime_id, id)",
        # Operational state, not derived from the log: who hosts a runtime.
        """
        CREATE TABLE hosts (
            runtime_id   TEXT COLLATE "C" PRIMARY KEY,
            pid          BIGINT NOT NULL,
            host_name    TEXT COLLATE "C"   NOT NULL,
            token        TEXT COLLATE "C"   NOT NULL,
            started_at   BIGINT NOT NULL,
            heartbeat_at BIGINT NOT NULL
        )
        """,
        # No free-text index yet: SQLite's events_fts / search_state have no
        # counterpart here. Free words on PostgreSQL (a tsvector index giving the
        # same answers as FTS5's unicode61 tokenizer) come in a later migration.
    ),
    2: (
        # The command inbox, as in store.schema migration 2.
        """
        CREATE TABLE commands (
            command_id       TEXT COLLATE "C"   PRIMARY KEY,
            runtime_id       TEXT COLLATE "C"   NOT NULL,
            op               TEXT COLLATE "C"   NOT NULL,
            status           TEXT COLLATE "C"   NOT NULL,
            worker_id        TEXT COLLATE "C",
            issued_position  BIGINT NOT NULL,
            outcome_position BIGINT,
            expires_at       BIGINT NOT NULL,
            issued_at        BIGINT NOT NULL,
            updated_at       BIGINT NOT NULL
        )
        """,
        "CREATE INDEX commands_pending ON commands (runtime_id, issued_position)"
        " WHERE status = 'pending'",
    ),
    3: (
        # Free-text search (store.postgres.search): each event's FTS5 tokens as a
        # tsvector the writer fills at append, under a GIN index. The default is
        # the UNINDEXED lexeme, which queries recheck row by row: a row inserted
        # without the column is still found, only slower. Adding a column with
        # a constant default rewrites nothing; the backfill then fills the
        # existing rows (in Python: the tokens are FTS5's, not PostgreSQL's),
        # and the index is built once over the filled column.
        f"ALTER TABLE events ADD COLUMN {SEARCH_COLUMN} tsvector NOT NULL"
        f" DEFAULT array_to_tsvector(ARRAY['{UNINDEXED}'])",
        backfill,
        f"CREATE INDEX events_search ON events USING gin ({SEARCH_COLUMN})",
        # `worker:w-7` in a filter names no runtime, and events_by_worker leads with
        # it: without this, "worker:w-7 failed" walked the log newest first (130 ms
        # at 1M events, 20 ms with it). One more B-tree entry an append with a worker.
        "CREATE INDEX events_by_worker_id ON events (worker_id, position)"
        " WHERE worker_id IS NOT NULL",
    ),
    4: (
        # Pictures and checkpoints, as in store.schema migration 3.
        """
        CREATE TABLE activity (
            second     BIGINT  NOT NULL,
            runtime_id TEXT COLLATE "C" NOT NULL,
            level      INTEGER NOT NULL,
            events     BIGINT  NOT NULL,
            PRIMARY KEY (second, runtime_id, level)
        )
        """,
        "INSERT INTO activity (second, runtime_id, level, events)"
        " SELECT at / 1000000, runtime_id, level, count(*) FROM events GROUP BY 1, 2, 3",
        "CREATE INDEX activity_errors ON activity (second) WHERE level = 2",
        "ALTER TABLE runs ADD COLUMN ended_at BIGINT",
        """
        UPDATE runs SET ended_at = (
            SELECT e.at FROM events e
            WHERE e.runtime_id = runs.runtime_id AND e.run_id = runs.run_id
              AND e.kind IN ('run.completed', 'run.failed', 'run.cancelled')
              AND e.position > (
                SELECT c.position FROM events c
                WHERE c.runtime_id = runs.runtime_id AND c.run_id = runs.run_id
                  AND c.kind = 'run.created'
                ORDER BY c.position LIMIT 1)
            ORDER BY e.position LIMIT 1)
        WHERE status IN ('completed', 'failed', 'cancelled')
        """,
        "CREATE INDEX runs_by_end ON runs (ended_at, status, runtime_id, worker_id, created_at)"
        " WHERE ended_at IS NOT NULL",
        """
        CREATE TABLE checkpoints (
            position   BIGINT PRIMARY KEY,
            rows       BIGINT NOT NULL,
            digest     TEXT COLLATE "C" NOT NULL,
            written_at BIGINT NOT NULL
        )
        """,
        """
        CREATE TABLE checkpoint_runtimes (
            position BIGINT NOT NULL,
            runtime_id TEXT COLLATE "C" NOT NULL,
            status TEXT COLLATE "C",
            last_seq BIGINT,
            display_name TEXT COLLATE "C",
            limits TEXT COLLATE "C",
            created_at BIGINT,
            updated_at BIGINT,
            digest TEXT COLLATE "C" NOT NULL,
            PRIMARY KEY (runtime_id, position)
        )
        """,
        "CREATE INDEX checkpoint_runtimes_at ON checkpoint_runtimes (position)",
        """
        CREATE TABLE checkpoint_workers (
            position BIGINT NOT NULL,
            runtime_id TEXT COLLATE "C" NOT NULL,
            worker_id TEXT COLLATE "C" NOT NULL,
            worker_no BIGINT,
            status TEXT COLLATE "C",
            spec TEXT COLLATE "C",
            transcript_len BIGINT,
            queued BIGINT,
            current_run_id TEXT COLLATE "C",
            current_run_status TEXT COLLATE "C",
            terminal_event_id TEXT COLLATE "C",
            last_seq BIGINT,
            created_at BIGINT,
            updated_at BIGINT,
            digest TEXT COLLATE "C" NOT NULL,
            PRIMARY KEY (runtime_id, worker_id, position)
        )
        """,
        "CREATE INDEX checkpoint_workers_at ON checkpoint_workers (position)",
        """
        CREATE TABLE checkpoint_runs (
            position BIGINT NOT NULL,
            runtime_id TEXT COLLATE "C" NOT NULL,
            run_id TEXT COLLATE "C" NOT NULL,
            worker_id TEXT COLLATE "C",
            status TEXT COLLATE "C",
            prompt TEXT COLLATE "C",
            input_sequence BIGINT,
            result_text TEXT COLLATE "C",
            error TEXT COLLATE "C",
            last_run_seq BIGINT,
            created_at BIGINT,
            updated_at BIGINT,
            ended_at BIGINT,
            digest TEXT COLLATE "C" NOT NULL,
            PRIMARY KEY (runtime_id, run_id, position)
        )
        """,
        "CREATE INDEX checkpoint_runs_at ON checkpoint_runs (position)",
        """
        CREATE TABLE checkpoint_commands (
            position BIGINT NOT NULL,
            command_id TEXT COLLATE "C" NOT NULL,
            runtime_id TEXT COLLATE "C",
            op TEXT COLLATE "C",
            status TEXT COLLATE "C",
            worker_id TEXT COLLATE "C",
            issued_position BIGINT,
            outcome_position BIGINT,
            expires_at BIGINT,
            issued_at BIGINT,
            updated_at BIGINT,
            digest TEXT COLLATE "C" NOT NULL,
            PRIMARY KEY (command_id, position)
        )
        """,
        "CREATE INDEX checkpoint_commands_at ON checkpoint_commands (position)",
    ),
}

LATEST_VERSION = max(MIGRATIONS)


def schema_version(conn: psycopg.Connection[Any], url: str) -> int:
    """The database's agentdeck schema version: 0 for an empty database.

    Raises ForeignPgDatabase (tables in the current schema, no marker, or a
    marker naming another application) and NewerSchema. Reads only.
    """
    marker = conn.execute("SELECT to_regclass('agentdeck_meta') IS NOT NULL").fetchone()
    if marker is None or not marker[0]:
        tables = conn.execute(
            "SELECT count(*) FROM pg_catalog.pg_class c"
            " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'f')"
        ).fetchone()
        if tables is not None and tables[0]:
            raise ForeignPgDatabase(url)
        return 0
    meta = dict(conn.execute("SELECT key, value FROM agentdeck_meta").fetchall())
    if meta.get("application") != APPLICATION:
        raise ForeignPgDatabase(url)
    try:
        found = int(meta.get("schema_version", ""))
    except ValueError:
        raise ForeignPgDatabase(url) from None
    if found > LATEST_VERSION:
        raise NewerSchema(safe_url(url), found, LATEST_VERSION)
    return found


def migrate(conn: psycopg.Connection[Any], url: str = "the database") -> int:
    """Bring the database to LATEST_VERSION in one transaction (all or nothing); return it.

    `conn` must be idle (no transaction open); it is left idle. A
    transaction-scoped advisory lock makes two processes creating one database
    at the same moment take turns: the second finds the work done. A foreign
    or newer database is refused (ForeignPgDatabase, NewerSchema) and left as
    it was. Other server errors come as store errors (store.postgres.errors).
    """
    try:
        with conn.transaction():
            # READ COMMITTED whatever the server's default, so what is read after the
            # lock includes the work of a process that held it before us.
            conn.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK_KEY,))
            found = schema_version(conn, url)
            if found < LATEST_VERSION:
                for version in range(found + 1, LATEST_VERSION + 1):
                    for step in MIGRATIONS[version]:
                        if callable(step):
                            step(conn)
                        else:
                            conn.execute(step)
                conn.execute(
                    "INSERT INTO agentdeck_meta (key, value) VALUES"
                    " ('application', %s), ('schema_version', %s)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (APPLICATION, str(LATEST_VERSION)),
                )
        return LATEST_VERSION
    except psycopg.Error as exc:
        raise translate(exc, url) from None
