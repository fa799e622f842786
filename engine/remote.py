"""The issuer's side of the command inbox: operate a runtime another process hosts.

`RemoteRuntime` has the operations of `Runtime` (create, input, stop, cancel,
cancel a run, stop the runtime) with the same answers and the same typed
errors; each is a command appended to the runtime's log and answered by its
host (engine.inbox). One `CommandClient` per store follows the outcomes for
every command this process is waiting on through one subscription, started
before its first command is appended so no answer can slip past.

A command fails fast, changing nothing, when the runtime is stopped or has
no live host. It expires `COMMAND_TTL_S` after it was issued: a host that
finds it later (its host died before running it, and the next one started
late) refuses it as expired, and the issuer stops waiting a little after.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import UTC, datetime, timedelta
from uuid import UUID

from engine.clock import Clock, IdSource, SystemClock, Uuid7Ids
from engine.commanding import Following, describe, error_from_outcome, short
from engine.errors import (
    CommandExpired,
    InvalidRequest,
    NoLiveHost,
    RuntimeStopped,
    WrongRuntime,
)
from engine.hosting import holder_gone, machine_name
from engine.results import CreateWorkerRequest, InputAck, LifecycleAck
from store import catalog
from store.catalog import (
    CancelRunCommand,
    CancelWorkerCommand,
    CommandCompleted,
    CommandFailed,
    CommandIssued,
    CommandRequest,
    CreateWorkerCommand,
    Issuer,
    SendInputCommand,
    StopRuntimeCommand,
    StopWorkerCommand,
)
from store.errors import DuplicateEvent
from store.filters import parse_filter
from store.interface import EventLog
from store.models import (
    Event,
    Limits,
    Role,
    RuntimeStatus,
    WorkerRecord,
    WorkerRef,
    WorkerStatus,
)

COMMAND_TTL_S = 30.0  # a command not started by then never runs
ANSWER_GRACE_S = 5.0  # how long after expiry the issuer still waits for an answer


def this_issuer(console_id: str | None = None) -> Issuer:
    """This process as an issuer: a console id (fresh unless given), its pid and machine."""
    return Issuer(
        console_id=console_id or f"console-{uuid.uuid4().hex[:6]}",
        pid=os.getpid(),
        host_name=machine_name(),
    )


class CommandClient:
    """Issues commands to runtimes hosted elsewhere and awaits each one's outcome."""

    def __init__(
        self,
        store: EventLog,
        *,
        issuer: Issuer | None = None,
        ids: IdSource | None = None,
        clock: Clock | None = None,
        ttl_s: float = COMMAND_TTL_S,
    ) -> None:
        self.store = store
        self.issuer = issuer or this_issuer()
        self._ids = ids or Uuid7Ids()
        # Wall time, not an injected event clock: the host compares expiry with its own.
        self._clock = clock or SystemClock()
        self.ttl = timedelta(seconds=ttl_s)
        self._waiting: dict[str, asyncio.Future[Event]] = {}
        self._following: Following | None = None
        self._starting = asyncio.Lock()

    def runtime(self, runtime_id: str) -> RemoteRuntime:
        return RemoteRuntime(self, runtime_id)

    async def close(self) -> None:
        if self._following is not None:
            await self._following.close()
        for future in self._waiting.values():
            future.cancel()

    async def check_operable(self, runtime_id: str) -> None:
        """Raise what a command to `runtime_id` would fail with before anything is issued."""
        record = await self.store.runtime(runtime_id)
        if record is None:
            raise InvalidRequest(f"there is no runtime {runtime_id} in this database")
        if record.status is RuntimeStatus.STOPPED:
            raise RuntimeStopped(runtime_id)
        holder = (await self.store.hosts()).get(runtime_id)
        if holder is None or holder_gone(holder, now=self._clock.now()):
            raise NoLiveHost(runtime_id, holder)

    async def issue(
        self, runtime_id: str, request: CommandRequest, *, command_id: str | None = None
    ) -> CommandCompleted:
        """Issue `request` to `runtime_id`'s host and return its answer, or raise its error.

        A retry passes the `command_id` of the first attempt: the command is
        then not issued again, and the answer is the first attempt's.
        """
        await self.check_operable(runtime_id)
        await self._start_following()
        command_id = command_id or str(self._ids.event_id())
        now = self._clock.now()
        expires_at = now + self.ttl
        issued = CommandIssued(
            command_id=command_id, request=request, issuer=self.issuer, expires_at=expires_at
        )
        who = f"{self.issuer.console_id} (pid {self.issuer.pid} on {self.issuer.host_name})"
        event = catalog.event(
            "command.issued",
            issued,
            event_id=UUID(command_id),
            at=now,
            message=f"{who} asks: {describe(request)} (command {short(command_id)})",
            worker_id=getattr(request, "worker_id", None),
        )
        answer = self._waiting.get(command_id)
        if answer is None:
            answer = self._waiting[command_id] = asyncio.get_running_loop().create_future()
        try:
            try:
                await self.store.append(runtime_id, None, [event])
            except DuplicateEvent:
                # A retry of a command already issued: its first issue stands.
                state = await self.store.command_state(command_id)
                if state is not None and state.outcome is not None:
                    return _answer(state.outcome)
                if state is not None:
                    expires_at = state.expires_at
            wait_s = (expires_at - self._clock.now()).total_seconds() + ANSWER_GRACE_S
            try:
                outcome = await asyncio.wait_for(asyncio.shield(answer), max(wait_s, 0.0))
            except TimeoutError:
                state = await self.store.command_state(command_id)
                if state is not None and state.outcome is not None:
                    return _answer(state.outcome)
                raise CommandExpired(
                    command_id, expires_at, "without an answer from the host of "
                    f"runtime {runtime_id}"
                ) from None
            return _answer(outcome)
        finally:
            self._waiting.pop(command_id, None)

    async def _start_following(self) -> None:
        async with self._starting:
            if self._following is not None:
                return
            after = await self.store.last_position()
            subscription = self.store.subscribe(
                after, parse_filter("kind:command.* -kind:command.issued")
            )
            self._following = Following(subscription, self._answered, "agentdeck-outcomes")

    def _answered(self, outcome: Event) -> None:
        future = self._waiting.get(str(outcome.payload.get("command_id", "")))
        if future is not None and not future.done():
            future.set_result(outcome)


