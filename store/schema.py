"""The database schema: DDL, its version, and forward-only migrations.

`PRAGMA user_version` holds the schema version and `PRAGMA application_id`
marks the file as agentdeck's, so a foreign SQLite file is told apart from an
empty one before anything is written.
"""

from __future__ import annotations

import contextlib
import sqlite3

from store.errors import ForeignDatabase, NewerSchema

APPLICATION_ID = 0x41444B31  # "ADK1"

# Migration N brings a database from version N-1 to N. Never edit a released
# step: add a new one.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        # The log. `position` is declared so no VACUUM can renumber it; `at` is
        # UTC microseconds; `level` is derived from the kind (store.catalog.level_of).
        """
        CREATE TABLE events (
            position   INTEGER PRIMARY KEY,
            runtime_id TEXT    NOT NULL,
            seq        INTEGER NOT NULL,
            event_id   TEXT    NOT NULL UNIQUE,
            kind       TEXT    NOT NULL,
            level      INTEGER NOT NULL,
            worker_id  TEXT,
            run_id     TEXT,
            run_seq    INTEGER,
            message    TEXT    NOT NULL,
            payload    TEXT    NOT NULL,
            at         INTEGER NOT NULL,
            UNIQUE (runtime_id, seq)
        )
        """,
        "CREATE INDEX events_by_worker ON events (runtime_id, worker_id, position)"
        " WHERE worker_id IS NOT NULL",
        "CREATE INDEX events_by_run ON events (runtime_id, run_id, run_seq) WHERE run_id IS NOT NULL",
        "CREATE INDEX events_by_kind ON events (kind, position)",
        "CREATE INDEX events_by_level ON events (level, position) WHERE level > 0",
        # No index on `at`: times follow positions closely enough that a newest-first
        # scan answers after:/before: quickly, and every index costs each commit.
        # Projections: rebuilt from the log by `verify`, written with it.
        """
        CREATE TABLE runtimes (
            runtime_id   TEXT PRIMARY KEY,
            status       TEXT    NOT NULL,
            last_seq     INTEGER NOT NULL,
            display_name TEXT,
            limits       TEXT    NOT NULL,
            created_at   INTEGER NOT NULL,
            updated_at   INTEGER NOT NULL
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE workers (
            runtime_id         TEXT    NOT NULL,
            worker_id          TEXT    NOT NULL,
            worker_no          INTEGER NOT NULL,
            status             TEXT    NOT NULL,
            spec               TEXT    NOT NULL,
            transcript_len     INTEGER NOT NULL,
            queued             INTEGER NOT NULL,
            current_run_id     TEXT,
            current_run_status TEXT,
            terminal_event_id  TEXT,
            last_seq           INTEGER NOT NULL,
            created_at         INTEGER NOT NULL,
            updated_at         INTEGER NOT NULL,
            PRIMARY KEY (runtime_id, worker_id)
        ) WITHOUT ROWID
        """,
        "CREATE INDEX workers_by_no ON workers (runtime_id, worker_no)",
        """
        CREATE TABLE runs (
            runtime_id     TEXT    NOT NULL,
            run_id         TEXT    NOT NULL,
            worker_id      TEXT    NOT NULL,
            status         TEXT    NOT NULL,
            prompt         TEXT    NOT NULL,
            input_sequence INTEGER,
            result_text    TEXT,
            error          TEXT,
            last_run_seq   INTEGER NOT NULL,
            created_at     INTEGER NOT NULL,
            updated_at     INTEGER NOT NULL,
            PRIMARY KEY (runtime_id, run_id)
        ) WITHOUT ROWID
        """,
        "CREATE INDEX runs_by_worker ON runs (runtime_id, worker_id, created_at)",
        "CREATE INDEX runs_open ON runs (runtime_id, status) WHERE status NOT IN"
        " ('completed', 'failed', 'cancelled')",
        """
        CREATE TABLE transcript (
            runtime_id TEXT    NOT NULL,
            worker_id  TEXT    NOT NULL,
            sequence   INTEGER NOT NULL,
            role       TEXT    NOT NULL,
            content    TEXT    NOT NULL,
            event_id   TEXT    NOT NULL,
            run_id     TEXT,
            at         INTEGER NOT NULL,
            PRIMARY KEY (runtime_id, worker_id, sequence)
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE diagnostics (
            id         INTEGER PRIMARY KEY,
            runtime_id TEXT NOT NULL,
            severity   TEXT NOT NULL,
            code       TEXT NOT NULL,
            message    TEXT NOT NULL,
            worker_id  TEXT,
            event_id   TEXT NOT NULL,
            at         INTEGER NOT NULL
        )
        """,
        "CREATE INDEX diagnostics_by_runtime ON diagnostics (runtime_id, id)",
        # Operational state, not derived from the log: who hosts a runtime.
        """
        CREATE TABLE hosts (
            runtime_id   TEXT PRIMARY KEY,
            pid          INTEGER NOT NULL,
            host_name    TEXT    NOT NULL,
            token        TEXT    NOT NULL,
            started_at   INTEGER NOT NULL,
            heartbeat_at INTEGER NOT NULL
        ) WITHOUT ROWID
        """,
        # Free-text index, kept off the write path by the indexer (store.search).
        "CREATE VIRTUAL TABLE events_fts USING fts5"
        "(body, content='', tokenize='unicode61 remove_diacritics 0')",
        """
        CREATE TABLE search_state (
            id               INTEGER PRIMARY KEY CHECK (id = 1),
            indexed_position INTEGER NOT NULL
        )
        """,
        "INSERT INTO search_state (id, indexed_position) VALUES (1, 0)",
    ),
    2: (
        # The command inbox (store.catalog, "the command inbox"): one row per
        # `command.issued`, settled by its `command.completed` / `command.failed`.
        # A projection like the others: folded in the append's transaction, so
        # settling a command that is not pending refuses the whole append.
        """
        CREATE TABLE commands (
            command_id       TEXT    PRIMARY KEY,
            runtime_id       TEXT    NOT NULL,
            op               TEXT    NOT NULL,
            status           TEXT    NOT NULL,
            worker_id        TEXT,
            issued_position  INTEGER NOT NULL,
            outcome_position INTEGER,
            expires_at       INTEGER NOT NULL,
            issued_at        INTEGER NOT NULL,
            updated_at       INTEGER NOT NULL
        ) WITHOUT ROWID
        """,
        # A host's inbox: its runtime's pending commands in log order, and nothing
        # else (settled rows leave the index, so it stays the size of the backlog).
        "CREATE INDEX commands_pending ON commands (runtime_id, issued_position)"
        " WHERE status = 'pending'",
    ),
    3: (
        # Pictures (store.pictures). `activity`: events per runtime, second and
        # level, a projection the fold keeps in the append's transaction (one
        # upsert per key per batch), so the strip draws the last minutes from a few
        # hundred rows instead of counting the log. Backfilled from the log here.
        """
        CREATE TABLE activity (
            second     INTEGER NOT NULL,
            runtime_id TEXT    NOT NULL,
            level      INTEGER NOT NULL,
            events     INTEGER NOT NULL,
            PRIMARY KEY (second, runtime_id, level)
        ) WITHOUT ROWID
        """,
        "INSERT INTO activity (second, runtime_id, level, events)"
        " SELECT at / 1000000, runtime_id, level, count(*) FROM events GROUP BY 1, 2, 3",
        # Errors per minute over an hour read only the seconds that had errors: one
        # entry per runtime and erring second (an upsert of an existing row, which
        # changes only `events`, leaves it alone).
        "CREATE INDEX activity_errors ON activity (second) WHERE level = 2",
        # When a run reached its terminal state (the event that made it terminal);
        # NULL while it is open. Durations per profile and per worker read it.
        # The backfill picks what the fold (store.projector._run_status) sets: the
        # first terminal event after the run's run.created, in log order (terminal
        # states stick, and the fold ignores a run's events before it exists).
        # Pinned to the run's own events: without statistics the planner walked
        # every run.created of the log (events_by_kind) for each run.
        "ALTER TABLE runs ADD COLUMN ended_at INTEGER",
        """
        UPDATE runs SET ended_at = (
            SELECT e.at FROM events e INDEXED BY events_by_run
            WHERE e.runtime_id = runs.runtime_id AND e.run_id = runs.run_id
              AND e.kind IN ('run.completed', 'run.failed', 'run.cancelled')
              AND e.position > (
                SELECT min(c.position) FROM events c INDEXED BY events_by_run
                WHERE c.runtime_id = runs.runtime_id AND c.run_id = runs.run_id
                  AND c.kind = 'run.created')
            ORDER BY e.position LIMIT 1)
        WHERE status IN ('completed', 'failed', 'cancelled')
        """,
        # Covering (with the key, runtime_id and run_id, that every entry of a
        # WITHOUT ROWID table's index holds) what the fleet picture reads of the
        # runs that ended in the last hour. Written once per run: an ended run's
        # columns here never change again.
        "CREATE INDEX runs_by_end ON runs (ended_at, status, worker_id, created_at)"
        " WHERE ended_at IS NOT NULL",
        # Checkpoints of the fold (store.checkpoints): every N events, a header and,
        # in checkpoint_<table>, a version of each row of the mutable projections
        # that changed since the previous checkpoint (the table's columns, typed, so
        # loading one is an INSERT ... SELECT), so the state at a past position is
        # the newest version of each row at or before a checkpoint, plus a fold of
        # the events after it. A migration adding a column to runtimes, workers,
        # runs or commands adds it to its checkpoint table too.
        """
        CREATE TABLE checkpoints (
            position   INTEGER PRIMARY KEY,
            rows       INTEGER NOT NULL,
            digest     TEXT    NOT NULL,
            written_at INTEGER NOT NULL
        )
        """,
        """
        CREATE TABLE checkpoint_runtimes (
            position INTEGER NOT NULL,
            runtime_id TEXT NOT NULL,
            status TEXT,
            last_seq INTEGER,
            display_name TEXT,
            limits TEXT,
            created_at INTEGER,
            updated_at INTEGER,
            digest TEXT NOT NULL,
            PRIMARY KEY (runtime_id, position)
        ) WITHOUT ROWID
        """,
        "CREATE INDEX checkpoint_runtimes_at ON checkpoint_runtimes (position)",
        """
        CREATE TABLE checkpoint_workers (
            position INTEGER NOT NULL,
            runtime_id TEXT NOT NULL,
            worker_id TEXT NOT NULL,
            worker_no INTEGER,
            status TEXT,
            spec TEXT,
            transcript_len INTEGER,
            queued INTEGER,
            current_run_id TEXT,
            current_run_status TEXT,
            terminal_event_id TEXT,
            last_seq INTEGER,
            created_at INTEGER,
            updated_at INTEGER,
            digest TEXT NOT NULL,
            PRIMARY KEY (runtime_id, worker_id, position)
        ) WITHOUT ROWID
        """,
        "CREATE INDEX checkpoint_workers_at ON checkpoint_workers (position)",
        """
        CREATE TABLE checkpoint_runs (
            position INTEGER NOT NULL,
            runtime_id TEXT NOT NULL,
            run_id TEXT NOT NULL,
            worker_id TEXT,
            status TEXT,
            prompt TEXT,
            input_sequence INTEGER,
            result_text TEXT,
            error TEXT,
            last_run_seq INTEGER,
            created_at INTEGER,
            updated_at INTEGER,
            ended_at INTEGER,
            digest TEXT NOT NULL,
            PRIMARY KEY (runtime_id, run_id, position)
        ) WITHOUT ROWID
        """,
        "CREATE INDEX checkpoint_runs_at ON checkpoint_runs (position)",
        """
        CREATE TABLE checkpoint_commands (
            position INTEGER NOT NULL,
            command_id TEXT NOT NULL,
            runtime_id TEXT,
            op TEXT,
            status TEXT,
            worker_id TEXT,
            issued_position INTEGER,
            outcome_position INTEGER,
            expires_at INTEGER,
            issued_at INTEGER,
            updated_at INTEGER,
            digest TEXT NOT NULL,
            PRIMARY KEY (command_id, position)
        ) WITHOUT ROWID
        """,
        "CREATE INDEX checkpoint_commands_at ON checkpoint_commands (position)",
    ),
}

