"""Projections that disagree with the log: a cheap check per runtime, and a rebuild.

The log is the truth and the projections (`runtimes`, `workers`, `runs`,
`transcript`, `diagnostics`, `commands`, `activity`) are a fold over it (store.projector). If a
projection row goes missing or stale (deleted by hand, restored from another
copy), a host that trusts it misbehaves: a deleted `workers` row makes it
reuse that worker's id, show the old transcript under the new worker and fail
its first input on a UNIQUE constraint; a `commands` row left pending after
its outcome makes the host run that command a second time. So a host checks a runtime before it
hosts it, and rebuilds that runtime's projections from its log if they
disagree.

The check must stay cheap on a big database (a million events, a thousand
workers, a hundred thousand runs), so it compares only counts and heads
through indexed queries; it is not `verify` (which replays the whole log and
compares every column). It finds what a lost, extra or stale row does to the
counts and the bookkeeping columns; a changed status or text in a row that is
still there is left to `verify`. Measured on a runtime of 1.65M events, 1,000
workers, 100k runs and 400k transcript entries: about 0.25 s with the file in
the OS cache, 3.7 s cold (mostly counting the transcript and the run ids),
against about 60 s for its rebuild.

The rebuild runs the same fold as the writer (store.projector.project) over
the runtime's events, after deleting the runtime's projection rows, inside the
caller's transaction: a writer job, so it is all or nothing. Every projection
handler keys its rows by the event's runtime (diagnostics by the event's
global position; an outcome settles only a command of its own runtime), so
replaying one runtime alone yields exactly that runtime's rows of a whole-log
replay and touches no other runtime.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from store import catalog
from store.database import OpenOptions, close_quietly, open_reader, translate
from store.errors import CommandAlreadySettled, InvalidEvent, StoreError
from store.projector import STORED_COLUMNS, Row, project, stored_row
from store.schema import PROJECTIONS

CHUNK = 5000  # events per replay step: bounded memory, few statements each
MAX_NAMED = 10  # ids named in one problem line; the rest are counted


class RebuildFailed(StoreError):
    """The runtime's log cannot be folded into projections; the transaction rolls back."""

    def __init__(self, runtime_id: str, row: Row | None, problem: str) -> None:
        self.runtime_id = runtime_id
        self.position = row.position if row is not None else None
        where = (
            f"its event seq {row.seq} ({row.kind}, position {row.position})"
            if row is not None
            else "its log"
        )
        super().__init__(
            f"runtime {runtime_id}: cannot rebuild the projections: {where} does not project"
            f" ({problem}); nothing was changed; the log itself is damaged, run"
            " `agentdeck verify` and restore the database from a backup"
        )


@dataclass(frozen=True)
class RebuildReport:
    """What a rebuild of one runtime's projections found and did."""

    runtime_id: str
    events: int  # events of the runtime replayed through the fold
    problems: tuple[str, ...]  # what the check found before the rebuild
    rows_before: dict[str, int] = field(default_factory=dict)  # per projection table
    rows_after: dict[str, int] = field(default_factory=dict)
    remaining: tuple[str, ...] = ()  # what the check still finds after (expected: nothing)
    seconds: float = 0.0

    @property
    def changed(self) -> dict[str, tuple[int, int]]:
        """Tables whose row count the rebuild changed: table -> (before, after)."""
        return {
            table: (before, self.rows_after.get(table, 0))
            for table, before in self.rows_before.items()
            if before != self.rows_after.get(table, 0)
        }

    def summary(self) -> str:
        """One line for a diagnostic or a log."""
        counts = ", ".join(f"{t} {a}→{b}" for t, (a, b) in self.changed.items())
        text = (
            f"runtime {self.runtime_id}: projections rebuilt from {self.events} events"
            f" ({counts or 'row counts unchanged'})"
        )
        if self.problems:
            more = f" (+{len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
            text += f"; found: {self.problems[0]}{more}"
        if self.remaining:
            text += f"; still disagreeing after the rebuild: {self.remaining[0]}"
        return text


# ---------------------------------------------------------------------------
# The check
# ---------------------------------------------------------------------------


