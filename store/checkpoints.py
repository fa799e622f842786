"""Checkpoints of the fold: the mutable projections every N events, so the past opens fast.

The projections are a fold over the log (store.projector); the state at a past
position P is that fold up to P. Folding a million events takes half a minute,
so a follower (`Checkpointer`, off the write path like the free-text indexer,
store.search) keeps a fold of its own and, at every position k*N, writes the
rows of `runtimes`, `workers`, `runs` and `commands` that changed since the
previous checkpoint: one version per changed row in `checkpoint_<table>` (the
table's own columns, typed, plus position and digest) and a `checkpoints`
header, as one writer job. The state at a checkpoint C is, for each row key,
the newest version at a position <= C; the past at P is that state for the
newest good checkpoint <= P, plus a fold of the events after it
(store.past_view). `transcript`, `diagnostics` and `activity` are never
rewritten by the fold (append-only, or counted per second), so they are not
checkpointed: a past view reads them from the store itself, cut at P.

N (EVERY): 10,000 events. Opening the past costs loading a checkpoint (every
run, worker, runtime and command that existed then: ~55k rows at 1M events,
~0.3 s as INSERT ... SELECT with the digest checked per row) plus folding at
most N-1 events (~30k events/s into an in-memory scratch here, so <= ~0.35 s):
inside the 1 s goal at 1M events. A smaller N buys little (loading dominates,
and it grows with the log, not with N) and writes every busy worker's row more
often; a larger N makes the fold part grow linearly (N = 50,000: ~1.7 s).
Tests set AGENTDECK_CHECKPOINT_EVERY to a small N.

Damage. Every version carries a digest (blake2b of its table, position and
values) and every header one of its position, the previous header's position
and its row count. Loading checks the headers as a chain (each one names the
header before it, so a header deleted with its rows is seen), the row count of
each checkpoint (a deleted row, or rows left without a header) and the digest
of every version it uses; a checkpoint that fails is never trusted: the past
falls back to the good one before it (or to position 0). The follower checks
the chain when it starts and then every digest, a window at a time, and
deletes a damaged checkpoint and all those after it, then writes them again.
`verify` checks every checkpoint against its own fold (store.verify).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from store.codec import plain_value
from store.follower import Follower
from store.projector import STORED_COLUMNS, Connection, Row, fold_rows, stored_row
from store.schema import create_projection_tables

T = TypeVar("T")

DEFAULT_EVERY = 10_000
EVERY_VARIABLE = "AGENTDECK_CHECKPOINT_EVERY"


def every() -> int:
    """N: a checkpoint at every multiple of it (AGENTDECK_CHECKPOINT_EVERY, for tests)."""
    text = os.environ.get(EVERY_VARIABLE, "")
    try:
        value = int(text)
    except ValueError:
        return DEFAULT_EVERY
    return value if value > 0 else DEFAULT_EVERY


# The projections the fold rewrites, each with its key columns. The others are
# append-only and read from the store itself, cut at the past position.
TABLES: dict[str, tuple[str, ...]] = {
    "runtimes": ("runtime_id",),
    "workers": ("runtime_id", "worker_id"),
    "runs": ("runtime_id", "run_id"),
    "commands": ("command_id",),
}
UNCHECKPOINTED = ("transcript", "diagnostics", "activity")

FOLD_CHUNK = 2_000  # events folded per step: ~25 ms of the follower's thread
READ_CHUNK = 5_000  # events read per query when a view folds
SCAN_WINDOW = 100_000  # positions whose versions the follower checks per step


def checkpoint_table(tbl: str) -> str:
    """Where the versions of `tbl`'s rows are kept: its columns, plus position and digest."""
    return f"checkpoint_{tbl}"


def row_digest(tbl: str, position: int, values: Sequence[Any]) -> str:
    """The digest of one version: its table, position and values. `repr` of the tuple
    (ints, strs, None, as both back ends give them: store.codec.plain_value) is typed, so
    1 != '1', and costs one C call, not one per column."""
    text = f"{tbl}\x1f{position}\x1f{tuple(values)!r}"
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def header_digest(position: int, previous: int, rows: int) -> str:
    text = f"checkpoint\x00{position}\x00{previous}\x00{rows}"
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def new_scratch() -> sqlite3.Connection:
    """An in-memory database with the whole schema, for a fold of its own (URIs on, so a
    store's file can be attached to it read-only: `attach`)."""
    scratch = sqlite3.connect(
        ":memory:", isolation_level=None, check_same_thread=False, uri=True
    )
    create_projection_tables(scratch)
    return scratch


