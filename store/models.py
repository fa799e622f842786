"""Frozen pydantic records for every noun of the vocabulary (DESIGN.md section 3).

These are values at the boundary between layers: the store returns them, the
engine builds and returns them, the console renders them. Behaviour lives in
the engine; these classes only validate shape.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import to_jsonable_python

from store.codec import dt_from_us, dump_payload, load_payload

RUNTIME_ID_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
WORKER_ID_RE = re.compile(r"w-[1-9][0-9]{0,17}")
KIND_RE = re.compile(r"[a-z0-9_]+(?:\.[a-z0-9_]+)*")
RUN_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,80}")


def _matching(pattern: re.Pattern[str], what: str, example: str) -> Any:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"{what} {value!r} is not valid (expected something like {example!r})")
        return value

    return AfterValidator(check)


RuntimeId = Annotated[str, _matching(RUNTIME_ID_RE, "runtime id", "local")]
WorkerId = Annotated[str, _matching(WORKER_ID_RE, "worker id", "w-1")]
EventKind = Annotated[str, _matching(KIND_RE, "event kind", "run.completed")]
RunId = Annotated[str, _matching(RUN_ID_RE, "run id", "r-0192f3c4")]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Record(BaseModel):
    """Base for all records: immutable, no unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class RuntimeStatus(StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"


class WorkerStatus(StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"
    CANCELLED = "cancelled"


class RunStatus(StrEnum):
    CREATED = "created"
    PLANNING = "planning"
    EXECUTING = "executing"
    VERIFYING = "verifying"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_RUN_STATUSES

    @property
    def active(self) -> bool:
        return self in (RunStatus.PLANNING, RunStatus.EXECUTING, RunStatus.VERIFYING)


TERMINAL_RUN_STATUSES = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED})


class Role(StrEnum):
    USER = "user"
    SYSTEM = "system"
    ASSISTANT = "assistant"
    TOOL = "tool"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2}


class WorkerRef(Record):
    """The authority pair: a worker id means nothing without its runtime."""

    runtime_id: RuntimeId
    worker_id: WorkerId

    def __str__(self) -> str:
        return f"{self.runtime_id}/{self.worker_id}"


class NewEvent(Record):
    """An event as a producer builds it, before the store gives it a place."""

    event_id: UUID
    kind: EventKind
    worker_id: WorkerId | None = None
    run_id: RunId | None = None
    run_seq: int | None = Field(default=None, ge=1)
    message: str = ""
    payload: dict[str, Any] = Field(default_factory=dict)
    at: datetime


_LEVELS = (Severity.INFO, Severity.WARNING, Severity.ERROR)
"""Severity by rank (the `events.level` column stores `Severity.rank`)."""


def _check(pattern: re.Pattern[str], what: str, example: str, value: object) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValueError(f"{what} {value!r} is not valid (expected something like {example!r})")
    return value


