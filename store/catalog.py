"""The event catalog: every kind the store accepts, written down once.

Each kind has a typed payload model, a level, whether it is a transcript
entry, and the run or worker status it moves to. The engine builds events
through `event`; the store refuses at append any event whose kind is not here
or whose payload does not fit its model (`check`); the projector, verify, the
console and the command line decode through `payload_of`, `level_of`,
`transcript_entry` and `next_run_status`. The run state machine lives here and
nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from store.errors import InvalidEvent
from store.models import (
    Event,
    Limits,
    NewEvent,
    Role,
    RunStatus,
    Severity,
    TranscriptEntry,
    WorkerSpec,
    WorkerStatus,
)


class Payload(BaseModel):
    """Base of every payload: immutable, no unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def as_dict(self) -> dict[str, Any]:
        """The JSON map stored in the log (keys left unset or None are omitted)."""
        return self.model_dump(mode="json", exclude_none=True)


class Empty(Payload):
    """A kind whose facts are all in the event's own fields."""


class RuntimeStarted(Payload):
    limits: Limits = Field(default_factory=Limits)
    display_name: str | None = None


class RuntimeRestored(Payload):
    pid: int | None = None


class WorkerCreated(Payload):
    spec: WorkerSpec


class TranscriptAppended(Payload):
    """`worker.input.accepted` (what the worker was asked) and `worker.output` (its answer)."""

    role: Role
    content: str
    sequence: int = Field(ge=1)


class WorkerEnded(Payload):
    reason: str


class RunCreated(Payload):
    prompt: str
    input_sequence: int | None = None
    role: Role = Role.USER


class RunCompleted(Payload):
    result: str = ""


class EndedProcess(Payload):
    """A process a new host ended because the previous host left it running."""

    pid: int
    pgid: int | None = None
    command: str = ""
    ended: str = ""


class ProcessFacts(Payload):
    """What a command profile reports about its program (every key optional)."""

    argv: list[str] | None = None
    cwd: str | None = None
    pid: int | None = None
    pgid: int | None = None
    host: str | None = None
    mode: Literal["per-input", "session"] | None = None
    reason: str | None = None
    exit_code: int | None = None
    signal: str | None = None
    duration_s: float | None = None
    uptime_s: float | None = None
    output_bytes: int | None = None
    truncated_bytes: int | None = None
    bytes: int | None = None
    timeout_s: float | None = None
    ended: str | None = None
    leftovers: str | None = None
    stderr_tail: list[str] | None = None
    attempt: int | None = None
    attempts: int | None = None
    max_attempts: int | None = None
    delay_s: float | None = None


class RunFailed(ProcessFacts):
    """Why a run failed, with what its program reported when it had one."""

    error: str
    ended_processes: list[EndedProcess] | None = None


class RunCancelled(Payload):
    reason: str


class StepStarted(Payload):
    step: int
    title: str


class ToolStarted(Payload):
    step: int
    tool: str


class ToolCompleted(Payload):
    step: int
    tool: str
    duration_ms: int


class DiagnosticRaised(Payload):
    severity: Severity = Severity.INFO
    code: str
    message: str


# -- the command inbox ------------------------------------------------------------
# A console that does not host a runtime asks its host to act by appending a
# `command.issued` event to the runtime's log (its event id is the command id,
# so a retry is refused as a duplicate and never runs twice). The host answers
# with `command.completed` or `command.failed`, appended in the same transaction
# as the events the command caused. The `commands` projection holds each
# command's state; settling one that is not pending is refused by the store.


class Issuer(Payload):
    """Who asked: the issuing console, its process and its machine."""

    console_id: str
    pid: int
    host_name: str


class CreateWorkerCommand(Payload):
    op: Literal["create_worker"] = "create_worker"
    spec: WorkerSpec


class SendInputCommand(Payload):
    op: Literal["send_input"] = "send_input"
    worker_id: str
    content: str
    role: Role = Role.USER


class StopWorkerCommand(Payload):
    op: Literal["stop_worker"] = "stop_worker"
    worker_id: str
    reason: str | None = None


