"""What a run's and a worker's context reach the emitter through.

Drivers see `RunContext` and `WorkerContext` (engine.drivers.base); the
contexts (engine.run_context) hand what a driver says to this side, which the
runtime's `Emitter` implements. Nothing a driver holds leads back to the
`Runtime` itself, and nothing here imports it.
"""

from __future__ import annotations

from typing import Protocol

from engine.drivers.base import DiagnosticSeverity, OutputRole
from engine.state import RunState, WorkerState
from store.catalog import Payload


class Emitting(Protocol):
    """Events on behalf of a driver: built through the catalog, sequenced, submitted."""

    async def run_event(self, run: RunState, kind: str, message: str, payload: Payload) -> None:
        """Emit an event of `run`; a kind/payload mismatch raises at once (InvalidEvent),
        and nothing is emitted once the run is terminal (cancelled is sticky)."""

    async def output(
        self, worker: WorkerState, run: RunState, role: OutputRole, content: str
    ) -> None:
        """Append a transcript entry of `run` (nothing once the run is terminal)."""

    async def worker_event(
        self, worker: WorkerState, kind: str, message: str, payload: Payload
    ) -> None:
        """Emit a worker event not tied to a run; a kind/payload mismatch raises at once."""

    async def diagnostic(
        self, severity: DiagnosticSeverity, code: str, message: str, worker_id: str | None
    ) -> None:
        """Raise a diagnostic (about a worker, or the runtime when `worker_id` is None)."""