def _count(what: str, value: object, *, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{what} must be an integer >= 1, not {value!r}")
    return value


class _EventSlots:
    """The storage of an Event: its fields, and the stored forms its decoded ones come from."""

    __slots__ = (
        "_at_us",
        "_event_id_text",
        "_payload_json",
        "at",
        "event_id",
        "kind",
        "level",
        "message",
        "payload",
        "position",
        "run_id",
        "run_seq",
        "runtime_id",
        "seq",
        "worker_id",
    )

    position: int
    runtime_id: str
    seq: int
    kind: str
    level: Severity
    worker_id: str | None
    run_id: str | None
    run_seq: int | None
    message: str
    # Decoded from the stored forms below on first access (see Event.__getattr__).
    event_id: UUID
    payload: dict[str, Any]
    at: datetime
    _event_id_text: str
    _payload_json: str
    _at_us: int


class Event(_EventSlots):
    """One committed fact. `position` is the global cursor; `seq` is per runtime.

    Not a pydantic model: committed events are built by the store from rows it
    checked at append (`NewEvent` and the catalog are where producers' input is
    validated), and a page of them must cost little more than the query. The
    store fills the slots directly (store.records) and leaves `event_id`,
    `payload` and `at` in their stored forms, decoded once on first access; a
    reader that looks only at `kind` or `position` never pays for them.

    Immutable (assigning or deleting an attribute raises), compared and hashed
    by value. The keyword constructor, for tests and fakes, checks the fields'
    shapes and computes `level` from the catalog when it is not given.
    """

    __slots__ = ()

    FIELDS: ClassVar[tuple[str, ...]] = (
        "position", "runtime_id", "seq", "event_id", "kind", "worker_id", "run_id", "run_seq",
        "message", "payload", "at",
    )
    """The fields of `to_json_dict` (the JSON-lines shape); `level` is derived, not in it."""

    def __init__(
        self,
        *,
        position: int,
        runtime_id: str,
        seq: int,
        event_id: UUID | str,
        kind: str,
        worker_id: str | None = None,
        run_id: str | None = None,
        run_seq: int | None = None,
        message: str = "",
        payload: Mapping[str, Any] | None = None,
        at: datetime | str,
        level: Severity | str | None = None,
    ) -> None:
        fields_payload = {} if payload is None else dict(payload)
        values: dict[str, object] = {
            "position": _count("position", position),
            "runtime_id": _check(RUNTIME_ID_RE, "runtime id", "local", runtime_id),
            "seq": _count("seq", seq),
            "event_id": event_id if isinstance(event_id, UUID) else UUID(str(event_id)),
            "kind": _check(KIND_RE, "event kind", "run.completed", kind),
            "worker_id": None if worker_id is None
            else _check(WORKER_ID_RE, "worker id", "w-1", worker_id),
            "run_id": None if run_id is None else _check(RUN_ID_RE, "run id", "r-0192f3c4", run_id),
            "run_seq": _count("run_seq", run_seq, optional=True),
            "message": message,
            "payload": fields_payload,
            "at": at if isinstance(at, datetime) else datetime.fromisoformat(at),
        }
        if not isinstance(message, str):
            raise ValueError(f"message must be a string, not {type(message).__name__}")
        if level is None:
            from store.catalog import level_of  # the catalog imports this module

            level = level_of(kind, fields_payload)
        values["level"] = Severity(level)
        for name, value in values.items():
            object.__setattr__(self, name, value)

    # Hidden from type checkers, so a misspelt attribute stays an error for them.
    if not TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any:
            # Called only for a slot not filled yet: a decoded field on first access.
            if name == "payload":
                value: Any = load_payload(self._payload_json)
            elif name == "event_id":
                value = UUID(self._event_id_text)
            elif name == "at":
                value = dt_from_us(self._at_us)
            else:
                raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
            object.__setattr__(self, name, value)
            return value

        def __setattr__(self, name: str, value: object) -> None:
            raise AttributeError(f"Event is immutable: cannot set {name!r}")

        def __delattr__(self, name: str) -> None:
            raise AttributeError(f"Event is immutable: cannot delete {name!r}")


    @property
    def payload_json(self) -> str:
        """The payload's canonical JSON (store.codec.dump_payload): as stored when read from the log."""
        try:
            return self._payload_json
        except AttributeError:
            return dump_payload(self.payload)

    def _key(self) -> tuple[Any, ...]:
        return (
            self.position, self.runtime_id, self.seq, self.event_id, self.kind, self.worker_id,
            self.run_id, self.run_seq, self.message, self.payload, self.at, self.level,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Event):
            return NotImplemented
        return self is other or self._key() == other._key()

    def __hash__(self) -> int:
        # The identifying fields only (a payload dict is not hashable); equal events agree on them.
        return hash((self.position, self.runtime_id, self.seq, self.event_id, self.kind))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in (*self.FIELDS, "level"))
        return f"Event({fields})"

    def __reduce__(self) -> Any:
        raise TypeError("Event is not picklable")

    def __copy__(self) -> Event:
        return self  # immutable

    def __deepcopy__(self, memo: dict[int, Any]) -> Event:
        return self

    def to_json_dict(self) -> dict[str, Any]:
        """The JSON-lines shape of `agentdeck events --json` (as pydantic's JSON mode wrote it)."""
        return {
            "position": self.position,
            "runtime_id": self.runtime_id,
            "seq": self.seq,
            "event_id": str(self.event_id),
            "kind": self.kind,
            "worker_id": self.worker_id,
            "run_id": self.run_id,
            "run_seq": self.run_seq,
            "message": self.message,
            "payload": to_jsonable_python(self.payload),
            "at": to_jsonable_python(self.at),
        }

    @classmethod
    def from_json_dict(cls, obj: Mapping[str, Any]) -> Event:
        """An Event from `to_json_dict`'s shape (unknown keys refused; `level` recomputed)."""
        unknown = set(obj) - set(cls.FIELDS)
        if unknown:
            raise ValueError(f"unknown event field(s): {', '.join(sorted(unknown))}")
        return cls(**obj)