def attach(scratch: sqlite3.Connection, path: Path, busy_timeout_s: float = 5.0) -> None:
    """Attach the store's SQLite file to `scratch` as `src`, read-only (outside a transaction),
    so a checkpoint loads with INSERT ... SELECT, never through Python objects."""
    scratch.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
    scratch.execute("ATTACH DATABASE ? AS src", (path.absolute().as_uri() + "?mode=ro",))


_COLUMNS: dict[str, list[str]] = {}


def columns(scratch: sqlite3.Connection, tbl: str) -> list[str]:
    """`tbl`'s columns in the schema's order (a version holds the same, by name)."""
    if tbl not in _COLUMNS:
        _COLUMNS[tbl] = [
            str(r[1]) for r in scratch.execute(f"PRAGMA main.table_info({tbl})")
        ]
    return _COLUMNS[tbl]


def encode_key(values: Sequence[Any]) -> str:
    """A row's key as problems name it."""
    return json.dumps([plain_value(v) for v in values], ensure_ascii=False, separators=(",", ":"))


# -- the header chain --------------------------------------------------------------


@dataclass
class Chain:
    """The checkpoints at or below a limit that can be trusted, and where damage starts."""

    good: list[int] = field(default_factory=list)
    bad: int | None = None  # the first damaged checkpoint position (None: none found)
    problems: list[str] = field(default_factory=list)

    @property
    def newest(self) -> int:
        return self.good[-1] if self.good else 0


def read_chain(source: Connection, limit: int | None = None, schema: str = "") -> Chain:
    """Check the headers (<= `limit`) as a chain, and their row counts. `schema`: "src."
    when the store's file is attached to a scratch database."""
    where, params = ("WHERE position <= ?", (limit,)) if limit is not None else ("", ())
    headers = source.execute(
        f"SELECT position, rows, digest FROM {schema}checkpoints {where} ORDER BY position",
        params,
    ).fetchall()
    counts: dict[int, int] = {}
    for tbl in TABLES:
        for p, n in source.execute(
            f"SELECT position, count(*) FROM {schema}{checkpoint_table(tbl)} {where}"
            " GROUP BY position",
            params,
        ).fetchall():
            counts[int(p)] = counts.get(int(p), 0) + int(n)
    chain = Chain()
    previous = 0
    for position, rows, digest in headers:
        position, rows = int(position), int(rows)
        orphans = [p for p in counts if previous < p < position]
        if orphans:
            chain.bad = min(orphans)
            chain.problems.append(
                f"checkpoints: rows at position {chain.bad} have no checkpoint header"
            )
            return chain
        if digest != header_digest(position, previous, rows):
            chain.bad = position
            chain.problems.append(
                f"checkpoints: the header at position {position} does not match its digest"
                " (edited, or a checkpoint before it is missing)"
            )
            return chain
        found = counts.get(position, 0)
        if found != rows:
            chain.bad = position
            chain.problems.append(
                f"checkpoints: position {position} holds {found} rows but its header says {rows}"
            )
            return chain
        chain.good.append(position)
        previous = position
    orphans = [p for p in counts if p > previous]
    if orphans:
        chain.bad = min(orphans)
        chain.problems.append(f"checkpoints: rows at position {chain.bad} have no checkpoint header")
    return chain


# -- loading a checkpoint ------------------------------------------------------------


# What the follower keeps of a loaded checkpoint (`open_only`): the rows later events still
# change. An ended run moves only its bookkeeping (Fold._restore puts it back for that); a
# settled command never changes again.
_OPEN_ONLY = {
    "runs": "status NOT IN ('completed', 'failed', 'cancelled')",
    "commands": "status = 'pending'",
}


