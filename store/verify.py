"""`verify`: rebuild every projection from the log and compare; check sequences.

The rebuild runs the writer's own fold (store.projector) over the log into a
scratch in-memory database with the same schema, so "projection equals the
log" is checked by construction rather than by a second implementation. The
checkpoints of the fold (store.checkpoints) are checked on the way: the rebuild
stops at each one's position and compares (store.checkpoints.Audit).

An observer does not migrate, so the database may be at an older schema: a
table it lacks is not compared (nor the checkpoints, if it has none), and a
column it lacks (runs.ended_at before schema 3) is left out of the comparison.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from store import catalog
from store.checkpoints import TABLES as CHECKPOINTED
from store.checkpoints import Audit, checkpoint_table
from store.codec import normal_row
from store.database import OpenOptions, close_quietly, open_reader, prepare, translate
from store.errors import CommandAlreadySettled, InvalidEvent
from store.open import is_server_address
from store.projector import (
    INSERT_EVENT,
    STORED_COLUMNS,
    Connection,
    Row,
    project,
    row_payload,
    stored_row,
)
from store.schema import PROJECTIONS, create_projection_tables

CHUNK = 5000
MAX_REPORTED = 20
CHECKPOINT_PROBLEM = "checkpoints: "
"""How every problem found in the checkpoints (store.checkpoints) begins."""


@dataclass
class VerifyReport:
    events: int = 0
    runtimes: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if self.ok:
            return f"ok: {self.events} events in {self.runtimes} runtimes, projections match the log"
        text = f"{len(self.problems)} problem(s) in {self.events} events"
        if all(p.startswith(CHECKPOINT_PROBLEM) for p in self.problems):
            # A checkpoint is a cache of the fold, never trusted when damaged: say so,
            # and what mends it, rather than send the operator to a backup.
            text += (
                ", all in checkpoints (the log and the projections are sound): the next"
                " console, host or demo that writes to this database rewrites them"
            )
        return text


def verify_file(path: Path, options: OpenOptions | None = None) -> VerifyReport:
    """Check the database at `path` (synchronous; run it in a thread from async code)."""
    options = options or OpenOptions(read_only=True)
    source = open_reader(path, options)
    try:
        # One read transaction for the whole check, so a live writer cannot make
        # the log and the projections disagree between the two reads.
        source.execute("BEGIN")
        try:
            return check_log(source, lambda table: _columns(source, table))
        finally:
            source.execute("COMMIT")
    except sqlite3.Error as exc:
        raise translate(exc, path, options.busy_timeout_s) from None
    finally:
        close_quietly(source)


def verify_address(address: str | Path) -> VerifyReport:
    """Check the database at `address` (a SQLite file or a PostgreSQL URL), opened to read
    only; raise its back end's typed StoreError if it cannot be read. Synchronous."""
    if is_server_address(address):
        from store.postgres.verify import verify_database

        return verify_database(str(address))
    options = OpenOptions(read_only=True)
    return verify_file(prepare(address, options), options)


def check_log(source: Connection, table_columns: Callable[[str], set[str]]) -> VerifyReport:
    """The whole check on `source`, a connection to either back end (`?` placeholders)
    already inside one read snapshot: sequences, the rebuild into a scratch SQLite
    database, every projection compared with the rebuilt one, and the checkpoints.

    `table_columns` gives the columns the source's table has (none: it has no such
    table, as an older schema may not).
    """
    report = VerifyReport()
    scratch = sqlite3.connect(":memory:", isolation_level=None)
    try:
        create_projection_tables(scratch)
        _check_sequences(source, report)
        audit = None
        if table_columns("checkpoints") and all(
            table_columns(checkpoint_table(t)) for t in CHECKPOINTED
        ):
            audit = Audit(source, scratch)
        _rebuild(source, scratch, report, audit)
        for table, order in PROJECTIONS.items():
            _compare(table, order, source, scratch, report, table_columns(table))
        if audit is not None:
            _list(report, audit.problems)
    finally:
        close_quietly(scratch)
    return report


def _list(report: VerifyReport, problems: list[str]) -> None:
    report.problems.extend(problems[:MAX_REPORTED])
    if len(problems) > MAX_REPORTED:
        report.problems.append(f"checkpoints: and {len(problems) - MAX_REPORTED} more problems")


def _check_sequences(source: Connection, report: VerifyReport) -> None:
    rows = source.execute(
        "SELECT runtime_id, count(*), min(seq), max(seq) FROM events GROUP BY runtime_id"
    ).fetchall()
    report.runtimes = len(rows)
    for runtime_id, count, low, high in sorted(rows):
        if low != 1 or high != count:
            report.problems.append(
                f"runtime {runtime_id}: seq runs {low}..{high} over {count} events (gap or hole)"
            )
    positions = source.execute("SELECT count(*), coalesce(max(position), 0) FROM events").fetchone()
    report.events = positions[0]
    if positions[0] != positions[1]:
        report.problems.append(
            f"log: {positions[0]} events but the last position is {positions[1]} (positions missing)"
        )