class Cursor(Record):
    """A reader's place in the global log: everything at or below `position` is seen."""

    position: int = Field(default=0, ge=0)


class Batch(Record):
    # Event is a plain class: pydantic checks each item is one and keeps it as is.
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    events: list[Event]
    cursor: Cursor
    has_more: bool


class Lag(Record):
    """Told to a subscriber that fell behind; it resumes from the store after `position`."""

    position: int
    dropped: int


class Limits(Record):
    max_transcript_projection_items: int = Field(default=500, ge=1)
    max_event_batch_items: int = Field(default=10_000, ge=1)
    max_input_bytes: int = Field(default=256 * 1024, ge=1)
    max_workers: int = Field(default=10_000, ge=1)


class RuntimeRecord(Record):
    runtime_id: RuntimeId
    status: RuntimeStatus
    last_seq: int
    display_name: str | None = None
    limits: Limits = Field(default_factory=Limits)
    created_at: datetime
    updated_at: datetime


class RuntimeSummary(Record):
    runtime: RuntimeRecord
    workers_by_status: dict[WorkerStatus, int]
    diagnostic_count: int
    host: HostLease | None = None


class HostLease(Record):
    runtime_id: RuntimeId
    pid: int
    host_name: str
    started_at: datetime
    heartbeat_at: datetime


class Capability(Record):
    name: str
    reason: str | None = None


class NamedRef(Record):
    name: str
    reference: str


class AssistantIntent(Record):
    type: Literal["assistant"] = "assistant"
    purpose: str | None = None


class TaskIntent(Record):
    type: Literal["task"] = "task"
    objective: str


class RoleIntent(Record):
    type: Literal["role"] = "role"
    role: str
    purpose: str | None = None


Intent = Annotated[AssistantIntent | TaskIntent | RoleIntent, Field(discriminator="type")]


class WorkerSpec(Record):
    """What a worker was created from (the create request after validation)."""

    intent: Intent = Field(default_factory=AssistantIntent)
    profile: str = "default"
    config_bundle: str | None = None
    capabilities: list[Capability] = Field(default_factory=list)
    workspace_refs: list[NamedRef] = Field(default_factory=list)
    mount_refs: list[NamedRef] = Field(default_factory=list)


class WorkerRecord(Record):
    runtime_id: RuntimeId
    worker_id: WorkerId
    status: WorkerStatus
    spec: WorkerSpec
    transcript_len: int
    queued: int
    current_run_id: RunId | None
    current_run_status: RunStatus | None
    terminal_event_id: UUID | None
    last_seq: int
    created_at: datetime
    updated_at: datetime

    @property
    def ref(self) -> WorkerRef:
        return WorkerRef(runtime_id=self.runtime_id, worker_id=self.worker_id)


class RunRecord(Record):
    runtime_id: RuntimeId
    run_id: RunId
    worker_id: WorkerId
    status: RunStatus
    prompt: str
    input_sequence: int | None
    result_text: str | None
    error: str | None
    last_run_seq: int
    created_at: datetime
    updated_at: datetime


class TranscriptEntry(Record):
    runtime_id: RuntimeId
    worker_id: WorkerId
    sequence: int = Field(ge=1)
    role: Role
    content: str
    event_id: UUID
    run_id: RunId | None
    at: datetime


class TranscriptPage(Record):
    ref: WorkerRef
    start: int
    limit: int
    items: list[TranscriptEntry]
    total_items: int
    next_start: int | None


class Diagnostic(Record):
    id: int
    runtime_id: RuntimeId
    severity: Severity
    code: str
    message: str
    worker_id: WorkerId | None
    event_id: UUID
    at: datetime


@dataclass(frozen=True, slots=True)
class CommandState:
    """Where one command of the inbox stands (the `commands` projection with its events).

    A dataclass, not a Record: it holds committed Events, which are not
    pydantic models. `status` is "pending", "completed" or "failed".
    """

    command_id: str
    runtime_id: str
    op: str
    status: str
    worker_id: str | None
    issued: Event  # its command.issued
    outcome: Event | None  # its command.completed / command.failed, once settled
    expires_at: datetime  # UTC

    @property
    def pending(self) -> bool:
        return self.status == "pending"


RuntimeSummary.model_rebuild()