def _answer(outcome: Event) -> CommandCompleted:
    payload = catalog.payload_of(outcome)
    if isinstance(payload, CommandFailed):
        raise error_from_outcome(payload)
    assert isinstance(payload, CommandCompleted)
    return payload


class RemoteRuntime:
    """A runtime hosted by another process, operated through its command inbox."""

    def __init__(self, client: CommandClient, runtime_id: str) -> None:
        self.client = client
        self.store = client.store
        self.runtime_id = runtime_id

    async def host_label(self) -> str | None:
        """Which process hosts it ("pid N on HOST"), or None when none is live."""
        holder = (await self.store.hosts()).get(self.runtime_id)
        if holder is None or holder_gone(holder, now=datetime.now(UTC)):
            return None
        return f"pid {holder.pid} on {holder.host_name}"

    async def input_limits(self) -> Limits:
        record = await self.store.runtime(self.runtime_id)
        if record is None:
            raise InvalidRequest(f"there is no runtime {self.runtime_id} in this database")
        return record.limits

    async def create_worker(self, request: CreateWorkerRequest) -> WorkerRecord:
        answer = await self.client.issue(self.runtime_id, CreateWorkerCommand(spec=request))
        assert answer.worker_id is not None
        # The outcome committed with the worker: its projection is there.
        record = await self.store.worker(self.runtime_id, answer.worker_id)
        assert record is not None
        return record

    async def send_input(self, ref: WorkerRef, content: str, role: str = "user") -> InputAck:
        self._own(ref)
        answer = await self.client.issue(
            self.runtime_id,
            SendInputCommand(worker_id=ref.worker_id, content=content, role=Role(role)),
        )
        assert answer.run_id and answer.event_id and answer.transcript_sequence and answer.status
        return InputAck(
            ref=ref,
            status=WorkerStatus(answer.status),
            transcript_sequence=answer.transcript_sequence,
            event_id=UUID(answer.event_id),
            run_id=answer.run_id,
        )

    async def stop_worker(self, ref: WorkerRef, reason: str | None = None) -> LifecycleAck:
        self._own(ref)
        request = StopWorkerCommand(worker_id=ref.worker_id, reason=reason)
        return _lifecycle(ref, await self.client.issue(self.runtime_id, request))

    async def cancel_worker(self, ref: WorkerRef, reason: str | None = None) -> LifecycleAck:
        self._own(ref)
        request = CancelWorkerCommand(worker_id=ref.worker_id, reason=reason)
        return _lifecycle(ref, await self.client.issue(self.runtime_id, request))

    async def cancel_run(self, ref: WorkerRef, run_id: str, reason: str | None = None) -> bool:
        self._own(ref)
        request = CancelRunCommand(worker_id=ref.worker_id, run_id=run_id, reason=reason)
        return bool((await self.client.issue(self.runtime_id, request)).changed)

    async def stop_runtime(self) -> UUID:
        answer = await self.client.issue(self.runtime_id, StopRuntimeCommand())
        assert answer.event_id is not None
        return UUID(answer.event_id)

    def _own(self, ref: WorkerRef) -> None:
        if ref.runtime_id != self.runtime_id:
            raise WrongRuntime(self.runtime_id, ref.runtime_id)


def _lifecycle(ref: WorkerRef, answer: CommandCompleted) -> LifecycleAck:
    assert answer.status is not None and answer.event_id is not None
    return LifecycleAck(
        ref=ref,
        status=WorkerStatus(answer.status),
        event_id=UUID(answer.event_id),
        changed=bool(answer.changed),
    )