def _rebuild(
    source: Connection, scratch: sqlite3.Connection, report: VerifyReport, audit: Audit | None
) -> None:
    after = 0
    stops = list(audit.stops) if audit is not None else []
    scratch.execute("BEGIN")
    while True:
        # A chunk ends at the next checkpoint's position, where the audit compares.
        upto = min([after + CHUNK, *stops[:1]])
        raw = source.execute(
            f"SELECT {STORED_COLUMNS} FROM events WHERE position > ? AND position <= ?"
            " ORDER BY position",
            (after, upto),
        ).fetchall()
        if not raw:
            # A hole in the log (reported): go on past it while the log goes on.
            last = int(source.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()[0])
            if upto < last:
                after = upto
                _audit_stops(audit, stops, after)
                continue
            for position in stops:
                report.problems.append(
                    f"checkpoints: a checkpoint at position {position}, past the log's end"
                )
            break
        rows = [stored_row(r) for r in raw]
        scratch.executemany(INSERT_EVENT, [r.column_values() for r in rows])
        scratch.execute("SAVEPOINT chunk")
        try:
            project(scratch, rows)
        except sqlite3.IntegrityError as exc:
            report.problems.append(f"log: replaying events {rows[0].position}..: {exc}")
            break
        except InvalidEvent as exc:  # a log written before the catalog, or edited by hand
            report.problems.append(_misfit(rows, exc))
            break
        except CommandAlreadySettled:  # the writer refuses these: edited by hand
            scratch.execute("ROLLBACK TO chunk")
            report.problems.append(_second_outcome(scratch, rows))
            break
        finally:
            scratch.execute("RELEASE chunk")
        after = upto
        _audit_stops(audit, stops, after)
    scratch.execute("COMMIT")


def _audit_stops(audit: Audit | None, stops: list[int], after: int) -> None:
    """Check the checkpoints the fold has reached (it stands just after `after`)."""
    while audit is not None and stops and stops[0] <= after:
        audit.check(stops.pop(0))


def _misfit(rows: list[Row], exc: InvalidEvent) -> str:
    """The problem line naming the first of `rows` whose payload does not fit the catalog."""
    for row in rows:
        try:
            catalog.check(row.kind, row_payload(row))
        except InvalidEvent as misfit:
            return (
                f"log: event {row.position} (runtime {row.runtime_id} seq {row.seq}, {row.kind})"
                f" does not fit the event catalog ({misfit.problem})"
            )
    return f"log: replaying events {rows[0].position}..: {exc}"


def _second_outcome(scratch: sqlite3.Connection, rows: list[Row]) -> str:
    """The problem line naming the first of `rows` that settles a command not pending.

    Folds `rows` again one by one (the chunk's fold was rolled back): the
    command's state at that event, not its first outcome in the chunk, decides.
    """
    for row in rows:
        try:
            project(scratch, [row])
        except CommandAlreadySettled as exc:
            state = f"already {exc.status}" if exc.status else "never issued in its runtime"
            return (
                f"log: event {row.position} (runtime {row.runtime_id} seq {row.seq}, {row.kind})"
                f" settles command {exc.command_id}, which is {state}"
            )
    return f"log: replaying events {rows[0].position}..: a command settled twice"


def _compare(
    table: str,
    order: str,
    source: Connection,
    scratch: sqlite3.Connection,
    report: VerifyReport,
    present: set[str],
) -> None:
    if not present:
        # An older schema's file (an older agentdeck still writes it; an observer does
        # not migrate) has no such table: nothing stored to compare.
        return
    # The scratch table's columns the source has too, named: the source is read in
    # the same column order whatever order its own DDL gave them.
    columns = ", ".join(
        r[1] for r in scratch.execute(f"PRAGMA table_info({table})") if r[1] in present
    )
    stored = [
        normal_row(r) for r in source.execute(f"SELECT {columns} FROM {table} ORDER BY {order}")
        .fetchall()
    ]
    rebuilt = scratch.execute(f"SELECT {columns} FROM {table} ORDER BY {order}").fetchall()
    if stored == rebuilt:
        return
    stored_set, rebuilt_set = set(stored), set(rebuilt)
    missing = [r for r in rebuilt if r not in stored_set]
    extra = [r for r in stored if r not in rebuilt_set]
    for r in missing[:MAX_REPORTED]:
        report.problems.append(f"{table}: the log implies {_short(r)} but the projection lacks it")
    for r in extra[:MAX_REPORTED]:
        report.problems.append(f"{table}: the projection has {_short(r)} which the log does not imply")
    hidden = max(0, len(missing) - MAX_REPORTED) + max(0, len(extra) - MAX_REPORTED)
    if hidden:
        report.problems.append(f"{table}: and {hidden} more differences")


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    """The columns of the file's `table` (none: no such table)."""
    return {str(r[1]) for r in conn.execute(f"PRAGMA table_info({table})")}


def _short(row: tuple[object, ...]) -> str:
    text = repr(row)
    return text if len(text) <= 200 else text[:197] + "..."
