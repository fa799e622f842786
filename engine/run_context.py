"""The runtime's side of a run and of a worker, as drivers see them.

Everything a driver reports goes through these objects to the emitter (seen
through `engine.emitting.Emitting`), so no driver can skip validation,
sequencing or limits, and nothing it says after its run was cancelled reaches
the log. A kind the catalog does not know, or a payload that does not fit its
kind, raises at once in the driver's own call.
"""

from __future__ import annotations

from collections.abc import Mapping

from engine.drivers.base import DiagnosticSeverity, OutputRole, Phase, RunInput
from engine.emitting import Emitting
from engine.messages import one_line
from engine.state import RunState, WorkerState
from store.catalog import Empty, Payload

__all__ = ["MAX_ENTRY_CHARS", "RunCtx", "WorkerCtx", "one_line"]

MAX_ENTRY_CHARS = 256 * 1024
MAX_MESSAGE_CHARS = 500  # of a driver's own event


class RunCtx:
    """A `RunContext`: one run of one worker."""

    def __init__(
        self, emitter: Emitting, worker: WorkerState, run: RunState, run_input: RunInput
    ) -> None:
        self._emitter = emitter
        self._worker = worker
        self._run = run
        self._input = run_input

    @property
    def input(self) -> RunInput:
        return self._input

    async def phase(self, phase: Phase) -> None:
        await self._emitter.run_event(
            self._run, f"run.{phase}", f"run {self._run.run_id} {phase}", Empty()
        )

    async def output(self, role: OutputRole, content: str) -> None:
        if len(content) > MAX_ENTRY_CHARS:
            cut = len(content) - MAX_ENTRY_CHARS
            content = content[:MAX_ENTRY_CHARS] + f"\n[… {cut} more characters cut]"
        await self._emitter.output(self._worker, self._run, role, content)

    async def event(self, kind: str, message: str, payload: Payload) -> None:
        await self._emitter.run_event(
            self._run, kind, one_line(message, MAX_MESSAGE_CHARS), payload
        )

    async def diagnostic(self, severity: DiagnosticSeverity, code: str, message: str) -> None:
        await self._emitter.diagnostic(severity, code, message, self._worker.worker_id)


class WorkerCtx:
    """A `WorkerContext`: what a driver does for its worker between runs."""

    def __init__(
        self, emitter: Emitting, worker: WorkerState, process_env: Mapping[str, str]
    ) -> None:
        self._emitter = emitter
        self._worker = worker
        self._process_env = dict(process_env)

    @property
    def worker_id(self) -> str:
        return self._worker.worker_id

    @property
    def process_env(self) -> Mapping[str, str]:
        return self._process_env

    async def event(self, kind: str, message: str, payload: Payload) -> None:
        await self._emitter.worker_event(
            self._worker, kind, one_line(message, MAX_MESSAGE_CHARS), payload
        )

    async def diagnostic(self, severity: DiagnosticSeverity, code: str, message: str) -> None:
        await self._emitter.diagnostic(severity, code, message, self._worker.worker_id)
