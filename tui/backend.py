"""The one boundary between the console and what it operates: `ConsoleBackend`.

Screens and widgets never hold a store or a runtime: they ask a backend
named questions (the runtimes, a runtime's workers, a transcript page, the
events after or before a position through a filter...) and give it commands
(create, send input, stop, cancel, cancel a run). Every command is async and
raises the engine's typed errors (`engine.errors`), so the console is the same
whether the runtime runs in this process (`HostedBackend`) or in another one
that takes commands through the store (a later `RemoteBackend`).

`HostedBackend` is the embedded case: the store, and the runtime this process
hosts (if any). Opening degrades instead of failing where an operator would
want to look anyway: a database that cannot be written opens as an observer,
and a runtime hosted by another process is shown read-only. Each such limit
is an `Access` the console shows wherever an action is unavailable.

Hosting a runtime restores it from its log (checks its projections, fails the
runs a previous host left, resumes queues): on a big log that takes longer
than drawing what the store already holds. `open_backend(background=True)`
(what `agentdeck` does) returns once the store is open and hosts at the first
`hosted()` (the console calls it once its first screen is drawn; a command
waits for it too), which says when it is done or why it failed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Protocol

from engine.clock import Clock, IdSource
from engine.errors import ReadOnlyRuntime, RuntimeBusy, StoreFault
from engine.hosting import holder_gone
from engine.results import InputAck, LifecycleAck
from engine.runtime import Runtime
from engine.validation import Refusal
from store.errors import ReadOnlyDatabase
from store.event_store import EventStore
from store.filters import Filter
from store.models import (
    Batch,
    Diagnostic,
    Event,
    HostLease,
    Lag,
    Limits,
    RunRecord,
    RuntimeRecord,
    TranscriptPage,
    WorkerRecord,
    WorkerRef,
    WorkerSpec,
    WorkerStatus,
)

__all__ = [
    "Access",
    "AccessMode",
    "ConsoleBackend",
    "EventPages",
    "HostedBackend",
    "LiveEvents",
    "RuntimeRow",
    "TranscriptPages",
    "open_backend",
]


class AccessMode(Enum):
    HOSTED = "hosted here"
    ELSEWHERE = "hosted elsewhere"
    READ_ONLY = "read-only"


@dataclass(frozen=True)
class Access:
    """What this console may do to one runtime, and why not when it may not."""

    mode: AccessMode
    can_operate: bool
    reason: str | None = None  # None when it can operate


@dataclass(frozen=True)
class RuntimeRow:
    """One runtime as the runtimes pane shows it."""

    record: RuntimeRecord
    counts: dict[WorkerStatus, int]
    host: HostLease | None
    hosted_here: bool


class LiveEvents(Protocol):
    """A subscription: replay after a position, then live; a `Lag` means re-read the store."""

    async def next_batch(self, limit: int = ...) -> list[Event | Lag]: ...

    def close(self) -> None: ...


class EventPages(Protocol):
    """Events by position through a filter (the event log and exports read these)."""

    async def last_position(self) -> int: ...

    async def read_after(self, position: int, limit: int, flt: Filter | None = None) -> Batch: ...

    async def read_before(
        self, position: int, limit: int, flt: Filter | None = None
    ) -> list[Event]: ...


class TranscriptPages(Protocol):
    """Transcript pages of one worker (the transcript pane reads these)."""

    async def transcript(self, ref: WorkerRef, start: int, limit: int) -> TranscriptPage: ...


class ConsoleBackend(EventPages, TranscriptPages, Protocol):
    """Everything the console reads and does, local or remote."""

    @property
    def label(self) -> str:
        """Where the data lives, as the header shows it (a path, a URL)."""
        ...

    @property
    def default_runtime_id(self) -> str:
        """The runtime the console starts on."""
        ...

    @property
    def hosted_runtime_id(self) -> str | None:
        """The runtime this console can change (hosted here or through a host), if any."""
        ...

    @property
    def notices(self) -> list[str]:
        """What opening found that the operator should read once."""
        ...

    @property
    def fault(self) -> StoreFault | None:
        """Why the operable runtime cannot record anything right now, if it cannot."""
        ...

    def add_fault_listener(self, listener: Callable[[StoreFault | None], None]) -> None: ...

    async def hosted(self) -> None:
        """Return once the runtime is hosted, or could not be (then `notices` says why);
        raise the engine's or the store's error when opening it failed outright."""
        ...

    async def take_over(self) -> str | None:
        """Start operating the runtime whose host is gone; what to tell the operator, if it did."""
        ...

    def access(self, runtime_id: str) -> Access: ...

    def work_in_progress(self) -> tuple[list[str], int]:
        """Runs that quitting this console would fail, and inputs that stay queued."""
        ...

    # -- queries --------------------------------------------------------------

    async def runtimes(self) -> list[RuntimeRow]: ...

    async def workers(self, runtime_id: str) -> list[WorkerRecord]: ...

    async def worker(self, runtime_id: str, worker_id: str) -> WorkerRecord | None: ...

    async def runs(self, ref: WorkerRef, limit: int = 100) -> list[RunRecord]: ...

    async def diagnostics(self, runtime_id: str) -> list[Diagnostic]: ...

    async def profile_names(self, runtime_id: str) -> list[str]: ...

    async def input_limits(self, runtime_id: str) -> Limits: ...

    def subscribe(self, after: int) -> LiveEvents: ...

    # -- commands (each raises engine errors) ---------------------------------

    async def validate_worker(self, runtime_id: str, spec: WorkerSpec) -> Refusal | None:
        """The engine's verdict on a spec before it is created (None: it would be accepted)."""
        ...

    async def create_worker(self, runtime_id: str, spec: WorkerSpec) -> WorkerRecord: ...

    async def send_input(self, ref: WorkerRef, content: str, role: str = "user") -> InputAck: ...

    async def stop_worker(self, ref: WorkerRef) -> LifecycleAck: ...

    async def cancel_worker(self, ref: WorkerRef) -> LifecycleAck: ...

    async def cancel_run(self, ref: WorkerRef, run_id: str) -> bool: ...

    async def close(self) -> None: ...