def projection_problems(conn: sqlite3.Connection, runtime_id: str) -> list[str]:
    """Where `runtime_id`'s projections disagree with its log; empty when they agree.

    Run it inside one transaction (a read snapshot or a writer job) so the log
    and the projections are read at the same moment. Indexed queries only: its
    cost grows with the runtime's workers, runs and transcript entries, not
    with its log's length; the lookups by kind (runtime.started/stopped,
    worker.created, diagnostic.raised, and run.created only to confirm a
    mismatch) walk those kinds across all runtimes, which are few.
    """
    problems: list[str] = []
    head = _runtime_problems(conn, runtime_id, problems)
    _worker_problems(conn, runtime_id, head, problems)
    _transcript_problems(conn, runtime_id, problems)
    _run_problems(conn, runtime_id, problems)
    _diagnostic_problems(conn, runtime_id, problems)
    _command_problems(conn, runtime_id, problems)
    _activity_problems(conn, runtime_id, head, problems)
    return problems


def problems_in_file(path: Path, runtime_id: str, options: OpenOptions | None = None) -> list[str]:
    """`projection_problems` on its own read snapshot of the file at `path` (synchronous).

    A read connection of its own rather than a writer job: the check then holds
    up no append, and an observer (read-only store) can run it too.
    """
    options = options or OpenOptions(read_only=True)
    conn = open_reader(path, options)
    try:
        # One read transaction: the log and the projections as of one commit.
        conn.execute("BEGIN")
        try:
            return projection_problems(conn, runtime_id)
        finally:
            conn.execute("COMMIT")
    except sqlite3.Error as exc:
        raise translate(exc, path, options.busy_timeout_s) from None
    finally:
        close_quietly(conn)


def _by_kind(conn: sqlite3.Connection, what: str, kind: str, runtime_id: str) -> sqlite3.Cursor:
    # Pinned to events_by_kind: without statistics the planner may pick the
    # (runtime_id, seq) index instead and walk the runtime's whole log. The kinds
    # asked for this way are rare (one event per runtime start, worker,
    # diagnostic), so walking the kind across all runtimes stays short.
    return conn.execute(
        f"SELECT {what} FROM events INDEXED BY events_by_kind WHERE kind = ? AND runtime_id = ?",
        (kind, runtime_id),
    )


def _runtime_problems(conn: sqlite3.Connection, runtime_id: str, problems: list[str]) -> int:
    """Check the `runtimes` row against the log; return the log's head seq (0 if empty)."""
    head = int(
        conn.execute(
            "SELECT coalesce(max(seq), 0) FROM events WHERE runtime_id = ?", (runtime_id,)
        ).fetchone()[0]
    )
    started = _by_kind(conn, "max(position)", "runtime.started", runtime_id).fetchone()[0]
    stopped = _by_kind(conn, "max(position)", "runtime.stopped", runtime_id).fetchone()[0]
    row = conn.execute(
        "SELECT status, last_seq FROM runtimes WHERE runtime_id = ?", (runtime_id,)
    ).fetchone()
    if started is None:
        # The fold makes the row only from runtime.started.
        if row is not None:
            problems.append(
                f"runtimes: a row for {runtime_id} but its log has no runtime.started event"
            )
        return head
    if row is None:
        problems.append(
            f"runtimes: the log started {runtime_id} (last seq {head}) but the projection"
            " has no row for it"
        )
        return head
    status, last_seq = row
    if last_seq != head:
        problems.append(
            f"runtimes: {runtime_id} last_seq is {last_seq} but its log ends at seq {head}"
        )
    # The later of the last start and the last stop decides the status.
    expected = "stopped" if stopped is not None and stopped > started else "running"
    if status != expected:
        problems.append(f"runtimes: {runtime_id} is {status} but its log says {expected}")
    return head