LATEST_VERSION = max(MIGRATIONS)

# Projection tables, in the order verify compares them, with their sort keys.
PROJECTIONS: dict[str, str] = {
    "runtimes": "runtime_id",
    "workers": "runtime_id, worker_id",
    "runs": "runtime_id, run_id",
    "transcript": "runtime_id, worker_id, sequence",
    "diagnostics": "id",
    "commands": "command_id",
    "activity": "second, runtime_id, level",
}


def migrate(conn: sqlite3.Connection, current: int) -> None:
    """Bring the file to LATEST_VERSION in one transaction (all or nothing).

    `current` is the version the caller saw before taking the write lock.
    Another process may have migrated since (two consoles creating one new
    database at the same moment), so the marks are read again inside the
    transaction and only what is still missing is done.
    """
    if current >= LATEST_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        found = conn.execute("PRAGMA user_version").fetchone()[0]
        foreign = app_id != APPLICATION_ID and (
            app_id != 0
            or found != 0
            or conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] != 0
        )
        if foreign or found > LATEST_VERSION:
            # Changed by another program since the caller looked: refuse what
            # `prepare` would have refused, and alter nothing.
            file = conn.execute("PRAGMA database_list").fetchone()[2] or "the database"
            if foreign:
                raise ForeignDatabase(file)
            raise NewerSchema(file, found, LATEST_VERSION)
        if found < LATEST_VERSION:
            for version in range(found + 1, LATEST_VERSION + 1):
                for statement in MIGRATIONS[version]:
                    conn.execute(statement)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {LATEST_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        # SQLite rolls back by itself after some errors (SQLITE_FULL, IOERR, NOMEM);
        # a ROLLBACK then fails with "no transaction is active", and that error
        # must not replace the one that explains what happened.
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise


def create_projection_tables(conn: sqlite3.Connection) -> None:
    """The whole schema in a scratch database, for verify's in-memory rebuild."""
    for version in range(1, LATEST_VERSION + 1):
        for statement in MIGRATIONS[version]:
            conn.execute(statement)
