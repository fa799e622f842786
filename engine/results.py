"""Typed results of engine operations (frozen records, like the store's)."""

from __future__ import annotations

from uuid import UUID

from pydantic import ConfigDict, Field

from store.models import Event, Record, RuntimeId, WorkerRef, WorkerSpec, WorkerStatus

CreateWorkerRequest = WorkerSpec
"""What `create_worker` takes: intent, profile, bundle, capabilities, refs."""


class EventCursor(Record):
    """A runtime-scoped cursor: the next runtime seq to read."""

    runtime_id: RuntimeId
    next_seq: int = Field(default=1, ge=1)


class EventBatch(Record):
    # Event is a plain class (store.models): checked to be one, kept as is.
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    runtime_id: RuntimeId
    events: list[Event]
    cursor: EventCursor
    has_more: bool


class InputAck(Record):
    ref: WorkerRef
    status: WorkerStatus
    transcript_sequence: int
    event_id: UUID
    run_id: str


class LifecycleAck(Record):
    """Answer to stop/cancel: the status now and the event that made it so."""

    ref: WorkerRef
    status: WorkerStatus
    event_id: UUID
    changed: bool
