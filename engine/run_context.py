"""The runtime's side of a run and of a worker, as drivers see them.

Everything a driver reports goes through these objects into the runtime, so
no driver can skip validation, sequencing or limits, and nothing it says
after its run was cancelled reaches the log.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from engine.drivers.base import DiagnosticSeverity, Driver, OutputRole, Phase, RunInput
from engine.drivers.command import CommandDriver
from engine.drivers.demo import DemoDriver, DemoSettings
from engine.drivers.echo import EchoDriver
from engine.leftovers import MARK_VAR
from engine.profiles import BuiltinProfile, CommandProfile
from store.codec import dump_payload
from store.models import KIND_RE

if TYPE_CHECKING:
    from engine.runtime import Runtime
    from engine.state import Profile, RunState, WorkerState

MAX_ENTRY_CHARS = 256 * 1024


def one_line(text: str, limit: int = 120) -> str:
    """A short single-line preview for an event message."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _check_event(kind: str, payload: dict[str, Any] | None) -> None:
    """Refuse a driver's event the log could not store, before it is submitted.

    The driver's run fails with the reason; a refusal by the store instead would
    put the runtime's writes on hold (see `Runtime._after_commit`).
    """
    if not KIND_RE.fullmatch(kind):
        raise ValueError(f"event kind {kind!r} must be dot-separated lowercase words")
    if payload:
        try:
            dump_payload(payload)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"the payload of {kind} cannot be stored as JSON: {exc}") from None


class RunCtx:
    def __init__(
        self, runtime: Runtime, worker: WorkerState, run: RunState, run_input: RunInput
    ) -> None:
        self._runtime = runtime
        self._worker = worker
        self._run = run
        self._input = run_input

    @property
    def input(self) -> RunInput:
        return self._input

    async def phase(self, phase: Phase) -> None:
        await self._runtime.run_event(self._run, f"run.{phase}", f"run {self._run.run_id} {phase}")

    async def output(self, role: OutputRole, content: str) -> None:
        if len(content) > MAX_ENTRY_CHARS:
            cut = len(content) - MAX_ENTRY_CHARS
            content = content[:MAX_ENTRY_CHARS] + f"\n[… {cut} more characters cut]"
        await self._runtime.worker_output(self._worker, self._run, role, content)

    async def event(self, kind: str, message: str, payload: dict[str, Any] | None = None) -> None:
        _check_event(kind, payload)
        await self._runtime.run_event(self._run, kind, one_line(message, 500), payload)

    async def diagnostic(self, severity: DiagnosticSeverity, code: str, message: str) -> None:
        await self._runtime.raise_diagnostic(severity, code, message, self._worker.worker_id)


class WorkerCtx:
    def __init__(self, runtime: Runtime, worker: WorkerState) -> None:
        self._runtime = runtime
        self._worker = worker

    @property
    def worker_id(self) -> str:
        return self._worker.worker_id

    @property
    def process_env(self) -> Mapping[str, str]:
        return {
            MARK_VAR: self._runtime.host_mark,
            "AGENTDECK_RUNTIME_ID": self._runtime.runtime_id,
        }

    async def event(self, kind: str, message: str, payload: dict[str, Any] | None = None) -> None:
        _check_event(kind, payload)
        await self._runtime.worker_event(self._worker, kind, one_line(message, 500), payload)

    async def diagnostic(self, severity: DiagnosticSeverity, code: str, message: str) -> None:
        await self._runtime.raise_diagnostic(severity, code, message, self._worker.worker_id)


def make_driver(profile: Profile, worker: WorkerCtx) -> Driver:
    if isinstance(profile, CommandProfile):
        return CommandDriver(profile, worker)
    assert isinstance(profile, BuiltinProfile)
    if profile.builtin == "demo":
        return DemoDriver(DemoSettings.from_mapping(profile.demo))
    return EchoDriver()