@dataclass
class HostedBackend:
    """The store, and the runtime this process hosts (None: this console only watches)."""

    store: EventStore
    runtime_id: str
    runtime: Runtime | None = None
    observer_reason: str | None = None  # why nothing can be changed here at all
    notices: list[str] = field(default_factory=list)
    db_label: str | None = None
    hosting: asyncio.Task[bool] | None = None  # hosting `runtime_id` in the background
    _host_later: tuple[Path | None, Clock | None, IdSource | None] | None = None
    _host_args: tuple[Path | None, Clock | None, IdSource | None] = (None, None, None)
    _fault_listeners: list[Callable[[StoreFault | None], None]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.db_label or str(self.store.path)

    @property
    def default_runtime_id(self) -> str:
        return self.runtime_id

    @property
    def _pending(self) -> bool:
        return self._host_later is not None or (
            self.hosting is not None and not self.hosting.done()
        )

    @property
    def hosted_runtime_id(self) -> str | None:
        if self.runtime is not None:
            return self.runtime.runtime_id
        return self.runtime_id if self._pending else None

    @property
    def fault(self) -> StoreFault | None:
        return self.runtime.fault if self.runtime is not None else None

    def add_fault_listener(self, listener: Callable[[StoreFault | None], None]) -> None:
        self._fault_listeners.append(listener)
        if self.runtime is not None:
            self.runtime.add_fault_listener(listener)

    async def hosted(self) -> None:
        if self._host_later is not None:
            args, self._host_later = self._host_later, None
            self.hosting = asyncio.get_running_loop().create_task(
                self.host(*args), name=f"agentdeck-host-{self.runtime_id}"
            )
        if self.hosting is not None:
            await asyncio.shield(self.hosting)

    async def take_over(self) -> str | None:
        """Host `runtime_id` here if its host is gone (died, or stopped heartbeating).

        For a console that found the runtime hosted elsewhere: once that host is
        gone, this one hosts it rather than stay a spectator. The new host fails
        the dead one's executing runs ("host exited"), ends the programs it left
        on this machine, and resumes its queue. Returns what to tell the operator
        when it took over, else None.
        """
        if self.observer_reason or self.runtime is not None or self._pending:
            return None
        holder = (await self.store.hosts()).get(self.runtime_id)
        if holder is not None and not holder_gone(holder, now=datetime.now(UTC)):
            return None
        shown = len(self.notices)
        if not await self.host(*self._host_args):
            del self.notices[shown:]  # another console got there first: still watching
            return None
        if holder is None:
            return f"now hosting runtime {self.runtime_id}: its host stopped"
        return (
            f"took over hosting runtime {self.runtime_id}: its host (pid {holder.pid} on "
            f"{holder.host_name}) is gone; runs it was executing failed \"host exited\", "
            "its queued runs resume here"
        )

    async def host(
        self, config: Path | None, clock: Clock | None, ids: IdSource | None
    ) -> bool:
        """Host `runtime_id` here; False if it is hosted elsewhere (then a notice says so).
        Other errors are raised."""
        self._host_args = (config, clock, ids)
        config_path = config if config is not None else self.store.path.parent / "agentdeck.toml"
        try:
            runtime = await Runtime.host(
                self.store, self.runtime_id, clock=clock, ids=ids, config_path=config_path
            )
        except RuntimeBusy as exc:
            self.notices.append(str(exc))
            return False
        for listener in self._fault_listeners:
            runtime.add_fault_listener(listener)
        self.runtime = runtime
        return True

    def access(self, runtime_id: str) -> Access:
        if self.observer_reason:
            return Access(AccessMode.READ_ONLY, False, self.observer_reason)
        if self.hosted_runtime_id != runtime_id:
            return Access(
                AccessMode.ELSEWHERE,
                False,
                f"runtime {runtime_id} is hosted by another process; this console only watches it",
            )
        return Access(AccessMode.HOSTED, True)

    def work_in_progress(self) -> tuple[list[str], int]:
        return self.runtime.work_in_progress() if self.runtime is not None else ([], 0)

    async def _operable(self, runtime_id: str) -> Runtime:
        if self._pending:
            with contextlib.suppress(Exception):
                await self.hosted()  # a failure to host is the access refusal below
        access = self.access(runtime_id)
        if self.runtime is None or not access.can_operate:
            raise ReadOnlyRuntime(runtime_id, access.reason or "not hosted here")
        return self.runtime

    # -- queries --------------------------------------------------------------

    async def last_position(self) -> int:
        return await self.store.last_position()

    async def read_after(self, position: int, limit: int, flt: Filter | None = None) -> Batch:
        return await self.store.read_after(position, limit, flt)

    async def read_before(
        self, position: int, limit: int, flt: Filter | None = None
    ) -> list[Event]:
        return await self.store.read_before(position, limit, flt)

    async def transcript(self, ref: WorkerRef, start: int, limit: int) -> TranscriptPage:
        return await self.store.transcript(ref, start, limit)

    async def runtimes(self) -> list[RuntimeRow]:
        records = await self.store.runtimes()
        hosts = await self.store.hosts()
        hosted = self.hosted_runtime_id
        return [
            RuntimeRow(
                record=r,
                counts=await self.store.workers_by_status(r.runtime_id),
                host=hosts.get(r.runtime_id),
                hosted_here=r.runtime_id == hosted,
            )
            for r in records
        ]

    async def workers(self, runtime_id: str) -> list[WorkerRecord]:
        return await self.store.workers(runtime_id)

    async def worker(self, runtime_id: str, worker_id: str) -> WorkerRecord | None:
        return await self.store.worker(runtime_id, worker_id)

    async def runs(self, ref: WorkerRef, limit: int = 100) -> list[RunRecord]:
        return await self.store.runs(ref.runtime_id, ref.worker_id, limit)

    async def diagnostics(self, runtime_id: str) -> list[Diagnostic]:
        return await self.store.diagnostics(runtime_id)

    async def profile_names(self, runtime_id: str) -> list[str]:
        return (await self._operable(runtime_id)).profiles.names()

    async def input_limits(self, runtime_id: str) -> Limits:
        return (await self._operable(runtime_id)).limits

    def subscribe(self, after: int) -> LiveEvents:
        return self.store.subscribe(after)

    # -- commands -------------------------------------------------------------

    async def validate_worker(self, runtime_id: str, spec: WorkerSpec) -> Refusal | None:
        return (await self._operable(runtime_id)).worker_request_refusal(spec)

    async def create_worker(self, runtime_id: str, spec: WorkerSpec) -> WorkerRecord:
        return await (await self._operable(runtime_id)).create_worker(spec)

    async def send_input(self, ref: WorkerRef, content: str, role: str = "user") -> InputAck:
        return await (await self._operable(ref.runtime_id)).send_input(ref, content, role)

    async def stop_worker(self, ref: WorkerRef) -> LifecycleAck:
        return await (await self._operable(ref.runtime_id)).stop_worker(ref)

    async def cancel_worker(self, ref: WorkerRef) -> LifecycleAck:
        return await (await self._operable(ref.runtime_id)).cancel_worker(ref)

    async def cancel_run(self, ref: WorkerRef, run_id: str) -> bool:
        return await (await self._operable(ref.runtime_id)).cancel_run(ref, run_id)

    async def close(self) -> None:
        self._host_later = None
        if self.hosting is not None and not self.hosting.done():
            self.hosting.cancel()
        if self.hosting is not None:
            with contextlib.suppress(BaseException):
                await self.hosting
        if self.runtime is not None:
            await self.runtime.close()
            self.runtime = None
        await self.store.close()

    # kept for callers that name the path (bench, headless tools)
    @property
    def db_path(self) -> Path:
        return self.store.path


async def open_backend(
    db: Path,
    *,
    runtime_id: str = "local",
    config: Path | None = None,
    read_only: bool = False,
    clock: Clock | None = None,
    ids: IdSource | None = None,
    watch: bool = True,
    db_label: str | None = None,
    background: bool = False,
) -> HostedBackend:
    """Open the database and host `runtime_id` here when that is possible.

    `background`: return once the store is open and host at the first `hosted()`.
    """
    notices: list[str] = []
    observer_reason: str | None = None
    if read_only:
        store = await EventStore.open(db, read_only=True, watch=watch)
        observer_reason = "opened with --read-only: this console only watches"
    else:
        try:
            store = await EventStore.open(db, watch=watch)
        except ReadOnlyDatabase as exc:
            store = await EventStore.open(db, read_only=True, watch=watch)
            observer_reason = (
                f"the database cannot be written ({exc.path}); this console only watches"
            )
            notices.append(observer_reason)
    backend = HostedBackend(
        store=store,
        runtime_id=runtime_id,
        observer_reason=observer_reason,
        notices=notices,
        db_label=db_label,
    )
    if observer_reason is None:
        if background:
            backend._host_later = (config, clock, ids)
            return backend
        try:
            await backend.host(config, clock, ids)
        except BaseException:
            await store.close()
            raise
    return backend