def load_state(
    source: Connection, scratch: sqlite3.Connection, limit: int, *, open_only: bool = False
) -> int:
    """Load into `scratch` (empty, inside a transaction) the newest good checkpoint at or
    below `limit`, reading it through `source`; return its position (0: none, the
    scratch stays empty).

    A version whose digest fails makes its checkpoint untrusted: the load starts
    again below it, so what is loaded has been checked end to end.
    """
    while True:
        at = read_chain(source, limit).newest
        if at == 0:
            return 0
        loaded: dict[str, list[Any]] = {}
        bad: int | None = None
        for tbl in TABLES:
            cols = columns(scratch, tbl)
            loaded[tbl] = []
            for found in _newest_versions(source, tbl, cols, at, open_only):
                position, values, digest = int(found[0]), found[1:-1], found[-1]
                if digest != row_digest(tbl, position, values):
                    bad = position if bad is None else min(bad, position)
                elif bad is None:
                    loaded[tbl].append(values)
        if bad is None:
            _with_indexes_after(scratch, partial(_insert_values, scratch, loaded))
            return at
        limit = bad - 1


def _newest_versions(
    source: Connection, tbl: str, cols: list[str], at: int, open_only: bool = False
) -> list[Any]:
    """(position, *values, digest) of the newest version of each `tbl` row at or below `at`
    (`open_only`: only those still open, _OPEN_ONLY, filtered on the newest version)."""
    names = ", ".join(cols)
    keys = ", ".join(TABLES[tbl])
    if isinstance(source, sqlite3.Connection):
        # SQLite's bare columns come from the row holding the max: one walk of the key.
        newest = (
            f"SELECT max(position) AS position, {names}, digest FROM {checkpoint_table(tbl)}"
            f" WHERE position <= ? GROUP BY {keys}"
        )
    else:
        newest = (
            f"SELECT DISTINCT ON ({keys}) position, {names}, digest FROM {checkpoint_table(tbl)}"
            f" WHERE position <= ? ORDER BY {keys}, position DESC"
        )
    if open_only and tbl in _OPEN_ONLY:
        newest = f"SELECT * FROM ({newest}) AS newest WHERE {_OPEN_ONLY[tbl]}"
    return [(r[0], *map(plain_value, r[1:-1]), r[-1]) for r in source.execute(newest, (at,)).fetchall()]


def _insert_values(scratch: sqlite3.Connection, loaded: dict[str, list[Any]]) -> None:
    for tbl, values in loaded.items():
        cols = columns(scratch, tbl)
        scratch.executemany(
            f"INSERT INTO main.{tbl} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
            values,
        )


def _with_indexes_after(scratch: sqlite3.Connection, load: Callable[[], None]) -> None:
    """Run `load` with the checkpointed tables' secondary indexes dropped, and make them
    again after: one build over sorted keys beats updating them row by row."""
    indexes = scratch.execute(
        "SELECT name, sql FROM main.sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        f" AND tbl_name IN ({', '.join('?' * len(TABLES))})",
        tuple(TABLES),
    ).fetchall()
    for name, _ in indexes:
        scratch.execute(f"DROP INDEX main.{name}")
    load()
    for _, sql in indexes:
        scratch.execute(sql)


def load_attached(scratch: sqlite3.Connection, limit: int) -> int:
    """`load_state` for a scratch with the store's file attached as `src` (`attach`):
    the same checks, but each table's newest versions go INSERT ... SELECT, in SQLite,
    the digest checked by a function called from the statement."""
    failed: list[int] = []

    def version_ok(tbl: str, position: int, digest: str, *values: Any) -> int:
        if digest == row_digest(tbl, position, values):
            return 1
        failed.append(position)
        return 0

    scratch.create_function("checkpoint_version_ok", -1, version_ok, deterministic=True)
    while True:
        at = read_chain(scratch, limit, schema="src.").newest
        if at == 0:
            return 0
        scratch.execute("SAVEPOINT checkpoint_load")

        def load(at: int = at) -> None:
            for tbl in TABLES:
                names = ", ".join(columns(scratch, tbl))
                # MATERIALIZED: the digest is checked once per newest version, on the
                # grouped rows (not pushed down into the grouping, once per candidate).
                scratch.execute(
                    f"WITH newest AS MATERIALIZED (SELECT max(position) AS version_at, {names},"
                    f" digest FROM src.{checkpoint_table(tbl)} WHERE position <= ?"
                    f" GROUP BY {', '.join(TABLES[tbl])})"
                    f" INSERT INTO main.{tbl} ({names}) SELECT {names} FROM newest"
                    f" WHERE checkpoint_version_ok(?, version_at, digest, {names})",
                    (at, tbl),
                )

        _with_indexes_after(scratch, load)
        if not failed:
            scratch.execute("RELEASE checkpoint_load")
            return at
        scratch.execute("ROLLBACK TO checkpoint_load")
        scratch.execute("RELEASE checkpoint_load")
        limit = min(failed) - 1
        failed.clear()


