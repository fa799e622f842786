"""Records built from stored rows without validating them a second time.

Everything in the database was validated on its way in: the writer checks each
event against the catalog before it is queued, and the projections are folded
from those checked events. Reading rows back through the models' validators
is pure cost (for a page of 1,000 events it was three quarters of the read), so
these builders fill a model's fields directly, as `model_construct` does
without its per-call bookkeeping, and decode with pydantic-core what it
decodes faster than the standard library: event ids (in bulk) and payloads.

A record built here equals, field for field and type for type, the one its
model's constructor would build from the same values. Events are not pydantic
models (store.models.Event): they are filled slot by slot and decode their
event id, payload and time only when read.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeVar
from uuid import UUID

from pydantic import BaseModel, TypeAdapter

from store.codec import dt_from_us
from store.models import (
    _LEVELS,
    Diagnostic,
    Event,
    HostLease,
    Limits,
    Role,
    RunRecord,
    RunStatus,
    RuntimeRecord,
    RuntimeStatus,
    Severity,
    TranscriptEntry,
    WorkerRecord,
    WorkerSpec,
    WorkerStatus,
    _EventSlots,
)

R = TypeVar("R", bound=BaseModel)

_new = object.__new__
# The setters of the four attributes every pydantic model instance carries,
# taken once from BaseModel: calling them is what object.__setattr__ does
# after its attribute lookup, at a third of its cost per call.
_SLOTS = BaseModel.__dict__
_set_dict = _SLOTS["__dict__"].__set__
_set_fields_set = _SLOTS["__pydantic_fields_set__"].__set__
_set_extra = _SLOTS["__pydantic_extra__"].__set__
_set_private = _SLOTS["__pydantic_private__"].__set__
# pydantic-core turns a list of canonical UUID strings into UUIDs five times
# faster than calling UUID() on each.
_UUIDS = TypeAdapter(list[UUID])


def construct(cls: type[R], fields: dict[str, Any]) -> R:
    """`cls.model_construct(**fields)` for `fields` holding every field of `cls`, already valid."""
    record = _new(cls)
    _set_dict(record, fields)
    _set_fields_set(record, set(fields))
    _set_extra(record, None)
    _set_private(record, None)
    return record


class _Filling(_EventSlots):
    """Event's storage without Event's guard: the builder below fills one, then makes it an Event.

    Same slots, so assigning `__class__` is allowed, and costs less than one
    guarded `object.__setattr__` per field.
    """

    __slots__ = ()


def events_from_rows(rows: Iterable[Sequence[Any]]) -> list[Event]:
    """Events from `events` rows in store.reader.EVENT_COLUMNS order (also store.projector's Row order).

    Only the slots are filled: event ids, payloads and times stay in their
    stored forms (text, JSON text, UTC microseconds) until first read.
    """
    events: list[Event] = []
    append = events.append
    levels = _LEVELS
    for row in rows:
        e = _new(_Filling)
        (
            e.position, e.runtime_id, e.seq, e._event_id_text, e.kind, level, e.worker_id,
            e.run_id, e.run_seq, e.message, e._payload_json, e._at_us,
        ) = row
        e.level = levels[level]
        e.__class__ = Event  # type: ignore[assignment]
        append(e)  # type: ignore[arg-type]
    return events


def runtime_from_row(r: Sequence[Any]) -> RuntimeRecord:
    """runtime_id, status, last_seq, display_name, limits, created_at, updated_at."""
    return construct(RuntimeRecord, {
        "runtime_id": r[0], "status": RuntimeStatus(r[1]), "last_seq": r[2],
        "display_name": r[3], "limits": _limits(r[4]), "created_at": dt_from_us(r[5]),
        "updated_at": dt_from_us(r[6]),
    })


def _limits(text: str) -> Limits:
    # The projection keeps only the limits its runtime.started stated; the model
    # fills in the rest (a handful of rows: validating is the simple way).
    return Limits.model_validate_json(text)


def worker_from_row(r: Sequence[Any]) -> WorkerRecord:
    """store.reader.WORKER_COLUMNS."""
    return construct(WorkerRecord, {
        "runtime_id": r[0], "worker_id": r[1], "status": WorkerStatus(r[2]),
        # The spec is nested models with defaults: pydantic-core's JSON decoder
        # builds it (a few µs), which a hand-written walk would not beat.
        "spec": WorkerSpec.model_validate_json(r[3]), "transcript_len": r[4], "queued": r[5],
        "current_run_id": r[6], "current_run_status": RunStatus(r[7]) if r[7] else None,
        "terminal_event_id": UUID(r[8]) if r[8] else None, "last_seq": r[9],
        "created_at": dt_from_us(r[10]), "updated_at": dt_from_us(r[11]),
    })


def run_from_row(r: Sequence[Any]) -> RunRecord:
    """store.reader.RUN_COLUMNS."""
    return construct(RunRecord, {
        "runtime_id": r[0], "run_id": r[1], "worker_id": r[2], "status": RunStatus(r[3]),
        "prompt": r[4], "input_sequence": r[5], "result_text": r[6], "error": r[7],
        "last_run_seq": r[8], "created_at": dt_from_us(r[9]), "updated_at": dt_from_us(r[10]),
    })


def transcript_from_rows(rows: Sequence[Sequence[Any]]) -> list[TranscriptEntry]:
    """runtime_id, worker_id, sequence, role, content, event_id, run_id, at."""
    ids = _UUIDS.validate_python([r[5] for r in rows])
    return [
        construct(TranscriptEntry, {
            "runtime_id": r[0], "worker_id": r[1], "sequence": r[2], "role": Role(r[3]),
            "content": r[4], "event_id": event_id, "run_id": r[6], "at": dt_from_us(r[7]),
        })
        for r, event_id in zip(rows, ids, strict=True)
    ]


def diagnostics_from_rows(rows: Sequence[Sequence[Any]]) -> list[Diagnostic]:
    """id, runtime_id, severity, code, message, worker_id, event_id, at."""
    ids = _UUIDS.validate_python([r[6] for r in rows])
    return [
        construct(Diagnostic, {
            "id": r[0], "runtime_id": r[1], "severity": Severity(r[2]), "code": r[3],
            "message": r[4], "worker_id": r[5], "event_id": event_id, "at": dt_from_us(r[7]),
        })
        for r, event_id in zip(rows, ids, strict=True)
    ]


def host_from_row(r: Sequence[Any]) -> HostLease:
    """runtime_id, pid, host_name, started_at, heartbeat_at."""
    return construct(HostLease, {
        "runtime_id": r[0], "pid": r[1], "host_name": r[2], "started_at": dt_from_us(r[3]),
        "heartbeat_at": dt_from_us(r[4]),
    })
