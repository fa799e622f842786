"""The projections as a fold over the log: one function, used twice.

The writer calls `project` inside the transaction that appends the events, so
projections never disagree with the log; `verify` calls the same function on
a scratch database fed from the log and compares. What an event does to the
projections comes from the event catalog (store.catalog): its typed payload,
the run state machine (`next_run_status`), the worker status a kind moves to
and which kinds are transcript entries.

A fold may refuse an event (CommandAlreadySettled, InvalidEvent): the writer
then fails that event's append alone, with that error.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple, Protocol, TypeVar

from store import catalog
from store.catalog import (
    CommandCompleted,
    CommandFailed,
    CommandIssued,
    DiagnosticRaised,
    Payload,
    RunCancelled,
    RunCompleted,
    RunCreated,
    RunFailed,
    RuntimeStarted,
    TranscriptAppended,
    WorkerCreated,
)
from store.codec import dump_payload, load_payload, us_from_dt
from store.errors import CommandAlreadySettled, InvalidEvent
from store.models import RunStatus, WorkerStatus

P = TypeVar("P", bound=Payload)


class Connection(Protocol):
    """The DB-API subset the folds use, with `?` placeholders: a sqlite3.Connection, or
    store.postgres.adapter.PgConnection. Fold SQL must be portable to both back ends;
    what `execute` returns needs only `.fetchone()` and `.rowcount`."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Any: ...

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> Any: ...


class Row(NamedTuple):
    """An event exactly as stored in the `events` table, plus its decoded payload."""

    position: int
    runtime_id: str
    seq: int
    event_id: str
    kind: str
    level: int
    worker_id: str | None
    run_id: str | None
    run_seq: int | None
    message: str
    payload_json: str
    at: int
    # The payload decoded, for a fold that needs it without `typed`; None from
    # the writer, which always has `typed`.
    payload: dict[str, Any] | None
    # The payload as its catalog model, when the writer already validated it at
    # submit; None for rows read back from the log (decoded when a fold needs it).
    typed: Payload | None = None

    def column_values(self) -> tuple[Any, ...]:
        return self[:12]


STORED_COLUMNS = (
    "position, runtime_id, seq, event_id, kind, level, worker_id, run_id, run_seq, message,"
    " payload, at"
)
"""The `events` columns in `Row` order, for reading rows back to fold them again."""

INSERT_EVENT = f"INSERT INTO events ({STORED_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


def stored_row(raw: Sequence[Any]) -> Row:
    """A `Row` from the `events` columns as stored (STORED_COLUMNS order), payload decoded."""
    return Row._make((*raw, load_payload(raw[10]), None))


def project(conn: Connection, rows: Sequence[Row]) -> None:
    """Apply the projection changes of `rows` (in log order) to `conn`'s tables."""
    fold_rows(conn, rows)
    roll_up(conn, rows)


def fold_rows(conn: Connection, rows: Sequence[Row]) -> None:
    """Every projection but the `activity` rollup (`project` without `roll_up`: what
    `agentdeck bench store` compares the whole fold with)."""
    runtime_touch: dict[str, tuple[int, int]] = {}
    worker_touch: dict[tuple[str, str], tuple[int, int]] = {}
    run_touch: dict[tuple[str, str], tuple[int, int]] = {}
    for row in rows:
        handler = _HANDLERS.get(row.kind)
        if handler is not None:
            handler(conn, row)
        runtime_touch[row.runtime_id] = (row.seq, row.at)
        if row.worker_id is not None:
            worker_touch[(row.runtime_id, row.worker_id)] = (row.seq, row.at)
        if row.run_id is not None and row.run_seq is not None:
            run_touch[(row.runtime_id, row.run_id)] = (row.run_seq, row.at)
    # Bookkeeping columns only ever move forward, so one update per key per
    # batch gives the same result as one per event, for a fraction of the cost.
    conn.executemany(
        "UPDATE runtimes SET last_seq = ?, updated_at = ? WHERE runtime_id = ?",
        [(seq, at, rt) for rt, (seq, at) in runtime_touch.items()],
    )
    conn.executemany(
        "UPDATE workers SET last_seq = ?, updated_at = ? WHERE runtime_id = ? AND worker_id = ?",
        [(seq, at, rt, w) for (rt, w), (seq, at) in worker_touch.items()],
    )
    # A CASE, not SQLite's two-argument max() (PostgreSQL has only GREATEST): portable.
    conn.executemany(
        "UPDATE runs SET last_run_seq = CASE WHEN last_run_seq < ? THEN ? ELSE last_run_seq END,"
        " updated_at = ? WHERE runtime_id = ? AND run_id = ?",
        [(seq, seq, at, rt, r) for (rt, r), (seq, at) in run_touch.items()],
    )