def first_damage(source: Connection) -> Chain:
    """The whole check (verify's, and the follower's in `catch_up`): the chain, then
    every version's digest."""
    chain = read_chain(source)
    bad = scan_versions(source, chain, 0, None)
    if bad is not None:
        chain.bad = bad
        chain.good = [p for p in chain.good if p < bad]
    return chain


def scan_versions(source: Connection, chain: Chain, after: int, upto: int | None) -> int | None:
    """Check the digest of every version at a position in (after, upto] (None: no end);
    return the first damaged position (counting the chain's own), adding problems."""
    bad = chain.bad
    where = "position > ?" + (" AND position <= ?" if upto is not None else "")
    params = (after,) if upto is None else (after, upto)
    probe = new_scratch()
    try:
        for tbl in TABLES:
            cols = columns(probe, tbl)
            for found in source.execute(
                f"SELECT position, {', '.join(cols)}, digest FROM {checkpoint_table(tbl)}"
                f" WHERE {where}",
                params,
            ).fetchall():
                position, values = int(found[0]), found[1:-1]
                if (bad is None or position < bad) and found[-1] != row_digest(
                    tbl, position, values
                ):
                    bad = position
                    key = encode_key([values[cols.index(k)] for k in TABLES[tbl]])
                    chain.problems.append(
                        f"checkpoints: the {tbl} row {key} at position {position} is damaged"
                    )
    finally:
        probe.close()
    return bad


@contextlib.contextmanager
def snapshot(source: Connection) -> Iterator[None]:
    """One read transaction on `source`: the headers and versions read inside it are of
    one moment, whatever a follower deletes or writes meanwhile (PostgreSQL connections
    are opened REPEATABLE READ for this; a SQLite read transaction is a snapshot)."""
    source.execute("BEGIN")
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            source.execute("COMMIT")


def fold_events(
    source: Connection,
    scratch: sqlite3.Connection,
    after: int,
    upto: int,
    restore: Callable[[list[Row]], None] | None = None,
) -> int:
    """Fold the events (after, upto] of `source` into `scratch`; return how many.
    `restore(rows)`, if given, runs before each read's rows are folded (the follower puts
    back the rows it pruned that those events touch)."""
    done = 0
    while after < upto:
        raw = source.execute(
            f"SELECT {STORED_COLUMNS} FROM events WHERE position > ? AND position <= ?"
            " ORDER BY position LIMIT ?",
            (after, upto, READ_CHUNK),
        ).fetchall()
        if not raw:
            break
        rows = [stored_row(r) for r in raw]
        if restore is not None:
            restore(rows)
        # The fold without the `activity` rollup: neither checkpoints nor the past keep it.
        fold_rows(scratch, rows)
        done += len(rows)
        after = rows[-1].position
    return done


# -- the follower -------------------------------------------------------------------


def _dirty_triggers(scratch: sqlite3.Connection) -> None:
    """Record in `dirty` every key of a checkpointed table the fold inserts or updates
    (exact, whatever the statement: runtime.stopped updates many workers at once)."""
    scratch.execute(
        "CREATE TABLE dirty (tbl TEXT NOT NULL, k1 TEXT NOT NULL, k2 TEXT NOT NULL,"
        " PRIMARY KEY (tbl, k1, k2)) WITHOUT ROWID"
    )
    for tbl, keys in TABLES.items():
        k1 = f"NEW.{keys[0]}"
        k2 = f"NEW.{keys[1]}" if len(keys) > 1 else "''"
        for event in ("INSERT", "UPDATE"):
            scratch.execute(
                f"CREATE TRIGGER dirty_{tbl}_{event.lower()} AFTER {event} ON {tbl} BEGIN"
                f" INSERT OR IGNORE INTO dirty (tbl, k1, k2) VALUES ('{tbl}', {k1}, {k2}); END"
            )