def _worker_problems(
    conn: sqlite3.Connection, runtime_id: str, head: int, problems: list[str]
) -> None:
    created = {str(r[0]) for r in _by_kind(conn, "worker_id", "worker.created", runtime_id)}
    # Each worker's last_seq is the seq of its newest event (the fold touches it
    # on every event naming the worker): one seek per worker in events_by_worker.
    rows = conn.execute(
        "SELECT w.worker_id, w.worker_no, w.last_seq,"
        " (SELECT e.seq FROM events e WHERE e.runtime_id = w.runtime_id"
        "  AND e.worker_id = w.worker_id ORDER BY e.position DESC LIMIT 1)"
        " FROM workers w WHERE w.runtime_id = ?",
        (runtime_id,),
    ).fetchall()
    present = {str(r[0]) for r in rows}
    missing = created - present
    if missing:
        # The failure this check exists for: a host would reuse these ids.
        problems.append(
            f"workers: the log created {_names(missing)} but the projection has no row for"
            f" {'it' if len(missing) == 1 else 'them'} ({len(present)} rows,"
            f" {len(created)} worker.created events)"
        )
    extra = present - created
    if extra:
        problems.append(f"workers: rows for {_names(extra)} which the log never created")
    stale: list[str] = []
    for worker_id, worker_no, last_seq, newest in rows:
        if worker_id in extra:
            continue
        if worker_no != _worker_no(worker_id):
            problems.append(f"workers: {worker_id} has worker_no {worker_no}")
        if last_seq != newest or last_seq > head:
            stale.append(f"{worker_id} last_seq {last_seq}, log {newest}")
    if stale:
        problems.append(f"workers: stale last_seq: {_names(stale)}")


def _worker_no(worker_id: str) -> int | None:
    # The fold's own reading of an id (store.projector._worker_created).
    try:
        return int(worker_id[2:])
    except ValueError:
        return None


def _transcript_problems(conn: sqlite3.Connection, runtime_id: str, problems: list[str]) -> None:
    # Transcript sequences run 1..N per worker (the engine numbers them, and the
    # reader pages by sequence up to transcript_len), so each worker's entry
    # count must equal its transcript_len. One walk of the runtime's transcript
    # keys; no second index to maintain.
    entries = dict(
        conn.execute(
            "SELECT worker_id, count(*) FROM transcript WHERE runtime_id = ? GROUP BY worker_id",
            (runtime_id,),
        ).fetchall()
    )
    lengths = dict(
        conn.execute(
            "SELECT worker_id, transcript_len FROM workers WHERE runtime_id = ?", (runtime_id,)
        ).fetchall()
    )
    wrong = [
        f"{w} {entries.get(w, 0)} entries, transcript_len {n}"
        for w, n in sorted(lengths.items())
        if entries.get(w, 0) != n
    ]
    if wrong:
        problems.append(f"transcript: entries and transcript_len disagree: {_names(wrong)}")
    orphans = [f"{w} ({n} entries)" for w, n in sorted(entries.items()) if w not in lengths]
    if orphans:
        problems.append(f"transcript: entries of workers with no workers row: {_names(orphans)}")


def _run_problems(conn: sqlite3.Connection, runtime_id: str, problems: list[str]) -> None:
    rows = int(
        conn.execute("SELECT count(*) FROM runs WHERE runtime_id = ?", (runtime_id,)).fetchone()[0]
    )
    # The fold makes one runs row per run.created. Counting those through
    # events_by_kind walks every runtime's run.created (and a table lookup each),
    # so first count the runtime's distinct run ids in its own events_by_run
    # range (covering, no lookups): the engine opens every run with run.created,
    # so the two agree on any log it wrote, and the exact count is paid only to
    # confirm a mismatch.
    seen = int(
        conn.execute(
            "SELECT count(DISTINCT run_id) FROM events WHERE runtime_id = ? AND run_id IS NOT NULL",
            (runtime_id,),
        ).fetchone()[0]
    )
    if seen == rows:
        return
    created = int(_by_kind(conn, "count(*)", "run.created", runtime_id).fetchone()[0])
    if created != rows:
        problems.append(
            f"runs: {rows} rows but the log has {created} run.created events for {runtime_id}"
        )


def _diagnostic_problems(conn: sqlite3.Connection, runtime_id: str, problems: list[str]) -> None:
    rows = int(
        conn.execute(
            "SELECT count(*) FROM diagnostics WHERE runtime_id = ?", (runtime_id,)
        ).fetchone()[0]
    )
    raised = int(_by_kind(conn, "count(*)", "diagnostic.raised", runtime_id).fetchone()[0])
    if rows != raised:
        problems.append(f"diagnostics: {rows} rows but the log raised {raised} for {runtime_id}")