def roll_up(conn: Connection, rows: Sequence[Row]) -> None:
    """Count `rows` into the `activity` rollup (store.pictures): events per second,
    runtime and level. A batch's events fall in a few such keys (a group commit at
    10k events/s: a handful), so one upsert per key, not one per event."""
    activity = Counter((row.at // 1_000_000, row.runtime_id, row.level) for row in rows)
    conn.executemany(
        "INSERT INTO activity (second, runtime_id, level, events) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (second, runtime_id, level)"
        " DO UPDATE SET events = activity.events + excluded.events",
        [(second, rt, level, n) for (second, rt, level), n in activity.items()],
    )


def row_payload(row: Row) -> dict[str, Any]:
    """The row's payload as a dict (decoded from its JSON when the row carries none)."""
    return row.payload if row.payload is not None else load_payload(row.payload_json)


def _payload(row: Row) -> Payload:
    """The row's payload as its kind's catalog model: checked at submit, or now."""
    return row.typed if row.typed is not None else catalog.check(row.kind, row_payload(row))


def _typed(row: Row, model: type[P]) -> P:
    """The row's payload as `model` (its kind's catalog model): checked at submit, or now."""
    typed = _payload(row)
    if not isinstance(typed, model):  # a handler registered for the wrong kind: a bug here
        raise TypeError(f"{row.kind}: payload is a {type(typed).__name__}, not {model.__name__}")
    return typed


def _runtime_started(conn: Connection, row: Row) -> None:
    p = _typed(row, RuntimeStarted)
    # Only the limits the event states (as the payload wrote them), not the defaults
    # filled in: the projection of a database written before the catalog then stays
    # byte for byte what its log implies, so verify agrees with it.
    limits = p.limits.model_dump(mode="json", exclude_unset=True)
    conn.execute(
        "INSERT INTO runtimes (runtime_id, status, last_seq, display_name, limits, created_at,"
        " updated_at) VALUES (?, 'running', ?, ?, ?, ?, ?)"
        " ON CONFLICT (runtime_id) DO UPDATE SET status = 'running'",
        (row.runtime_id, row.seq, p.display_name, dump_payload(limits), row.at, row.at),
    )


def _runtime_stopped(conn: Connection, row: Row) -> None:
    conn.execute("UPDATE runtimes SET status = 'stopped' WHERE runtime_id = ?", (row.runtime_id,))
    conn.execute(
        "UPDATE workers SET status = 'stopped', terminal_event_id = ?"
        " WHERE runtime_id = ? AND status = 'running'",
        (row.event_id, row.runtime_id),
    )


def _worker_created(conn: Connection, row: Row) -> None:
    assert row.worker_id is not None
    spec = _typed(row, WorkerCreated).spec.model_dump(mode="json", exclude_unset=True)
    conn.execute(
        "INSERT INTO workers (runtime_id, worker_id, worker_no, status, spec, transcript_len,"
        " queued, current_run_id, current_run_status, terminal_event_id, last_seq, created_at,"
        " updated_at) VALUES (?, ?, ?, ?, ?, 0, 0, NULL, NULL, NULL, ?, ?, ?)",
        (row.runtime_id, row.worker_id, int(row.worker_id[2:]), _worker_status(row),
         dump_payload(spec), row.seq, row.at, row.at),
    )


def _transcript(conn: Connection, row: Row) -> None:
    p = _typed(row, TranscriptAppended)
    conn.execute(
        "INSERT INTO transcript (runtime_id, worker_id, sequence, role, content, event_id, run_id,"
        " at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (row.runtime_id, row.worker_id, p.sequence, p.role.value, p.content, row.event_id,
         row.run_id, row.at),
    )
    conn.execute(
        "UPDATE workers SET transcript_len = ? WHERE runtime_id = ? AND worker_id = ?",
        (p.sequence, row.runtime_id, row.worker_id),
    )


def _worker_status(row: Row) -> str:
    status = catalog.CATALOG[row.kind].worker_status
    assert status is not None
    return status.value


def _worker_terminal(conn: Connection, row: Row) -> None:
    # The first terminal state sticks: a later stop or cancel changes nothing.
    conn.execute(
        "UPDATE workers SET status = ?, terminal_event_id = ?"
        " WHERE runtime_id = ? AND worker_id = ? AND status = 'running'",
        (_worker_status(row), row.event_id, row.runtime_id, row.worker_id),
    )


def _run_created(conn: Connection, row: Row) -> None:
    p = _typed(row, RunCreated)
    status = catalog.next_run_status(None, row.kind)
    assert status is not None
    # A second run.created of the same run changes nothing in the state machine,
    # but the append that carries it is a producer's bug: the primary key refuses it.
    conn.execute(
        "INSERT INTO runs (runtime_id, run_id, worker_id, status, prompt, input_sequence,"
        " result_text, error, last_run_seq, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?, ?)",
        (row.runtime_id, row.run_id, row.worker_id, status.value, p.prompt, p.input_sequence,
         row.run_seq or 1, row.at, row.at),
    )
    conn.execute(
        "UPDATE workers SET queued = queued + 1 WHERE runtime_id = ? AND worker_id = ?",
        (row.runtime_id, row.worker_id),
    )


def _run_status(conn: Connection, row: Row) -> None:
    found = conn.execute(
        "SELECT status, worker_id FROM runs WHERE runtime_id = ? AND run_id = ?",
        (row.runtime_id, row.run_id),
    ).fetchone()
    if found is None:
        return
    previous, worker_id = RunStatus(found[0]), found[1]
    status = catalog.next_run_status(previous, row.kind)
    if status is None:
        return  # terminal states stick: a late completion after a cancel changes nothing
    result = error = None
    ended_at = None  # set once, by the event that makes the run terminal (terminal sticks)
    if status.terminal:
        ended_at = row.at
        p = _payload(row)
        # As the log states them: a completion without a result leaves result_text
        # NULL (not ""), a failure without an error text falls back to its reason.
        if isinstance(p, RunCompleted):
            result = p.result if "result" in p.model_fields_set else None
        elif isinstance(p, RunFailed):
            error = p.error or p.reason
        elif isinstance(p, RunCancelled):
            error = p.reason
    conn.execute(
        "UPDATE runs SET status = ?, result_text = coalesce(?, result_text),"
        " error = coalesce(?, error), ended_at = coalesce(?, ended_at)"
        " WHERE runtime_id = ? AND run_id = ?",
        (status.value, result, error, ended_at, row.runtime_id, row.run_id),
    )
    if previous is RunStatus.CREATED:
        conn.execute(
            "UPDATE workers SET queued = queued - 1 WHERE runtime_id = ? AND worker_id = ?",
            (row.runtime_id, worker_id),
        )
    if status.active:
        conn.execute(
            "UPDATE workers SET current_run_id = ?, current_run_status = ?"
            " WHERE runtime_id = ? AND worker_id = ?",
            (row.run_id, status.value, row.runtime_id, worker_id),
        )
    else:
        conn.execute(
            "UPDATE workers SET current_run_id = NULL, current_run_status = NULL"
            " WHERE runtime_id = ? AND worker_id = ? AND current_run_id = ?",
            (row.runtime_id, worker_id, row.run_id),
        )


def _diagnostic(conn: Connection, row: Row) -> None:
    p = _typed(row, DiagnosticRaised)
    conn.execute(
        "INSERT INTO diagnostics (id, runtime_id, severity, code, message, worker_id, event_id, at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (row.position, row.runtime_id, p.severity.value, p.code, p.message, row.worker_id,
         row.event_id, row.at),
    )