def _changed(scratch: sqlite3.Connection, tbl: str) -> list[Any]:
    """The rows of `tbl` whose keys are in `dirty` (in key order)."""
    keys = TABLES[tbl]
    on = " AND ".join([f"t.{keys[0]} = d.k1"] + ([f"t.{keys[1]} = d.k2"] if len(keys) > 1 else []))
    names = ", ".join("t." + c for c in columns(scratch, tbl))
    return scratch.execute(
        f"SELECT {names} FROM dirty d JOIN main.{tbl} t ON {on} WHERE d.tbl = ?"
        " ORDER BY d.k1, d.k2",
        (tbl,),
    ).fetchall()


@dataclass
class Pending:
    """A checkpoint folded and ready to write: per table, its columns and versions."""

    position: int
    versions: dict[str, tuple[list[str], list[tuple[Any, ...]]]]

    @property
    def rows(self) -> int:
        return sum(len(v) for _, v in self.versions.values())


def newest_checkpoint(conn: Connection) -> int:
    """The position of the newest checkpoint header (0: none)."""
    return int(conn.execute("SELECT coalesce(max(position), 0) FROM checkpoints").fetchone()[0])


def write_checkpoint(conn: Connection, pending: Pending) -> bool:
    """The writer job: the versions and the header, unless a checkpoint at or after this
    position is already there (another process wrote it): then nothing, False."""
    newest = newest_checkpoint(conn)
    if newest >= pending.position:
        return False
    for tbl, (cols, versions) in pending.versions.items():
        if versions:
            names = ", ".join(["position", *cols, "digest"])
            conn.executemany(
                f"INSERT INTO {checkpoint_table(tbl)} ({names})"
                f" VALUES ({', '.join('?' * (len(cols) + 2))})",
                versions,
            )
    conn.execute(
        "INSERT INTO checkpoints (position, rows, digest, written_at) VALUES (?, ?, ?, ?)",
        (pending.position, pending.rows,
         header_digest(pending.position, newest, pending.rows), int(time.time() * 1e6)),
    )
    return True


def delete_from(conn: Connection, position: int) -> None:
    """The writer job that drops the checkpoints at and after a damaged one."""
    for tbl in TABLES:
        conn.execute(f"DELETE FROM {checkpoint_table(tbl)} WHERE position >= ?", (position,))
    conn.execute("DELETE FROM checkpoints WHERE position >= ?", (position,))