def _command_problems(conn: sqlite3.Connection, runtime_id: str, problems: list[str]) -> None:
    if conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'commands'"
    ).fetchone() is None:
        return  # an observer's look at a schema-1 file: no commands can be in its log
    # A scan of the commands table (one row per command ever issued, all runtimes:
    # small beside the log); the issued and answered counts walk events_by_kind.
    rows, pending = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE status = 'pending') FROM commands"
        " WHERE runtime_id = ?",
        (runtime_id,),
    ).fetchone()
    issued = int(_by_kind(conn, "count(*)", "command.issued", runtime_id).fetchone()[0])
    if rows != issued:
        problems.append(
            f"commands: {rows} rows but the log issued {issued} commands for {runtime_id}"
        )
    # Every outcome in the log settled exactly one command (the fold refuses any
    # other), so what is still pending is the difference. A row pending by
    # mistake is the dangerous one: its host would run that command again.
    answered = sum(
        int(_by_kind(conn, "count(*)", kind, runtime_id).fetchone()[0])
        for kind in sorted(catalog.COMMAND_OUTCOME_KINDS)
    )
    if pending != issued - answered:
        problems.append(
            f"commands: {pending} pending but the log leaves {issued - answered} of"
            f" {runtime_id}'s commands unanswered"
        )


def _activity_problems(
    conn: sqlite3.Connection, runtime_id: str, head: int, problems: list[str]
) -> None:
    if isinstance(conn, sqlite3.Connection) and conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'activity'"
    ).fetchone() is None:
        return  # an observer's look at a file older than the pictures (schema 3)
    # The fold counts every event of the runtime once in `activity`, so its rows
    # sum to the runtime's event count: a lost row or a changed count shows. A
    # scan of the rollup (no index leads with the runtime: one would cost every
    # append a second B-tree): its rows are distinct seconds, runtimes and levels,
    # at most the log's size and far fewer under load.
    total = int(
        conn.execute(
            "SELECT coalesce(sum(events), 0) FROM activity WHERE runtime_id = ?", (runtime_id,)
        ).fetchone()[0]
    )
    if total == head:
        return
    # The head seq is the count when the seqs run 1..N (the writer makes them so;
    # verify checks it): confirm a mismatch with the count itself.
    count = int(
        conn.execute("SELECT count(*) FROM events WHERE runtime_id = ?", (runtime_id,)).fetchone()[0]
    )
    if total != count:
        problems.append(
            f"activity: counts {total} events of {runtime_id} but its log holds {count}"
        )


def _names(items: set[str] | list[str]) -> str:
    ordered = sorted(items, key=_natural) if isinstance(items, set) else items
    shown = ", ".join(ordered[:MAX_NAMED])
    hidden = len(ordered) - MAX_NAMED
    return f"{shown} and {hidden} more" if hidden > 0 else shown


def _natural(worker_id: str) -> tuple[int, str]:
    # w-2 before w-10, as an operator reads them.
    number = _worker_no(worker_id)
    return (number if number is not None else -1, worker_id)


# ---------------------------------------------------------------------------
# The rebuild
# ---------------------------------------------------------------------------


def rebuild_projections(
    conn: sqlite3.Connection, runtime_id: str, *, chunk: int = CHUNK
) -> RebuildReport:
    """Replace `runtime_id`'s projection rows with a fold of its log.

    Must run inside a transaction the caller commits or rolls back (a writer
    job): it deletes before it replays, so only the transaction makes it all or
    nothing. Raises RebuildFailed, naming the event, if an event of the log
    does not project; the caller's rollback then leaves everything as it was.
    `chunk` is how many events are folded per step.
    """
    _require_transaction(conn, chunk)
    return _rebuild(conn, runtime_id, tuple(projection_problems(conn, runtime_id)), chunk)


def repair_projections(
    conn: sqlite3.Connection, runtime_id: str, *, chunk: int = CHUNK
) -> RebuildReport | None:
    """Check, and rebuild only if the check finds a problem (in the caller's transaction).

    Returns None when the projections agree with the log, else the rebuild's
    report (its `problems` say what was wrong).
    """
    _require_transaction(conn, chunk)
    problems = projection_problems(conn, runtime_id)
    if not problems:
        return None
    return _rebuild(conn, runtime_id, tuple(problems), chunk)


