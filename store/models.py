"""Frozen pydantic records for every noun of the vocabulary (DESIGN.md section 3).

These are values at the boundary between layers: the store returns them, the
engine builds and returns them, the console renders them. Behaviour lives in
the engine; these classes only validate shape.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

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


class Event(Record):
    """One committed fact. `position` is the global cursor; `seq` is per runtime."""

    position: int = Field(ge=1)
    runtime_id: RuntimeId
    seq: int = Field(ge=1)
    event_id: UUID
    kind: EventKind
    worker_id: WorkerId | None = None
    run_id: RunId | None = None
    run_seq: int | None = Field(default=None, ge=1)
    message: str = ""
    payload: dict[str, Any] = Field(default_factory=dict)
    at: datetime

    @property
    def level(self) -> Severity:
        from store.levels import level_of

        return level_of(self.kind, self.payload)

    def to_json_dict(self) -> dict[str, Any]:
        """The JSON-lines shape of `agentdeck events --json`."""
        return self.model_dump(mode="json")


class Cursor(Record):
    """A reader's place in the global log: everything at or below `position` is seen."""

    position: int = Field(default=0, ge=0)


class Batch(Record):
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


RuntimeSummary.model_rebuild()
