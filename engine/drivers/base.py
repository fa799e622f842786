"""What a driver is and what it may do with a run.

A driver receives a run through a `RunContext` and reports everything it does
through it, so every transcript entry and event goes through the runtime's
validation, sequencing and limits. Cancellation is asyncio cancellation of the
task awaiting `Driver.run`: a driver cleans up (kills its processes) in its
`except CancelledError`/`finally` and re-raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

OutputRole = Literal["assistant", "tool"]
Phase = Literal["planning", "executing", "verifying"]
DiagnosticSeverity = Literal["info", "warning", "error"]


class RunFailed(Exception):
    """Raised by a driver to fail the run; the message becomes the run's error."""

    def __init__(self, reason: str, payload: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.payload = payload or {}


@dataclass(frozen=True)
class RunInput:
    run_id: str
    worker_id: str
    role: Literal["user", "system"]
    content: str


class RunContext(Protocol):
    """The runtime's side of a run, as a driver sees it."""

    @property
    def input(self) -> RunInput: ...

    async def phase(self, phase: Phase) -> None:
        """Move the run to planning, executing or verifying (one event each)."""

    async def output(self, role: OutputRole, content: str) -> None:
        """Append a transcript entry (assistant answer or tool output) for this run."""

    async def event(self, kind: str, message: str, payload: dict[str, Any] | None = None) -> None:
        """Emit a run event of the driver's own (e.g. `exec.command.started`)."""

    async def diagnostic(self, severity: DiagnosticSeverity, code: str, message: str) -> None:
        """Raise a diagnostic about this worker (e.g. output was cut)."""


class WorkerContext(Protocol):
    """The runtime's side of a worker, for what a driver does between runs."""

    @property
    def worker_id(self) -> str: ...

    @property
    def process_env(self) -> Mapping[str, str]:
        """Variables every program started for this worker must carry (the host's mark)."""
        ...

    async def event(self, kind: str, message: str, payload: dict[str, Any] | None = None) -> None:
        """Emit a worker event not tied to a run (e.g. `worker.restarting`)."""

    async def diagnostic(self, severity: DiagnosticSeverity, code: str, message: str) -> None:
        """Raise a diagnostic about this worker."""


class Driver(Protocol):
    """Makes a worker do real work. One instance per worker, built with its WorkerContext."""

    async def run(self, ctx: RunContext) -> str:
        """Do the run; return the result text, or raise `RunFailed`."""

    async def close(self) -> None:
        """Release what the driver holds (a session process); called when the worker ends."""
