"""The one boundary between the console and what it operates: `ConsoleBackend`.

Screens and widgets never hold a store or a runtime: they ask a backend
named questions (the runtimes, a runtime's workers, a transcript page, the
events after or before a position through a filter...) and give it commands
(create, send input, stop, cancel, cancel a run). Every command is async and
raises the engine's typed errors (`engine.errors`), so the console is the same
whether the runtime runs in this process or in another one that takes
commands through the store's inbox.

`HostedBackend` is the store, the runtime this process hosts (if any), and a
`CommandClient` for every other runtime of the database: a command for the
runtime hosted here goes to its `Runtime`, a command for any other to a
`RemoteRuntime`, which issues it to whichever process hosts that runtime
(another console, `agentdeck host`, a program embedding the engine) and
answers with what a local call would have answered or raised. Opening
degrades instead of failing where an operator would want to look anyway: a
database that cannot be written opens as an observer. What this console may
do to each runtime (host it, operate it through its host, nothing while it
has no live host, only watch) is an `Access`, which the console shows in the
runtimes pane, the header, and wherever an action is unavailable.

Hosting a runtime restores it from its log (checks its projections, fails the
runs a previous host left, resumes queues): on a big log that takes longer
than drawing what the store already holds. `open_backend(background=True)`
(what `agentdeck` does) returns once the store is open and hosts at the first
`hosted()` (the console calls it once its first screen is drawn; a command
waits for it too), which says when it is done or why it failed.

Leaving with work hosted here (quit -> keep running, a hang-up) is
`hand_over()`: the runtime is closed here and an `agentdeck host` started for
it in the background (tui.handover).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from engine.clock import Clock, IdSource
from engine.errors import (
    NoLiveHost,
    ReadOnlyRuntime,
    RuntimeBusy,
    RuntimeStopped,
    StoreFault,
)
from engine.hosting import holder_gone, machine_name
from engine.profiles import ConfigError, ProfileSet, load_profiles
from engine.remote import CommandClient, RemoteRuntime, this_issuer
from engine.results import InputAck, LifecycleAck
from engine.runtime import Runtime
from engine.validation import Refusal, worker_request_refusal, worker_spec_refusal
from store.errors import ReadOnlyDatabase, StoreError
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
    RuntimeStatus,
    TranscriptPage,
    WorkerRecord,
    WorkerRef,
    WorkerSpec,
    WorkerStatus,
)
from store.open import open_store
from store.pictures import FleetPicture, WorkerPicture
from tui.cli import default_config_path
from tui.handover import HandOver, spawn_host

if TYPE_CHECKING:
    from store.open import AnyStore

__all__ = [
    "Access",
    "AccessMode",
    "ConsoleBackend",
    "EventPages",
    "HandOver",
    "HostedBackend",
    "LiveEvents",
    "RuntimeRow",
    "TranscriptPages",
    "open_backend",
]


CONSOLE_ID = f"console-{secrets.token_hex(3)}"
"""This console process as the issuer of its commands (named in each `command.issued`)."""

HANDOVER_WAIT_S = 15.0
"""How long a console that hands its runtime over waits to see the new host hosting it."""



class AccessMode(Enum):
    HOSTED = "hosted here"
    REMOTE = "through its host"
    NO_HOST = "no live host"
    STOPPED = "stopped"
    READ_ONLY = "watching"


@dataclass(frozen=True)
class Access:
    """What this console may do to one runtime, and why not when it may not."""

    mode: AccessMode
    can_operate: bool
    reason: str | None = None  # None when it can operate
    host: str | None = None  # "pid N on HOST": the process commands go to (REMOTE), if known

    @property
    def summary(self) -> str:
        """A few words for a title: "hosted here", "through pid 7 on box", "no live host"."""
        if self.mode is AccessMode.REMOTE and self.host:
            return f"through {self.host}"
        return self.mode.value


@dataclass(frozen=True)
class RuntimeRow:
    """One runtime as the runtimes pane shows it."""

    record: RuntimeRecord
    counts: dict[WorkerStatus, int]
    host: HostLease | None
    access: Access

    @property
    def hosted_here(self) -> bool:
        return self.access.mode is AccessMode.HOSTED


class Operable(Protocol):
    """A runtime's operations: `Runtime` (hosted here) and `RemoteRuntime` (through its host)."""

    async def create_worker(self, request: WorkerSpec) -> WorkerRecord: ...

    async def send_input(self, ref: WorkerRef, content: str, role: str = ...) -> InputAck: ...

    async def stop_worker(self, ref: WorkerRef) -> LifecycleAck: ...

    async def cancel_worker(self, ref: WorkerRef) -> LifecycleAck: ...

    async def cancel_run(self, ref: WorkerRef, run_id: str) -> bool: ...


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
        """The runtime this console process hosts (or is about to), if any."""
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

    def access(self, runtime_id: str) -> Access:
        """What this console may do to `runtime_id`, as of the last `runtimes()` read (cheap)."""
        ...

    def work_in_progress(self) -> tuple[list[str], int]:
        """Runs that quitting this console would fail, and inputs that stay queued."""
        ...

    async def hand_over(self) -> HandOver | None:
        """Stop hosting here and start `agentdeck host` for the runtime in the background,
        so its queued work goes on after this console; None when nothing is hosted here."""
        ...

    # -- queries --------------------------------------------------------------

    async def runtimes(self) -> list[RuntimeRow]: ...

    async def workers(self, runtime_id: str) -> list[WorkerRecord]: ...

    async def worker(self, runtime_id: str, worker_id: str) -> WorkerRecord | None: ...

    async def runs(self, ref: WorkerRef, limit: int = 100) -> list[RunRecord]: ...

    async def diagnostics(self, runtime_id: str) -> list[Diagnostic]: ...

    async def profile_names(self, runtime_id: str) -> list[str]: ...

    async def input_limits(self, runtime_id: str) -> Limits: ...

    async def fleet_picture(self, now_us: int) -> FleetPicture:
        """Every runtime's pictures at `now_us` (the strip on the main screen)."""
        ...

    async def worker_picture(self, ref: WorkerRef, now_us: int, limit: int = 60) -> WorkerPicture:
        """A worker's most recent runs, for the worker view's picture."""
        ...

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
    """The store, the runtime this process hosts (if any), and every other runtime through
    its host (`observer_reason`: none of them, this console only watches)."""

    store: AnyStore
    runtime_id: str
    runtime: Runtime | None = None
    observer_reason: str | None = None  # why nothing can be changed here at all
    notices: list[str] = field(default_factory=list)
    db_label: str | None = None
    hosting: asyncio.Task[bool] | None = None  # hosting `runtime_id` in the background
    config: Path | None = None  # the profiles file given (None: agentdeck.toml beside the db)
    _host_later: tuple[Path | None, Clock | None, IdSource | None] | None = None
    _host_args: tuple[Path | None, Clock | None, IdSource | None] = (None, None, None)
    _fault_listeners: list[Callable[[StoreFault | None], None]] = field(default_factory=list)
    _client: CommandClient | None = None
    # What the last `runtimes()` read found: who hosts each runtime, and which are stopped.
    _hosts: dict[str, HostLease] = field(default_factory=dict)
    _stopped: set[str] = field(default_factory=set)
    _known: set[str] = field(default_factory=set)

    @property
    def label(self) -> str:
        return self.db_label or self.store.label

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
    def config_path(self) -> Path:
        """The profiles file a host of this database reads (`--config`, else beside the db;
        for a PostgreSQL database, beside the default SQLite database)."""
        if self.config is not None:
            return self.config
        return default_config_path(self.store.folder)

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
        gone, this one hosts it rather than leave it with no host. The new host
        fails the dead one's executing runs ("host exited"), ends the programs it
        left on this machine, and resumes its queue. (A console handing its
        runtime over passes the lease on instead of releasing it, so it is never
        taken in between.) Returns what to tell the operator when it took over,
        else None.
        """
        if self.observer_reason or self.runtime is not None or self._pending:
            return None
        holder = (await self.store.hosts()).get(self.runtime_id)
        if holder is not None and not holder_gone(holder, now=datetime.now(UTC)):
            return None
        shown = len(self.notices)
        if not await self.host(*self._host_args):
            del self.notices[shown:]  # another process got there first: operated through it
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
        if config is not None:
            self.config = config
        try:
            runtime = await Runtime.host(
                self.store, self.runtime_id, clock=clock, ids=ids, config_path=self.config_path
            )
        except RuntimeBusy as exc:
            self._hosts[self.runtime_id] = exc.holder
            self.notices.append(
                f"runtime {self.runtime_id} is hosted by pid {exc.holder.pid} on "
                f"{exc.holder.host_name}: this console operates it through that process"
            )
            return False
        for listener in self._fault_listeners:
            runtime.add_fault_listener(listener)
        self.runtime = runtime
        return True

    def access(self, runtime_id: str) -> Access:
        if self.observer_reason:
            return Access(AccessMode.READ_ONLY, False, self.observer_reason)
        if self.hosted_runtime_id == runtime_id:
            return Access(AccessMode.HOSTED, True)
        if runtime_id in self._stopped:
            return Access(AccessMode.STOPPED, False, str(RuntimeStopped(runtime_id)))
        holder = self._hosts.get(runtime_id)
        if holder is None and runtime_id not in self._known:
            # Not read yet: let the command find out (it fails fast without a host).
            return Access(AccessMode.REMOTE, True)
        if holder is None or holder_gone(holder, now=datetime.now(UTC)):
            return Access(AccessMode.NO_HOST, False, str(NoLiveHost(runtime_id, holder)))
        return Access(AccessMode.REMOTE, True, host=f"pid {holder.pid} on {holder.host_name}")

    def work_in_progress(self) -> tuple[list[str], int]:
        return self.runtime.work_in_progress() if self.runtime is not None else ([], 0)

    async def _operable(self, runtime_id: str) -> Operable:
        """Where a command for `runtime_id` goes: the runtime hosted here, or its host.

        Only a read-only console refuses here; every other refusal (stopped, no
        live host) is the engine's, raised by the command itself, so a stale view
        in the runtimes pane never keeps an operator from a runtime that works.
        """
        if self._pending:
            with contextlib.suppress(Exception):
                await self.hosted()  # a failure to host is the access refusal below
        if self.observer_reason:
            raise ReadOnlyRuntime(runtime_id, self.observer_reason)
        if self.runtime is not None and self.runtime.runtime_id == runtime_id:
            return self.runtime
        return self._remote(runtime_id)

    def _remote(self, runtime_id: str) -> RemoteRuntime:
        if self._client is None:
            self._client = CommandClient(self.store, issuer=this_issuer(CONSOLE_ID))
        return self._client.runtime(runtime_id)

    async def _local_profiles(self) -> ProfileSet | None:
        """The profiles file as a host of this database would read it (None: unreadable)."""
        try:
            return await asyncio.to_thread(load_profiles, self.config_path)
        except (ConfigError, OSError):
            return None

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
        # The view `access` answers from until the next read (every refresh reads this).
        self._hosts = dict(hosts)
        self._known = {r.runtime_id for r in records}
        self._stopped = {r.runtime_id for r in records if r.status is RuntimeStatus.STOPPED}
        return [
            RuntimeRow(
                record=r,
                counts=await self.store.workers_by_status(r.runtime_id),
                host=hosts.get(r.runtime_id),
                access=self.access(r.runtime_id),
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

    async def fleet_picture(self, now_us: int) -> FleetPicture:
        return await self.store.fleet_picture(now_us)

    async def worker_picture(self, ref: WorkerRef, now_us: int, limit: int = 60) -> WorkerPicture:
        return await self.store.worker_picture(ref, now_us, limit)

    async def profile_names(self, runtime_id: str) -> list[str]:
        target = await self._operable(runtime_id)
        if isinstance(target, Runtime):
            return target.profiles.names()
        # Operated through its host: fail now, before the form, if nothing would answer.
        assert isinstance(target, RemoteRuntime)
        await target.client.check_operable(runtime_id)
        profiles = await self._local_profiles()
        names = profiles.names() if profiles is not None else ProfileSet().names()
        # The host may know profiles this file does not (another --config): offer the
        # ones its workers were made with too; it judges them, not this console.
        used = {record.spec.profile for record in await self.store.workers(runtime_id)}
        return list(dict.fromkeys([*names, *sorted(used)]))

    async def input_limits(self, runtime_id: str) -> Limits:
        target = await self._operable(runtime_id)
        if isinstance(target, Runtime):
            return target.limits
        assert isinstance(target, RemoteRuntime)
        return await target.input_limits()

    def subscribe(self, after: int) -> LiveEvents:
        return self.store.subscribe(after)

    # -- commands -------------------------------------------------------------

    async def validate_worker(self, runtime_id: str, spec: WorkerSpec) -> Refusal | None:
        target = await self._operable(runtime_id)
        if isinstance(target, Runtime):
            return target.worker_request_refusal(spec)
        refusal = worker_request_refusal(spec)  # sizes and shape: the same for every host
        if refusal is not None:
            return refusal
        profiles = await self._local_profiles()
        if profiles is None or spec.profile not in profiles.names():
            return None  # not known here: the host decides (its refusal comes back typed)
        return worker_spec_refusal(spec, profiles)

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

    # -- leaving --------------------------------------------------------------

    async def hand_over(self) -> HandOver | None:
        """Close the runtime hosted here, then start `agentdeck host` for it (tui.handover).

        Closing first: the runs executing here cannot move (their programs are
        this process's children, their output pipes end here): they fail "host
        closed". Queued runs stay in the log, and the new host runs them. The
        lease is passed on to the new host's token, not released, so the
        runtime is never without a host in between.
        """
        runtime = self.runtime
        if runtime is None:
            return None
        running, queued = runtime.work_in_progress()
        rid = runtime.runtime_id
        self.runtime = None
        token = secrets.token_hex(16)
        await runtime.close(successor_token=token)
        try:
            child, log = await asyncio.to_thread(
                spawn_host, self.db_address, rid, self.config, token
            )
        except OSError as exc:
            return HandOver(rid, None, None, len(running), queued, False, f"{exc}")
        try:
            problem = await self._hosting_by(rid, child)
        except StoreError as exc:
            problem = f"could not read who hosts it ({exc})"
        return HandOver(rid, child.pid, log, len(running), queued, problem is None, problem)

    async def _hosting_by(self, runtime_id: str, child: subprocess.Popen[bytes]) -> str | None:
        """Wait until `child` hosts `runtime_id`; None once it does, else why not."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + HANDOVER_WAIT_S
        while loop.time() < deadline:
            holder = (await self.store.hosts()).get(runtime_id)
            if holder is not None and holder.pid == child.pid:
                return None
            if child.poll() is not None:
                if holder is not None and not holder_gone(holder, now=datetime.now(UTC)):
                    # Another process (a console watching it) took it first: fine.
                    return f"it exited; pid {holder.pid} on {holder.host_name} hosts the runtime"
                return f"it exited with status {child.returncode}"
            await asyncio.sleep(0.1)
        return f"still starting after {HANDOVER_WAIT_S:.0f}s"

    async def close(self) -> None:
        self._host_later = None
        if self.hosting is not None and not self.hosting.done():
            self.hosting.cancel()
        if self.hosting is not None:
            with contextlib.suppress(BaseException):
                await self.hosting
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self.runtime is not None:
            await self.runtime.close()
            self.runtime = None
        await self.store.close()

    # kept for callers that name the path (bench, headless tools)
    @property
    def db_path(self) -> Path:
        folder = self.store.folder
        if folder is None:
            raise ValueError(f"{self.store.label} is a PostgreSQL database, not a file")
        return Path(self.db_address)

    @property
    def db_address(self) -> str | Path:
        """What `--db` names this database by: the SQLite file's path, or the server's URL
        (with its password: only for a child process's environment, never for display)."""
        return self.store.address


async def open_backend(
    db: str | Path,
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
    machine_name()  # a bad AGENTDECK_HOST_NAME is refused (one line) before anything opens
    notices: list[str] = []
    observer_reason: str | None = None
    if read_only:
        store = await open_store(db, read_only=True, watch=watch)
        observer_reason = "opened with --read-only: this console only watches"
    else:
        try:
            store = await open_store(db, watch=watch)
        except ReadOnlyDatabase as exc:
            store = await open_store(db, read_only=True, watch=watch)
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
        config=config,
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