class Fold:
    """The follower's own fold (in its own thread): the checkpointed tables and which
    of their rows changed since the last checkpoint."""

    def __init__(self, connect: Callable[[], Connection], close: Callable[[Connection], None],
                 n: int) -> None:
        self._connect = connect
        self._close = close
        self.n = n
        self.source: Connection | None = None
        self.scratch: sqlite3.Connection | None = None
        self.position = 0  # the fold is the state just after this position
        self.loaded_from = 0  # the checkpoint it last started from (0: the first event)
        self.damage: Chain = Chain()
        self.pruned_at: int | None = None  # the checkpoint the last prune stood at

    def open(self) -> None:
        """Connect, check the chain (cheap: headers and counts) and load the newest good
        checkpoint; the digests of all versions are checked after, a window at a time
        (`scan`), so a store opens without that wait."""
        self.source = self._connect()
        with snapshot(self.source):
            self.damage = read_chain(self.source)
        self.reload(self.damage.bad - 1 if self.damage.bad is not None else None)

    def scan(self, after: int, upto: int) -> int | None:
        """The first damaged version in (after, upto], or None."""
        assert self.source is not None
        with snapshot(self.source):
            return scan_versions(self.source, Chain(), after, upto)

    def reload(self, limit: int | None) -> None:
        """Start again from the newest good checkpoint (<= limit; None: any)."""
        assert self.source is not None
        if self.scratch is not None:
            self.scratch.close()
        self.scratch = new_scratch()
        _dirty_triggers(self.scratch)
        self.pruned_at = None
        if limit is None:
            limit = newest_checkpoint(self.source)
        self.scratch.execute("BEGIN")
        with snapshot(self.source):
            # Only the open work: a checkpoint of a long history holds every run there ever
            # was, and loading them all (to prune them at once) made a lagging console's
            # memory jump each time it adopted a newer checkpoint.
            self.position = self.loaded_from = load_state(
                self.source, self.scratch, limit, open_only=True
            )
        self.scratch.execute("DELETE FROM dirty")
        self.scratch.execute("COMMIT")
        if self.position:
            self.pruned_at = self.position  # what was left out is put back as _restore does

    def check(self) -> Chain:
        assert self.source is not None
        with snapshot(self.source):
            return read_chain(self.source)

    def newest_header(self) -> int:
        assert self.source is not None
        return newest_checkpoint(self.source)

    def close(self) -> None:
        if self.scratch is not None:
            self.scratch.close()
            self.scratch = None
        if self.source is not None:
            with contextlib.suppress(Exception):
                self._close(self.source)
            self.source = None

    def step(self, chunk: int = FOLD_CHUNK) -> tuple[Pending | None, bool]:
        """Fold up to `chunk` events, never past the next checkpoint position; return the
        checkpoint if one is now due, and whether more events are waiting."""
        assert self.source is not None and self.scratch is not None
        newest_written = newest_checkpoint(self.source)
        if newest_written >= self.position + 2 * self.n:
            # Another process is ahead: adopt its checkpoint rather than fold to it.
            self.reload(newest_written)
        last = int(self.source.execute(
            "SELECT coalesce(max(position), 0) FROM events").fetchone()[0])
        target = (self.position // self.n + 1) * self.n
        upto = min(self.position + chunk, target, last)
        if upto <= self.position:
            return None, False
        self._prune()
        self.scratch.execute("BEGIN")
        try:
            fold_events(self.source, self.scratch, self.position, upto, self._restore)
            # Not needed for a checkpoint, and never read back: keep the scratch small.
            for tbl in UNCHECKPOINTED:
                self.scratch.execute(f"DELETE FROM {tbl}")
        except _DamagedVersion as damaged:
            self.scratch.execute("ROLLBACK")
            # Never fold on from a damaged version: start again below it.
            self.reload(damaged.position - 1)
            return None, True
        except BaseException:
            self.scratch.execute("ROLLBACK")
            raise
        self.scratch.execute("COMMIT")
        self.position = upto
        pending = self._collect() if upto == target else None
        return pending, upto < last

    def _prune(self) -> None:
        """Drop the rows no event changes any more but for bookkeeping (ended runs, settled
        commands), once a checkpoint holds them: the fold's memory then follows the open
        work, not the whole history (a host's follower runs for weeks).

        Only at a checkpoint this fold collected or loaded, with nothing changed since
        (`dirty` empty) and that checkpoint in the store: then every row here has its
        value as its newest version at or before it, which `_restore` reads back.
        """
        assert self.source is not None and self.scratch is not None
        at = self.position
        if at == 0 or at % self.n or self.pruned_at == at:
            return
        if self.scratch.execute("SELECT 1 FROM dirty LIMIT 1").fetchone() is not None:
            return
        written = self.source.execute(
            "SELECT 1 FROM checkpoints WHERE position = ?", (at,)
        ).fetchone()
        if written is None:
            return  # not (yet) in the store: keep everything until one is
        self.scratch.execute("BEGIN")
        self.scratch.execute(
            "DELETE FROM runs WHERE status IN ('completed', 'failed', 'cancelled')"
        )
        self.scratch.execute("DELETE FROM commands WHERE status <> 'pending'")
        self.scratch.execute("COMMIT")
        self.pruned_at = at

    def _restore(self, rows: list[Row]) -> None:
        """Put back the pruned runs that `rows` touch (a late event of an ended run still
        moves its bookkeeping), from their newest version at or before the prune."""
        if self.pruned_at is None:
            return
        assert self.source is not None and self.scratch is not None
        first: dict[tuple[str, str], str] = {}
        for row in rows:
            if row.run_id is not None:
                first.setdefault((row.runtime_id, row.run_id), row.kind)
        cols = columns(self.scratch, "runs")
        for key, kind in first.items():
            if kind == "run.created":
                continue  # a new run: nothing to restore
            if self.scratch.execute(
                "SELECT 1 FROM runs WHERE runtime_id = ? AND run_id = ?", key
            ).fetchone() is not None:
                continue  # still open, or restored already
            found = self.source.execute(
                f"SELECT position, {', '.join(cols)}, digest FROM {checkpoint_table('runs')}"
                " WHERE runtime_id = ? AND run_id = ? AND position <= ?"
                " ORDER BY position DESC LIMIT 1",
                (*key, self.pruned_at),
            ).fetchone()
            if found is None:
                continue  # never a row (an event naming a run that was never created)
            position, values = int(found[0]), tuple(found[1:-1])
            if found[-1] != row_digest("runs", position, values):
                raise _DamagedVersion(position)
            self.scratch.execute(
                f"INSERT INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                values,
            )
            # Put back, not changed: the fold marks it again if the event changes it.
            self.scratch.execute(
                "DELETE FROM dirty WHERE tbl = 'runs' AND k1 = ? AND k2 = ?", key
            )

    def _collect(self) -> Pending:
        assert self.scratch is not None
        versions: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {}
        for tbl in TABLES:
            cols = columns(self.scratch, tbl)
            versions[tbl] = (cols, [
                (self.position, *values, row_digest(tbl, self.position, values))
                for values in _changed(self.scratch, tbl)
            ])
        self.scratch.execute("DELETE FROM dirty")
        return Pending(self.position, versions)


class _DamagedVersion(Exception):
    """A version read back to restore a pruned row fails its digest."""

    def __init__(self, position: int) -> None:
        super().__init__(f"checkpoint version at position {position} is damaged")
        self.position = position


class Checkpointer(Follower):
    """Keeps checkpoints written behind the log; appenders never wait for it.

    Its fold runs in a thread of its own, a chunk at a time, resting between
    chunks at least `rest` times as long as the chunk took (so it uses at most
    about 1/(1+rest) of a core while catching up and leaves the console its
    share); each checkpoint is one writer job (`run_job`).
    """

    TASK_NAME = "agentdeck-checkpoints"

    def __init__(
        self,
        connect: Callable[[], Connection],
        close: Callable[[Connection], None],
        run_job: Callable[[Callable[[Any], Any]], Awaitable[Any]],
        *,
        n: int | None = None,
        interval_s: float = 0.5,
        rest: float = 3.0,
    ) -> None:
        super().__init__(interval_s)
        self.n = n or every()
        self._fold = Fold(connect, close, self.n)
        self._run_job = run_job
        self._rest = rest
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agentdeck-ckpt")
        self._opened = False
        self._lock = asyncio.Lock()
        self._scanned = False  # every version's digest checked once since the store opened
        self._hurry = 0  # callers of catch_up waiting: no rest between chunks meanwhile
        self.written = 0  # checkpoints this follower wrote (tests, benchmarks)
        self.busy_s = 0.0  # time its thread spent folding and collecting (benchmarks)

    @property
    def position(self) -> int:
        return self._fold.position

    @property
    def loaded_from(self) -> int:
        """The checkpoint its fold last started from (0: the first event)."""
        return self._fold.loaded_from

    def rows_held(self) -> dict[str, int]:
        """Rows its fold holds per checkpointed table (tests, benchmarks: after a prune,
        the open work, not the history)."""
        scratch = self._fold.scratch
        if scratch is None:
            return dict.fromkeys(TABLES, 0)
        return {t: int(scratch.execute(f"SELECT count(*) FROM main.{t}").fetchone()[0])
                for t in TABLES}

    async def close(self) -> None:
        await self.stop()
        async with self._lock:
            await self._in_thread(self._fold.close)
        self._executor.shutdown(wait=True)

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def catch_up(self) -> None:
        """Check, repair and write every checkpoint due so far, unthrottled (tests, benchmarks)."""
        self._hurry += 1
        try:
            for attempt in (1, 2):
                async with self._lock:
                    try:
                        await self._open(check=True)
                        await self._advance(throttled=False)
                        return
                    except Exception:
                        # Perhaps the connection (a server that ended it): afresh, once.
                        await self._in_thread(self._fold.close)
                        self._opened = False
                        if attempt == 2:
                            raise
        finally:
            self._hurry -= 1

    async def _open(self, *, check: bool) -> None:
        if not self._opened:
            await self._in_thread(self._fold.open)
            self._opened = True
        elif check:
            self._fold.damage = await self._in_thread(self._fold.check)
        bad = self._fold.damage.bad
        if bad is None and (check or not self._scanned):
            # Every version's digest, a window at a time, resting between windows as
            # between fold steps: at 1M events that is ~100k versions, ~1 s of work.
            self._scanned = True
            newest = await self._in_thread(self._fold.newest_header)
            after = 0
            while after < newest and bad is None:
                upto = after + SCAN_WINDOW
                started = time.perf_counter()
                bad = await self._in_thread(self._fold.scan, after, upto)
                if not self._hurry:
                    await asyncio.sleep(max(0.001, (time.perf_counter() - started) * self._rest))
                after = upto
        if bad is not None:
            await self._run_job(partial(delete_from, position=bad))
            self._fold.damage = Chain()
            if self._fold.position >= bad:
                await self._in_thread(self._fold.reload, bad - 1)

    async def _advance(self, *, throttled: bool) -> None:
        while True:
            started = time.perf_counter()
            pending, more = await self._in_thread(self._fold.step)
            spent = time.perf_counter() - started
            self.busy_s += spent
            if pending is not None:
                try:
                    if await self._run_job(partial(write_checkpoint, pending=pending)):
                        self.written += 1
                except Exception:
                    # Not written (a full disk, the store closing): the changes it held
                    # are no longer marked, so start again from the newest checkpoint
                    # there is rather than write a later one that lacks them.
                    await self._in_thread(self._fold.reload, None)
                    raise
            if not more and pending is None:
                return
            if throttled and not self._hurry:
                await asyncio.sleep(max(0.001, spent * self._rest))

    async def _pass(self) -> None:
        try:
            async with self._lock:
                await self._open(check=False)
                await self._advance(throttled=True)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Checkpoints are an optimisation (the past folds further meanwhile). The
            # connection may be what failed (a server that ended it): start afresh.
            async with self._lock:
                await self._in_thread(self._fold.close)
                self._opened = False



# -- verify's check (store.verify) ----------------------------------------------------


class Audit:
    """Checks every checkpoint against verify's own fold, as the fold passes its position.

    Induction over the chain: at each header's position, every version written
    there must equal the fold's row, and every row the fold changed since the
    previous header must have a version there; then the state each checkpoint
    stands for (the newest version of each row) is the fold's state.
    """

    def __init__(self, source: Connection, scratch: sqlite3.Connection) -> None:
        self._source = source
        self._scratch = scratch
        chain = first_damage(source)
        self.problems: list[str] = list(chain.problems)
        self.stops = [
            int(r[0])
            for r in source.execute("SELECT position FROM checkpoints ORDER BY position").fetchall()
        ]
        _dirty_triggers(scratch)

    def check(self, position: int) -> None:
        """The fold stands just after `position`, a header's position."""
        scratch = self._scratch
        for tbl, keys in TABLES.items():
            cols = columns(scratch, tbl)
            at = [cols.index(k) for k in keys]
            written = {
                tuple(plain_value(r[i]) for i in at): tuple(map(plain_value, r))
                for r in self._source.execute(
                    f"SELECT {', '.join(cols)} FROM {checkpoint_table(tbl)} WHERE position = ?",
                    (position,),
                ).fetchall()
            }
            changed = {tuple(r[i] for i in at) for r in _changed(scratch, tbl)}
            for key, row in written.items():
                found = scratch.execute(
                    f"SELECT {', '.join(cols)} FROM main.{tbl} WHERE "
                    + " AND ".join(f"{k} = ?" for k in keys),
                    key,
                ).fetchone()
                if found is None or tuple(found) != row:
                    self.problems.append(
                        f"checkpoints: at position {position} the {tbl} row {encode_key(key)}"
                        " is not what the log implies there"
                    )
            for key in sorted(changed - written.keys()):
                self.problems.append(
                    f"checkpoints: at position {position} the {tbl} row {encode_key(key)}"
                    " changed but the checkpoint lacks it"
                )
        scratch.execute("DELETE FROM dirty")
