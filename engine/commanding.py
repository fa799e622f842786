"""What a command is to both sides of the inbox: its scope, its words, its errors.

The host executes a command through the same `Runtime` operation a local call
uses, passing a `CommandScope`; the operation adds the scope's
`command.completed` event to the one append that carries its own events, so
the outcome and what it caused commit together (and the store refuses a second
outcome: `CommandAlreadySettled`). The issuer turns a `command.failed` back
into the error a local call would have raised (`error_from_outcome`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from engine import errors as engine_errors
from engine.messages import intent_text, one_line
from engine.results import InputAck, LifecycleAck
from store import errors as store_errors
from store.catalog import (
    CancelRunCommand,
    CancelWorkerCommand,
    CommandCompleted,
    CommandFailed,
    CommandRequest,
    CreateWorkerCommand,
    SendInputCommand,
    StopRuntimeCommand,
    StopWorkerCommand,
)
from store.feed import Subscription
from store.models import Event, Lag, NewEvent, WorkerRecord

if TYPE_CHECKING:
    from engine.emitter import Emitter


@dataclass
class CommandScope:
    """A command the host is executing; its outcome joins the append of its effects."""

    command_id: str
    request: CommandRequest
    built: bool = False  # an operation put the outcome into its append

    @property
    def worker_id(self) -> str | None:
        return getattr(self.request, "worker_id", None)

    def completed(self, emitter: Emitter, result: object) -> NewEvent:
        """The `command.completed` event saying `result` (what the local call returns)."""
        self.built = True
        payload = CommandCompleted(
            command_id=self.command_id, op=self.request.op, **answer_fields(self.request, result)
        )
        return emitter.new(
            "command.completed",
            f"command {short(self.command_id)} done: {answer_text(self.request, payload)}",
            payload,
            worker_id=self.worker_id,
        )

    def failed(self, emitter: Emitter, error: BaseException) -> NewEvent:
        """The `command.failed` event saying `error`, as a local call would have raised it."""
        payload = failure(self.command_id, self.request.op, error)
        return emitter.new(
            "command.failed",
            f"command {short(self.command_id)} ({describe(self.request)}) failed: "
            f"{one_line(payload.message)}",
            payload,
            worker_id=self.worker_id,
        )


class Following:
    """A filtered subscription read by a task of its own, each event handed to `take`.

    Both sides of the inbox follow one: the host its runtime's `command.issued`,
    the issuer the outcomes. A `Lag` needs nothing: the subscription replays
    through its filter from where it was, so no event is skipped.
    """

    def __init__(self, subscription: Subscription, take: Callable[[Event], None], name: str) -> None:
        self._subscription = subscription
        self._take = take
        self._task = asyncio.get_running_loop().create_task(self._follow(), name=name)

    async def _follow(self) -> None:
        with contextlib.suppress(StopAsyncIteration):
            while True:
                for item in await self._subscription.next_batch():
                    if not isinstance(item, Lag):
                        self._take(item)

    async def close(self) -> None:
        self._subscription.close()
        self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task


def short(command_id: str) -> str:
    """The tail of a UUIDv7 (its head is a timestamp shared by commands issued together)."""
    return command_id[-8:]


def describe(request: CommandRequest) -> str:
    """What a command asks, in a few words."""
    match request:
        case CreateWorkerCommand(spec=spec):
            return f"create a worker ({intent_text(spec)}, {spec.profile or 'default profile'})"
        case SendInputCommand(worker_id=worker, content=content):
            return f"input to {worker}: {one_line(content)}"
        case StopWorkerCommand(worker_id=worker):
            return f"stop {worker}"
        case CancelWorkerCommand(worker_id=worker):
            return f"cancel {worker}"
        case CancelRunCommand(worker_id=worker, run_id=run):
            return f"cancel run {run} of {worker}"
        case StopRuntimeCommand():
            return "stop the runtime"
    raise AssertionError(f"unknown command {request!r}")


def answer_fields(request: CommandRequest, result: object) -> dict[str, Any]:
    """The fields of `CommandCompleted` that carry an operation's result."""
    match result:
        case WorkerRecord():
            return {"worker_id": result.worker_id, "status": result.status.value}
        case InputAck():
            return {
                "worker_id": result.ref.worker_id,
                "run_id": result.run_id,
                "event_id": str(result.event_id),
                "transcript_sequence": result.transcript_sequence,
                "status": result.status.value,
            }
        case LifecycleAck():
            return {
                "worker_id": result.ref.worker_id,
                "status": result.status.value,
                "event_id": str(result.event_id),
                "changed": result.changed,
            }
        case bool():  # cancel run: whether it cancelled one
            assert isinstance(request, CancelRunCommand)
            return {"worker_id": request.worker_id, "run_id": request.run_id, "changed": result}
        case UUID():  # stop runtime: the event that stopped it
            return {"event_id": str(result)}
    raise AssertionError(f"no answer fields for {result!r}")


def answer_text(request: CommandRequest, answer: CommandCompleted) -> str:
    match request:
        case CreateWorkerCommand():
            return f"worker {answer.worker_id} created"
        case SendInputCommand():
            return f"run {answer.run_id} queued for {answer.worker_id}"
        case StopWorkerCommand() | CancelWorkerCommand():
            return f"{answer.worker_id} {answer.status}" + ("" if answer.changed else " already")
        case CancelRunCommand():
            return f"run {request.run_id} " + (
                "cancelled" if answer.changed else "was not running; nothing changed"
            )
        case StopRuntimeCommand():
            return "runtime stopped"
    raise AssertionError(f"unknown command {request!r}")


# -- errors across processes ----------------------------------------------------------

_SIMPLE = (str, int, bool, type(None))


def failure(command_id: str, op: str, error: BaseException) -> CommandFailed:
    """`error` as a `command.failed` payload: its class, its line, its simple attributes."""
    details = {
        key: value
        for key, value in vars(error).items()
        if not key.startswith("_") and isinstance(value, _SIMPLE)
    }
    return CommandFailed(
        command_id=command_id,
        op=op,
        error=type(error).__name__,
        message=str(error) or type(error).__name__,
        details=details,
    )


def _known_errors() -> dict[str, type[Exception]]:
    found: dict[str, type[Exception]] = {}
    for module in (store_errors, engine_errors):
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, (engine_errors.EngineError,
                                                              store_errors.StoreError)):
                found[value.__name__] = value
    return found


_ERRORS = _known_errors()


class CommandRefused(engine_errors.EngineError):
    """A host's refusal of a kind this console does not know (a newer host): its line."""


def error_from_outcome(outcome: CommandFailed) -> Exception:
    """The error a local call would have raised: same class, same line, same attributes."""
    cls = _ERRORS.get(outcome.error)
    if cls is None:
        return CommandRefused(outcome.message)
    # Not through the class's own __init__ (its arguments differ per class): the
    # message is already the finished line, and the attributes come from details.
    error = cls.__new__(cls)
    Exception.__init__(error, outcome.message)
    error.__dict__.update(outcome.details)
    return error