class CancelWorkerCommand(Payload):
    op: Literal["cancel_worker"] = "cancel_worker"
    worker_id: str
    reason: str | None = None


class CancelRunCommand(Payload):
    op: Literal["cancel_run"] = "cancel_run"
    worker_id: str
    run_id: str
    reason: str | None = None


class StopRuntimeCommand(Payload):
    op: Literal["stop_runtime"] = "stop_runtime"


CommandRequest = Annotated[
    CreateWorkerCommand
    | SendInputCommand
    | StopWorkerCommand
    | CancelWorkerCommand
    | CancelRunCommand
    | StopRuntimeCommand,
    Field(discriminator="op"),
]


class CommandIssued(Payload):
    command_id: str  # equals the event's id
    request: CommandRequest
    issuer: Issuer
    expires_at: datetime  # the host refuses to start it later than this


class CommandCompleted(Payload):
    """What the command did: the fields of the answer a local call returns."""

    command_id: str
    op: str
    worker_id: str | None = None
    run_id: str | None = None
    event_id: str | None = None  # the event that answers (worker end, runtime stop, input)
    transcript_sequence: int | None = None
    status: str | None = None  # the worker's status after it
    changed: bool | None = None  # stop/cancel: whether it changed anything; cancel run: whether it did


class CommandFailed(Payload):
    """Why the command changed nothing: the error a local call would have raised."""

    command_id: str
    op: str
    error: str  # the error's class name (WorkerNotFound, RuntimeStopped, CommandExpired, ...)
    message: str  # its one line, as a local call shows it
    details: dict[str, str | int | bool | None] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class KindSpec:
    """What one kind of event is."""

    kind: str
    payload: type[Payload]
    level: Severity = Severity.INFO
    transcript: bool = False  # its payload is a TranscriptAppended entry
    run_status: RunStatus | None = None  # the status it moves its run to
    worker_status: WorkerStatus | None = None  # the status it moves its worker to


_I, _W, _E = Severity.INFO, Severity.WARNING, Severity.ERROR

CATALOG: Mapping[str, KindSpec] = {
    spec.kind: spec
    for spec in (
        KindSpec("runtime.started", RuntimeStarted),
        KindSpec("runtime.stopped", Empty),
        KindSpec("runtime.restored", RuntimeRestored),
        KindSpec("worker.created", WorkerCreated, worker_status=WorkerStatus.RUNNING),
        KindSpec("worker.input.accepted", TranscriptAppended, transcript=True),
        KindSpec("worker.output", TranscriptAppended, transcript=True),
        KindSpec("worker.stopped", WorkerEnded, worker_status=WorkerStatus.STOPPED),
        KindSpec("worker.cancelled", WorkerEnded, worker_status=WorkerStatus.CANCELLED),
        KindSpec("run.created", RunCreated, run_status=RunStatus.CREATED),
        KindSpec("run.planning", Empty, run_status=RunStatus.PLANNING),
        KindSpec("run.executing", Empty, run_status=RunStatus.EXECUTING),
        KindSpec("run.verifying", Empty, run_status=RunStatus.VERIFYING),
        KindSpec("run.completed", RunCompleted, run_status=RunStatus.COMPLETED),
        KindSpec("run.failed", RunFailed, _E, run_status=RunStatus.FAILED),
        KindSpec("run.cancelled", RunCancelled, run_status=RunStatus.CANCELLED),
        KindSpec("run.step.started", StepStarted),
        KindSpec("run.tool.started", ToolStarted),
        KindSpec("run.tool.completed", ToolCompleted),
        KindSpec("exec.command.started", ProcessFacts),
        KindSpec("exec.command.completed", ProcessFacts),
        KindSpec("exec.command.failed", ProcessFacts, _E),
        KindSpec("exec.command.timeout", ProcessFacts, _E),
        KindSpec("exec.session.input", ProcessFacts),
        KindSpec("exec.session.answered", ProcessFacts),
        KindSpec("worker.restarting", ProcessFacts, _W),
        KindSpec("worker.restarted", ProcessFacts),
        KindSpec("worker.restart.backoff", ProcessFacts, _W),
        KindSpec("worker.restart.failed", ProcessFacts, _E),
        KindSpec("diagnostic.raised", DiagnosticRaised),
        KindSpec("command.issued", CommandIssued),
        KindSpec("command.completed", CommandCompleted),
        KindSpec("command.failed", CommandFailed, _W),
    )
}

