"""What the operator's keys do to workers: a dialog, one backend command, one line said.

Shared by the main screen and the worker view (both bind i, s, c, x to the
worker they show). Each operation runs inside a Textual worker (it waits on
dialogs), asks first where it destroys, and tells the outcome or the engine's
refusal as a notification; a dialog keeps what was typed through a refusal.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Literal, TypeVar

from textual.app import App
from textual.notifications import SeverityLevel

from engine.errors import EngineError
from engine.validation import Refusal
from store.errors import StoreError
from store.models import WorkerRecord, WorkerRef, WorkerSpec, WorkerStatus
from tui.backend import ConsoleBackend
from tui.safe_text import clean
from tui.screens.confirm import ConfirmScreen
from tui.screens.create_worker import CreateWorkerScreen
from tui.screens.send_input import SendInputScreen

T = TypeVar("T")


class Operations:
    """The console's commands, each through `backend` (which raises the engine's errors)."""

    def __init__(self, app: App[Any], backend: ConsoleBackend) -> None:
        self.app = app
        self.backend = backend

    def say(self, text: str, severity: SeverityLevel = "information", timeout: float | None = None) -> None:
        # Engine messages can quote worker-supplied names: never parse them as markup.
        self.app.notify(clean(text), severity=severity, markup=False, timeout=timeout)

    def may_change(self, ref: WorkerRef | None) -> WorkerRef | None:
        """`ref` if it may be changed from here; else say why not and return None."""
        if ref is None:
            self.say("select a worker first (arrows or j/k in the workers pane)", "warning")
            return None
        access = self.backend.access(ref.runtime_id)
        if not access.can_operate:
            self.say(f"not available: {access.reason}", "warning")
            return None
        return ref

    async def _call(self, call: Awaitable[T]) -> T | None:
        try:
            return await call
        except (EngineError, StoreError) as exc:
            self.say(str(exc), "error")
            return None

    async def new_worker(self, runtime_id: str | None = None) -> WorkerRecord | None:
        """The new-worker form for `runtime_id` (the selected runtime); the worker it created."""
        rid = runtime_id or self.backend.default_runtime_id
        access = self.backend.access(rid)
        if not access.can_operate:
            self.say(f"not available: {access.reason}", "warning")
            return None
        names = await self._call(self.backend.profile_names(rid))
        if names is None:
            return None
        created: list[WorkerRecord] = []
        target = rid

        async def submit(spec: WorkerSpec) -> str | Refusal | None:
            # Run by the form, so a refusal stays in the form with what was typed.
            try:
                refusal = await self.backend.validate_worker(target, spec)
                if refusal is not None:
                    return refusal
                created.append(await self.backend.create_worker(target, spec))
            except (EngineError, StoreError) as exc:
                return str(exc)
            return None

        spec = await self.app.push_screen_wait(
            CreateWorkerScreen(names, submit, runtime_id=rid, through=access.host)
        )
        if spec is None or not created:
            return None
        record = created[-1]
        self.say(f"created {record.worker_id} ({record.spec.profile})")
        return record

    async def send_input(self, ref: WorkerRef | None) -> None:
        target = self.may_change(ref)
        if target is None:
            return
        record = await self._call(self.backend.worker(target.runtime_id, target.worker_id))
        if record is not None and record.status is not WorkerStatus.RUNNING:
            self.say(
                f"{target.worker_id} is {record.status.value} and takes no more input", "warning"
            )
            return
        limits = await self._call(self.backend.input_limits(target.runtime_id))
        acks = []

        async def send(role: str, content: str) -> str | None:
            # Run by the dialog: a refusal (stopped meanwhile, database locked...)
            # is shown there and the text stays; the dialog closes on success only.
            try:
                acks.append(await self.backend.send_input(target, content, role))
            except (EngineError, StoreError) as exc:
                return str(exc)
            return None

        result = await self.app.push_screen_wait(SendInputScreen(target.worker_id, limits, send))
        if result is None or not acks:
            return
        ack = acks[-1]
        self.say(f"{target.worker_id}: input #{ack.transcript_sequence} queued as run {ack.run_id}")

    async def end_worker(self, ref: WorkerRef | None, verb: Literal["stop", "cancel"]) -> None:
        target = self.may_change(ref)
        if target is None:
            return
        body = (
            "The current run finishes; queued inputs are dropped. The worker takes no more input."
            if verb == "stop"
            else "The current run and every queued input are cancelled now. "
            "The worker takes no more input."
        )
        question = ConfirmScreen(
            f"{verb.capitalize()} worker {target.worker_id}?", body, verb.capitalize()
        )
        if not await self.app.push_screen_wait(question):
            return
        call = (
            self.backend.stop_worker(target) if verb == "stop" else self.backend.cancel_worker(target)
        )
        ack = await self._call(call)
        if ack is None:
            return
        if ack.changed:
            self.say(f"{target.worker_id} {ack.status.value}")
        else:
            self.say(
                f"{target.worker_id} was already {ack.status.value}; nothing changed", "warning"
            )

    async def cancel_run(self, ref: WorkerRef | None) -> None:
        target = self.may_change(ref)
        if target is None:
            return
        record = await self._call(self.backend.worker(target.runtime_id, target.worker_id))
        run_id = record.current_run_id if record else None
        if run_id is None:
            self.say(f"{target.worker_id} has no run in progress", "warning")
            return
        question = ConfirmScreen(
            f"Cancel run {run_id}?",
            f"Only this run of {target.worker_id} is cancelled; its queue goes on.",
            "Cancel run",
        )
        if not await self.app.push_screen_wait(question):
            return
        done = await self._call(self.backend.cancel_run(target, run_id))
        if done:
            self.say(f"run {run_id} cancelled")
        elif done is not None:
            self.say(f"run {run_id} is no longer current; nothing was cancelled", "warning")
