"""The host's side of the command inbox: run each command issued to this runtime once.

Commands arrive as `command.issued` events on the store's change feed (a
local commit or another process's, seen through the watcher): there is no
polling loop here. Opening subscribes first and only then reads the commands
still pending (a dead host's, or ones issued while no host ran), so nothing
issued at the seam is missed; a command seen both ways runs once, because
this host runs only pending commands it is not running already, and the
store refuses a second outcome for a command in the same transaction as
whatever came with it (`CommandAlreadySettled`).

Each command runs through the same `Runtime` operation a local call uses; the
operation puts the `command.completed` event into its own append. Refusals
(the runtime's typed errors) and expired commands are recorded as
`command.failed` with the error's class and line, which the issuer raises as
the same error.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from engine.commanding import CommandScope, Following
from engine.errors import CommandExpired, EngineError
from store import catalog
from store.catalog import (
    CancelRunCommand,
    CancelWorkerCommand,
    CommandIssued,
    CreateWorkerCommand,
    SendInputCommand,
    StopRuntimeCommand,
    StopWorkerCommand,
)
from store.errors import StoreError
from store.filters import parse_filter
from store.models import Event, WorkerRef

if TYPE_CHECKING:
    from engine.runtime import Runtime

CLOSE_WAIT_S = 5.0  # how long closing waits for commands already running


class Inbox:
    """Follows the commands issued to one hosted runtime and runs each once."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._store = runtime.store
        self._runtime_id = runtime.runtime_id
        self._running: dict[str, asyncio.Task[None]] = {}
        self._following: Following | None = None
        self._closed = False

    async def start(self) -> None:
        after = await self._store.last_position()
        subscription = self._store.subscribe(
            after, parse_filter(f"kind:command.issued runtime:{self._runtime_id}")
        )
        for event in await self._store.pending_commands(self._runtime_id):
            self._take(event)
        self._following = Following(
            subscription, self._take, f"agentdeck-inbox-{self._runtime_id}"
        )

    async def close(self) -> None:
        """Stop taking commands; wait briefly for those running (the rest stay pending)."""
        self._closed = True
        if self._following is not None:
            await self._following.close()
        running = list(self._running.values())
        if running:
            _, late = await asyncio.wait(running, timeout=CLOSE_WAIT_S)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    def _take(self, event: Event) -> None:
        command_id = str(event.event_id)
        if self._closed or command_id in self._running:
            return
        issued = catalog.payload_of(event)
        assert isinstance(issued, CommandIssued)
        task = asyncio.get_running_loop().create_task(
            self._run(issued), name=f"agentdeck-command-{command_id[-8:]}"
        )
        self._running[command_id] = task
        task.add_done_callback(lambda _: self._running.pop(command_id, None))

    async def _run(self, issued: CommandIssued) -> None:
        state = await self._store.command_state(issued.command_id)
        if state is None or state.status != "pending":
            return  # answered already (seen through the feed and in the pending list)
        scope = CommandScope(issued.command_id, issued.request)
        emitter = self._runtime.emitter
        now = datetime.now(UTC)
        try:
            if now > issued.expires_at:
                lateness = (now - issued.expires_at).total_seconds()
                raise CommandExpired(
                    issued.command_id,
                    issued.expires_at,
                    f"before a host could run it (found {lateness:.1f}s later)",
                )
            result = await self._execute(scope)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            if scope.built:
                return  # its outcome was in an append that failed: the store says why
            with contextlib.suppress(StoreError, EngineError):
                await emitter.append([scope.failed(emitter, error)])
            return
        if not scope.built:
            # The operation changed nothing (a repeat stop, a run no longer
            # current): the answer is recorded on its own.
            with contextlib.suppress(StoreError, EngineError):
                await emitter.append([scope.completed(emitter, result)])

    async def _execute(self, scope: CommandScope) -> object:
        runtime, request = self._runtime, scope.request
        match request:
            case CreateWorkerCommand(spec=spec):
                return await runtime.create_worker(spec, command=scope)
            case SendInputCommand(worker_id=worker, content=content, role=role):
                return await runtime.send_input(
                    self._ref(worker), content, role.value, command=scope
                )
            case StopWorkerCommand(worker_id=worker, reason=reason):
                return await runtime.stop_worker(self._ref(worker), reason, command=scope)
            case CancelWorkerCommand(worker_id=worker, reason=reason):
                return await runtime.cancel_worker(self._ref(worker), reason, command=scope)
            case CancelRunCommand(worker_id=worker, run_id=run_id, reason=reason):
                return await runtime.cancel_run(self._ref(worker), run_id, reason, command=scope)
            case StopRuntimeCommand():
                return await runtime.stop_runtime(command=scope)
        raise AssertionError(f"unknown command {request!r}")

    def _ref(self, worker_id: str) -> WorkerRef:
        return WorkerRef(runtime_id=self._runtime_id, worker_id=worker_id)
