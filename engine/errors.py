"""The engine's refusals, each with a message an operator can act on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from store.errors import LimitTooLarge as LimitTooLarge  # one class for both layers
from store.models import HostLease


class EngineError(Exception):
    """Base of all engine errors."""


class InvalidRequest(EngineError):
    """The request itself is wrong (blank objective, empty input, over a size limit)."""


class RuntimeStopped(EngineError):
    def __init__(self, runtime_id: str) -> None:
        self.runtime_id = runtime_id
        super().__init__(
            f"runtime {runtime_id} is stopped; its data stays readable but it accepts no changes"
        )


class WrongRuntime(EngineError):
    def __init__(self, expected: str, actual: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(f"worker ref belongs to runtime {actual}, not {expected}")


class WrongRuntimeCursor(EngineError):
    def __init__(self, expected: str, actual: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(f"cursor belongs to runtime {actual}, not {expected}")


class WorkerNotFound(EngineError):
    def __init__(self, runtime_id: str, worker_id: str) -> None:
        self.worker_id = worker_id
        super().__init__(f"no worker {worker_id} in runtime {runtime_id}")


class WorkerNotRunning(InvalidRequest):
    def __init__(self, worker_id: str, status: str) -> None:
        self.worker_id = worker_id
        self.status = status
        super().__init__(f"worker {worker_id} is {status} and takes no more input")


class RuntimeBusy(EngineError):
    def __init__(self, holder: HostLease) -> None:
        self.holder = holder
        super().__init__(
            f"runtime {holder.runtime_id} is hosted by pid {holder.pid} on {holder.host_name} "
            f"(heartbeat {holder.heartbeat_at:%H:%M:%S} UTC); stop that process, or host "
            "another runtime name (--runtime)"
        )


class ReadOnlyRuntime(EngineError):
    def __init__(self, runtime_id: str, why: str) -> None:
        super().__init__(f"runtime {runtime_id} is read-only here: {why}")


@dataclass(frozen=True)
class StoreFault:
    """Why a runtime cannot record anything right now, and since when (UTC)."""

    reason: str
    since: datetime


class StorageUnavailable(EngineError):
    """The store refused a write; the runtime holds every change until it takes them again."""

    def __init__(self, runtime_id: str, fault: StoreFault) -> None:
        self.fault = fault
        super().__init__(
            f"runtime {runtime_id} cannot record anything right now ({fault.reason}); "
            "nothing was changed, and it resumes by itself once the database can be written"
        )


class NoLiveHost(EngineError):
    """A command for a runtime that no live process hosts: nothing would run it."""

    def __init__(self, runtime_id: str, holder: HostLease | None) -> None:
        self.runtime_id = runtime_id
        self.holder = holder
        if holder is None:
            why = "no process hosts it"
        else:
            why = (
                f"its host (pid {holder.pid} on {holder.host_name}) stopped heartbeating at "
                f"{holder.heartbeat_at:%H:%M:%S} UTC"
            )
        super().__init__(
            f"runtime {runtime_id} has no live host ({why}); nothing was changed. Start one "
            f"with `agentdeck host --runtime {runtime_id}`, or open the console on it "
            f"(`agentdeck --runtime {runtime_id}`)"
        )


class CommandExpired(EngineError):
    """A command its host did not start before it expired; it never runs after that."""

    def __init__(self, command_id: str, expires_at: datetime, why: str) -> None:
        self.command_id = command_id
        self.expires_at = expires_at
        super().__init__(
            f"command {command_id} expired at {expires_at:%H:%M:%S} UTC {why}; nothing was "
            "changed, and it will not run later"
        )