KINDS = frozenset(CATALOG)
TRANSCRIPT_KINDS = frozenset(k for k, s in CATALOG.items() if s.transcript)
WORKER_STATUS_KINDS = frozenset(k for k, s in CATALOG.items() if s.worker_status is not None)
COMMAND_OUTCOME_KINDS = frozenset({"command.completed", "command.failed"})
_SEVERITIES = {s.value: s for s in Severity}


def spec_of(kind: str) -> KindSpec:
    """The catalog entry of `kind`; InvalidEvent when the store does not know it."""
    spec = CATALOG.get(kind)
    if spec is None:
        raise InvalidEvent(kind, "this kind is not in the event catalog (store/catalog.py)")
    return spec


def fit(kind: str, payload: Payload) -> KindSpec:
    """The catalog entry of `kind`, if `payload` is its kind's model; InvalidEvent if not."""
    spec = spec_of(kind)
    if not isinstance(payload, spec.payload):
        raise InvalidEvent(
            kind, f"its payload is a {spec.payload.__name__}, not a {type(payload).__name__}"
        )
    return spec


def event(
    kind: str,
    payload: Payload,
    *,
    event_id: UUID,
    at: datetime,
    message: str = "",
    worker_id: str | None = None,
    run_id: str | None = None,
    run_seq: int | None = None,
) -> NewEvent:
    """A NewEvent of `kind` built from its typed payload (the one way producers build events)."""
    fit(kind, payload)
    return NewEvent(
        event_id=event_id,
        kind=kind,
        worker_id=worker_id,
        run_id=run_id,
        run_seq=run_seq,
        message=message,
        payload=payload.as_dict(),
        at=at,
    )


def check(kind: str, payload: Mapping[str, Any]) -> Payload:
    """The typed payload of an event; InvalidEvent for an unknown kind or a payload that does not fit."""
    spec = spec_of(kind)
    try:
        return spec.payload.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "payload"
        raise InvalidEvent(kind, f"{where}: {first['msg']}") from None


def payload_of(event: Event | NewEvent) -> Payload:
    """The typed payload of a stored event (validated against its kind's model)."""
    return spec_of(event.kind).payload.model_validate(event.payload)


def level_of(kind: str, payload: Mapping[str, Any]) -> Severity:
    """The severity of an event: its kind's, or a diagnostic's own."""
    if kind == "diagnostic.raised":
        return _SEVERITIES.get(str(payload.get("severity", "info")), Severity.INFO)
    spec = CATALOG.get(kind)
    return spec.level if spec is not None else Severity.INFO


def transcript_entry(event: Event) -> TranscriptEntry | None:
    """The transcript entry a committed event appends, or None when it is not one."""
    if event.kind not in TRANSCRIPT_KINDS or event.worker_id is None:
        return None
    entry = TranscriptAppended.model_validate(event.payload)
    return TranscriptEntry(
        runtime_id=event.runtime_id,
        worker_id=event.worker_id,
        sequence=entry.sequence,
        role=entry.role,
        content=entry.content,
        event_id=event.event_id,
        run_id=event.run_id,
        at=event.at,
    )


def next_run_status(previous: RunStatus | None, kind: str) -> RunStatus | None:
    """The run state machine: the status `kind` moves a run in `previous` to, or None.

    None means the event changes nothing: it is not a run transition, or the
    run is already terminal (completed, failed and cancelled stick, so a late
    completion after a cancel is ignored), or it is a run.created of a run that
    already exists.
    """
    spec = CATALOG.get(kind)
    target = spec.run_status if spec is not None else None
    if target is None:
        return None
    if target is RunStatus.CREATED:
        return target if previous is None else None
    if previous is None or previous.terminal:
        return None
    return target