def _command_issued(conn: Connection, row: Row) -> None:
    p = _typed(row, CommandIssued)
    # The event id is the command id: that is what makes a retried issue a
    # DuplicateEvent (UNIQUE event_id) rather than a second command, so a
    # payload naming another id would slip past that guard.
    if p.command_id != row.event_id:
        raise InvalidEvent(
            row.kind, f"command_id {p.command_id!r} is not the event's own id {row.event_id}"
        )
    conn.execute(
        "INSERT INTO commands (command_id, runtime_id, op, status, worker_id, issued_position,"
        " outcome_position, expires_at, issued_at, updated_at)"
        " VALUES (?, ?, ?, 'pending', ?, ?, NULL, ?, ?, ?)",
        (p.command_id, row.runtime_id, p.request.op, row.worker_id, row.position,
         us_from_dt(p.expires_at), row.at, row.at),
    )


# The status each outcome kind settles a command to: "command.completed" -> "completed".
_SETTLED_STATUS = {kind: kind.rpartition(".")[2] for kind in catalog.COMMAND_OUTCOME_KINDS}


def _command_outcome(conn: Connection, row: Row) -> None:
    p = _payload(row)
    if not isinstance(p, CommandCompleted | CommandFailed):  # registered for the wrong kind
        raise TypeError(f"{row.kind}: payload is a {type(p).__name__}, not a command outcome")
    # Only a pending command of this runtime settles: a second outcome (a host
    # that ran it twice, two hosts after a take-over) refuses its whole append,
    # so the events it would have caused are not written either. Keyed by the
    # runtime too, so a rebuild of one runtime's log folds alone.
    settled = conn.execute(
        "UPDATE commands SET status = ?, outcome_position = ?, updated_at = ?"
        " WHERE command_id = ? AND runtime_id = ? AND status = 'pending'",
        (_SETTLED_STATUS[row.kind], row.position, row.at, p.command_id, row.runtime_id),
    ).rowcount
    if settled != 1:
        found = conn.execute(
            "SELECT status FROM commands WHERE command_id = ? AND runtime_id = ?",
            (p.command_id, row.runtime_id),
        ).fetchone()
        raise CommandAlreadySettled(p.command_id, found[0] if found else None)


def _handler(spec: catalog.KindSpec) -> Callable[[Connection, Row], None] | None:
    """What an event of this kind does to the projections (None: only the bookkeeping)."""
    if spec.transcript:
        return _transcript
    if spec.run_status is RunStatus.CREATED:
        return _run_created
    if spec.run_status is not None:
        return _run_status
    if spec.worker_status is not None:
        return _worker_created if spec.worker_status is WorkerStatus.RUNNING else _worker_terminal
    return {
        "runtime.started": _runtime_started,
        "runtime.stopped": _runtime_stopped,
        "diagnostic.raised": _diagnostic,
        "command.issued": _command_issued,
        **dict.fromkeys(catalog.COMMAND_OUTCOME_KINDS, _command_outcome),
    }.get(spec.kind)


_HANDLERS = {
    kind: handler
    for kind, spec in catalog.CATALOG.items()
    if (handler := _handler(spec)) is not None
}
