"""What a driver is and what it may do with a run.

A driver receives a run through a `RunContext` and reports everything it does
through it, so every transcript entry and event goes through the runtime's
validation, sequencing and limits. Events carry typed payloads from the
store's catalog (store.catalog), never ad-hoc maps. Cancellation is asyncio cancellation of the
task awaiting `Driver.run`: a driver cleans up (kills its processes) in its
`except CancelledError`/`finally` and re-raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from store.catalog import Payload, ProcessFacts

OutputRole = Literal["assistant", "tool"]
Phase = Literal["planning", "executing", "verifying"]
DiagnosticSeverity = Literal["info", "warning", "error"]


class RunFailed(Exception):
    """Raised by a driver to fail the run; the message becomes the run's error.

    `facts` (what its program reported) join the error in the run's `run.failed`.
    """

    def __init__(self, reason: str, facts: ProcessFacts | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.facts = facts


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

    async def event(self, kind: str, message: str, payload: Payload) -> None:
        """Emit a run event (e.g. `exec.command.started`) with its kind's catalog payload.

        A kind the catalog does not know, or a payload that is not its kind's
        model, raises `store.errors.InvalidEvent` at once (it fails the run).
        """

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

    async def event(self, kind: str, message: str, payload: Payload) -> None:
        """Emit a worker event not tied to a run (e.g. `worker.restarting`); checked as above."""

    async def diagnostic(self, severity: DiagnosticSeverity, code: str, message: str) -> None:
        """Raise a diagnostic about this worker."""


class Driver(Protocol):
    """Makes a worker do real work. One instance per worker, built with its WorkerContext."""

    async def run(self, ctx: RunContext) -> str:
        """Do the run; return the result text, or raise `RunFailed`."""

    async def close(self) -> None:
        """Release what the driver holds (a session process); called when the worker ends."""