def _rebuild(
    conn: sqlite3.Connection, runtime_id: str, problems: tuple[str, ...], chunk: int
) -> RebuildReport:
    start = time.perf_counter()
    rows_before = _row_counts(conn, runtime_id)
    for table in PROJECTIONS:
        conn.execute(f"DELETE FROM {table} WHERE runtime_id = ?", (runtime_id,))
    events = _replay(conn, runtime_id, chunk)
    return RebuildReport(
        runtime_id=runtime_id,
        events=events,
        problems=problems,
        rows_before=rows_before,
        rows_after=_row_counts(conn, runtime_id),
        # The same check once more: anything still listed is not a lost or
        # stale row but a log the check reads differently from the fold.
        remaining=tuple(projection_problems(conn, runtime_id)),
        seconds=time.perf_counter() - start,
    )


def _require_transaction(conn: sqlite3.Connection, chunk: int) -> None:
    if not conn.in_transaction:
        raise StoreError("rebuilding projections must run inside a transaction (a writer job)")
    if chunk < 1:
        raise StoreError(f"rebuild chunk must be at least 1 (got {chunk})")


def _row_counts(conn: sqlite3.Connection, runtime_id: str) -> dict[str, int]:
    return {
        table: int(
            conn.execute(
                f"SELECT count(*) FROM {table} WHERE runtime_id = ?", (runtime_id,)
            ).fetchone()[0]
        )
        for table in PROJECTIONS
    }


def _replay(conn: sqlite3.Connection, runtime_id: str, chunk: int) -> int:
    after = 0
    total = 0
    while True:
        raw = conn.execute(
            f"SELECT {STORED_COLUMNS} FROM events WHERE runtime_id = ? AND seq > ?"
            " ORDER BY seq LIMIT ?",
            (runtime_id, after, chunk),
        ).fetchall()
        if not raw:
            return total
        rows = [_decoded(runtime_id, r) for r in raw]
        _project_chunk(conn, runtime_id, rows)
        total += len(rows)
        after = rows[-1].seq


def _decoded(runtime_id: str, raw: tuple[Any, ...]) -> Row:
    try:
        return stored_row(raw)
    except ValueError as exc:  # a payload that is not JSON: name its event
        raise RebuildFailed(
            runtime_id, Row._make((*raw, {}, None)), f"unreadable payload: {exc}"
        ) from None


def _project_chunk(conn: sqlite3.Connection, runtime_id: str, rows: list[Row]) -> None:
    conn.execute("SAVEPOINT rebuild_chunk")
    try:
        project(conn, rows)
    except Exception as exc:
        if not _is_fold_error(exc):
            raise  # disk full, locked, ...: the writer job translates those
        # Undo the partial chunk and fold it event by event, only to name the
        # event that fails; the caller's rollback undoes the rest.
        conn.execute("ROLLBACK TO rebuild_chunk")
        _find_culprit(conn, runtime_id, rows, exc)
    finally:
        conn.execute("RELEASE rebuild_chunk")


def _is_fold_error(exc: Exception) -> bool:
    """An event the fold cannot project (as the writer judges an append), not an I/O failure."""
    if isinstance(exc, sqlite3.Error):
        return isinstance(
            exc, sqlite3.IntegrityError | sqlite3.InterfaceError | sqlite3.ProgrammingError
        )
    return True


def _find_culprit(
    conn: sqlite3.Connection, runtime_id: str, rows: list[Row], first: Exception
) -> None:
    for row in rows:
        try:
            project(conn, [row])
        except Exception as exc:
            if not _is_fold_error(exc):
                raise
            raise RebuildFailed(runtime_id, row, _problem(exc)) from None
    # Event by event it folds, but not as one chunk: still a failure to report.
    raise RebuildFailed(runtime_id, None, _problem(first))


def _problem(exc: Exception) -> str:
    if isinstance(exc, InvalidEvent):  # a log written before the catalog, or edited by hand
        return f"its payload does not fit the event catalog: {exc.problem}"
    if isinstance(exc, CommandAlreadySettled):  # the writer refuses this: a log edited by hand
        state = f"already {exc.status}" if exc.status else "never issued in this runtime"
        return f"an outcome for command {exc.command_id}, which is {state}"
    return repr(exc)
