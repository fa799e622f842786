"""The projections as a fold over the log: one function, used twice.

The writer calls `project` inside the transaction that appends the events, so
projections never disagree with the log; `verify` calls the same function on
a scratch database fed from the log and compares. The store knows event kinds
only as far as the projections need: the payload keys below are the contract
between the engine (which emits) and the store (which projects).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, NamedTuple

from store.codec import dump_payload, load_payload

TERMINAL = ("completed", "failed", "cancelled")
_PHASES = frozenset({"planning", "executing", "verifying"})
_TRANSCRIPT_KINDS = frozenset({"worker.input.accepted", "worker.output"})


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
    payload: dict[str, Any]

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
    return Row._make((*raw, load_payload(raw[10])))


def project(conn: sqlite3.Connection, rows: Sequence[Row]) -> None:
    """Apply the projection changes of `rows` (in log order) to `conn`'s tables."""
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
    conn.executemany(
        "UPDATE runs SET last_run_seq = max(last_run_seq, ?), updated_at = ?"
        " WHERE runtime_id = ? AND run_id = ?",
        [(seq, at, rt, r) for (rt, r), (seq, at) in run_touch.items()],
    )


def _runtime_started(conn: sqlite3.Connection, row: Row) -> None:
    limits = row.payload.get("limits") or {}
    conn.execute(
        "INSERT INTO runtimes (runtime_id, status, last_seq, display_name, limits, created_at,"
        " updated_at) VALUES (?, 'running', ?, ?, ?, ?, ?)"
        " ON CONFLICT (runtime_id) DO UPDATE SET status = 'running'",
        (row.runtime_id, row.seq, row.payload.get("display_name"), dump_payload(limits),
         row.at, row.at),
    )


def _runtime_stopped(conn: sqlite3.Connection, row: Row) -> None:
    conn.execute("UPDATE runtimes SET status = 'stopped' WHERE runtime_id = ?", (row.runtime_id,))
    conn.execute(
        "UPDATE workers SET status = 'stopped', terminal_event_id = ?"
        " WHERE runtime_id = ? AND status = 'running'",
        (row.event_id, row.runtime_id),
    )


def _worker_created(conn: sqlite3.Connection, row: Row) -> None:
    assert row.worker_id is not None
    conn.execute(
        "INSERT INTO workers (runtime_id, worker_id, worker_no, status, spec, transcript_len,"
        " queued, current_run_id, current_run_status, terminal_event_id, last_seq, created_at,"
        " updated_at) VALUES (?, ?, ?, 'running', ?, 0, 0, NULL, NULL, NULL, ?, ?, ?)",
        (row.runtime_id, row.worker_id, int(row.worker_id[2:]),
         dump_payload(row.payload.get("spec") or {}), row.seq, row.at, row.at),
    )


def _transcript(conn: sqlite3.Connection, row: Row) -> None:
    p = row.payload
    conn.execute(
        "INSERT INTO transcript (runtime_id, worker_id, sequence, role, content, event_id, run_id,"
        " at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (row.runtime_id, row.worker_id, p["sequence"], p["role"], p["content"], row.event_id,
         row.run_id, row.at),
    )
    conn.execute(
        "UPDATE workers SET transcript_len = ? WHERE runtime_id = ? AND worker_id = ?",
        (p["sequence"], row.runtime_id, row.worker_id),
    )


def _worker_terminal(conn: sqlite3.Connection, row: Row) -> None:
    # The first terminal state sticks: a later stop or cancel changes nothing.
    conn.execute(
        "UPDATE workers SET status = ?, terminal_event_id = ?"
        " WHERE runtime_id = ? AND worker_id = ? AND status = 'running'",
        (row.kind.removeprefix("worker."), row.event_id, row.runtime_id, row.worker_id),
    )


def _run_created(conn: sqlite3.Connection, row: Row) -> None:
    p = row.payload
    conn.execute(
        "INSERT INTO runs (runtime_id, run_id, worker_id, status, prompt, input_sequence,"
        " result_text, error, last_run_seq, created_at, updated_at)"
        " VALUES (?, ?, ?, 'created', ?, ?, NULL, NULL, ?, ?, ?)",
        (row.runtime_id, row.run_id, row.worker_id, p.get("prompt", ""),
         p.get("input_sequence"), row.run_seq or 1, row.at, row.at),
    )
    conn.execute(
        "UPDATE workers SET queued = queued + 1 WHERE runtime_id = ? AND worker_id = ?",
        (row.runtime_id, row.worker_id),
    )


def _run_status(conn: sqlite3.Connection, row: Row) -> None:
    found = conn.execute(
        "SELECT status, worker_id FROM runs WHERE runtime_id = ? AND run_id = ?",
        (row.runtime_id, row.run_id),
    ).fetchone()
    if found is None:
        return
    previous, worker_id = found
    if previous in TERMINAL:
        return  # terminal states stick: a late completion after a cancel changes nothing
    status = row.kind.removeprefix("run.")
    p = row.payload
    conn.execute(
        "UPDATE runs SET status = ?, result_text = coalesce(?, result_text),"
        " error = coalesce(?, error) WHERE runtime_id = ? AND run_id = ?",
        (status, p.get("result") if status == "completed" else None,
         (p.get("error") or p.get("reason")) if status in ("failed", "cancelled") else None,
         row.runtime_id, row.run_id),
    )
    if previous == "created":
        conn.execute(
            "UPDATE workers SET queued = queued - 1 WHERE runtime_id = ? AND worker_id = ?",
            (row.runtime_id, worker_id),
        )
    if status in _PHASES:
        conn.execute(
            "UPDATE workers SET current_run_id = ?, current_run_status = ?"
            " WHERE runtime_id = ? AND worker_id = ?",
            (row.run_id, status, row.runtime_id, worker_id),
        )
    else:
        conn.execute(
            "UPDATE workers SET current_run_id = NULL, current_run_status = NULL"
            " WHERE runtime_id = ? AND worker_id = ? AND current_run_id = ?",
            (row.runtime_id, worker_id, row.run_id),
        )


def _diagnostic(conn: sqlite3.Connection, row: Row) -> None:
    p = row.payload
    conn.execute(
        "INSERT INTO diagnostics (id, runtime_id, severity, code, message, worker_id, event_id, at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (row.position, row.runtime_id, p.get("severity", "info"), p.get("code", ""),
         p.get("message", row.message), row.worker_id, row.event_id, row.at),
    )


_HANDLERS = {
    "runtime.started": _runtime_started,
    "runtime.stopped": _runtime_stopped,
    "worker.created": _worker_created,
    "worker.input.accepted": _transcript,
    "worker.output": _transcript,
    "worker.stopped": _worker_terminal,
    "worker.cancelled": _worker_terminal,
    "run.created": _run_created,
    "run.planning": _run_status,
    "run.executing": _run_status,
    "run.verifying": _run_status,
    "run.completed": _run_status,
    "run.failed": _run_status,
    "run.cancelled": _run_status,
    "diagnostic.raised": _diagnostic,
}
