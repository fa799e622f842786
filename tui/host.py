"""`agentdeck host`: host a runtime with no terminal, for work that must outlive any console.

It hosts the runtime the way the console does (a dead host's leftovers are
ended, its in-flight runs failed "host exited", its queued runs resumed) and
then only follows: one line on stderr for each lifecycle event of the runtime
(hosting, take-over, workers created or ended, commands other consoles issued
and their outcomes, the store refusing writes and taking them again, a bad
profiles file) and none per run, so a journal stays readable under load.
SIGTERM and SIGINT, the normal ways to end a service, stop it cleanly with
exit 0: in-flight runs fail "host closed", their process groups are ended,
and queued runs stay in the log for the next host. SIGHUP stops it the same
way with 129, like every other command. No Textual here.

Several runtimes, and standing by (an HA pair): `--runtime` may be given more
than once (or `--standby` with one). Each named runtime that no live process
hosts is hosted here; for each one hosted elsewhere this process says once
that it stands by, and takes it over as soon as that host is gone (its
heartbeat went stale; or, on this same machine, its pid is gone). Run the
same command on two machines and every runtime has a host and a standby. A
standby that loses a runtime it took (another took it over meanwhile) stands
by again. Without standing by, a runtime hosted elsewhere is refused in one
line, and losing the lease ends the command with 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import EngineError, InvalidRequest, RuntimeBusy
from engine.hosting import HEARTBEAT_S, STALE_AFTER_S, holder_gone, machine_name, pid_alive
from engine.runtime import Runtime
from store.catalog import COMMAND_OUTCOME_KINDS, WORKER_STATUS_KINDS
from store.errors import StoreError
from store.models import Event, HostLease, Lag, Severity
from store.open import open_store
from tui.cli import default_config_path, say, say_fault
from tui.shutdown import Stop

if TYPE_CHECKING:
    from store.open import AnyStore

EXIT_OK, EXIT_FAILED = 0, 1
FOLLOWER_STOP_S = 2.0  # at most this long to wait for the follower to stop
LEASE_CHECK_S = 1.0  # how soon a host that lost its lease to another process notices
_SAID_KINDS = frozenset({"runtime.started", "runtime.restored", "runtime.stopped"}) | (
    WORKER_STATUS_KINDS
) | {"worker.restart.failed", "command.issued"} | COMMAND_OUTCOME_KINDS


def is_lifecycle(event: Event) -> bool:
    """Whether `event` gets a line: the runtime's and workers' lifecycle, and what went wrong."""
    if event.kind in _SAID_KINDS:
        return True
    return event.kind == "diagnostic.raised" and event.level is not Severity.INFO


async def host_command(args: argparse.Namespace, stop: Stop) -> int:
    """Host the runtimes named in `args` on `args.db` until a stop signal.

    Standing by (several runtimes, or `--standby`): a runtime hosted elsewhere is
    taken over once its host is gone. Otherwise a runtime hosted elsewhere is
    refused (RuntimeBusy), and another host taking it over ends this one with 1.
    """
    others = list(dict.fromkeys(getattr(args, "standby_for", None) or []))
    primary = getattr(args, "runtimes", None) or ([] if others else [args.runtime])
    names = list(dict.fromkeys(primary))
    standby = bool(getattr(args, "standby", False)) or len(names) > 1 or bool(others)
    slots = [_Slot(name) for name in names]
    slots += [_Slot(name, primary=False) for name in others if name not in names]
    token = getattr(args, "lease_token", None)
    if token is not None and len(slots) > 1:
        raise InvalidRequest("--lease-token hands one runtime over: give only one --runtime")
    stale = getattr(args, "stale_after", None) or STALE_AFTER_S
    if stale < 2 * HEARTBEAT_S:
        raise InvalidRequest(
            f"--stale-after {stale:g} is too short: hosts beat every {HEARTBEAT_S:g}s, so a "
            f"live host would be taken over; use at least {2 * HEARTBEAT_S:g}"
        )
    machine_name()  # a bad AGENTDECK_HOST_NAME is refused before the database is opened
    store = await open_store(args.db, watch=True)
    try:
        config = args.config if args.config is not None else default_config_path(store.folder)
        hosting = Hosting(store, config, stop, standby=standby, stale_after_s=stale)
        try:
            return await hosting.serve(slots, token)
        except RuntimeBusy as exc:
            say(f"{exc}; or stand by to take it over when it is gone (--standby)")
            return EXIT_FAILED
    finally:
        await store.close()


@dataclass
class _Slot:
    """One named runtime: hosted here, or stood by for."""

    runtime_id: str
    primary: bool = True  # False: only stood by for (--standby-for), never hosted first
    runtime: Runtime | None = None
    follower: asyncio.Task[None] | None = None
    holder: HostLease | None = None  # the holder last said to be stood by for
    trouble: str | None = None  # the last reason a take-over failed, said once

    @property
    def name(self) -> str:
        return f"host {self.runtime_id}"


class Hosting:
    """The runtimes one `agentdeck host` serves: hosts what it can, stands by for the rest."""

    def __init__(
        self, store: AnyStore, config: Path, stop: Stop, *, standby: bool, stale_after_s: float
    ) -> None:
        self._store = store
        self._config = config
        self._stop = stop
        self._standby = standby
        self._stale_after_s = stale_after_s

    async def serve(self, slots: list[_Slot], token: str | None) -> int:
        try:
            hosts = await self._store.hosts() if self._standby else {}
            for slot in slots:
                # The first attempt's errors (no such database, a bad name) end the command.
                await self._try_host(slot, hosts.get(slot.runtime_id), token, first=True)
            while not self._stop.requested:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), LEASE_CHECK_S)
                if await self._check(slots) is not None:
                    return EXIT_FAILED
            signum = self._stop.signum
            why = signal.Signals(signum).name if signum is not None else "a stop"
            for slot in slots:
                if slot.runtime is None:
                    say(f"{slot.name}: {why} received; no longer standing by")
                    continue
                running, queued = slot.runtime.work_in_progress()
                say(
                    f"{slot.name}: {why} received; stopping ({_runs(len(running))} running, "
                    f"{queued} queued)"
                )
            return EXIT_OK
        finally:
            await asyncio.gather(*(self._end(slot) for slot in slots if slot.runtime is not None))

    async def _check(self, slots: list[_Slot]) -> int | None:
        """One round: notice a lease lost, take over what is stood by for if its host is gone.
        EXIT_FAILED when a lease was lost and this process does not stand by."""
        if self._stop.requested:
            return None  # stopping: the caller says so and closes what is hosted
        for slot in slots:
            if slot.runtime is not None and slot.runtime.lease_lost:
                if not self._standby:
                    say(f"{slot.name}: another process took over hosting this runtime; stopping")
                    return EXIT_FAILED
                say(
                    f"{slot.name}: another process took over hosting this runtime; "
                    "standing by for it"
                )
                await self._end(slot)
        waiting = [slot for slot in slots if slot.runtime is None]
        if not waiting:
            return None
        try:
            hosts = await self._store.hosts()
        except StoreError as exc:
            for slot in waiting:
                self._trouble(slot, str(exc))
            return None
        for slot in waiting:
            try:
                await self._try_host(slot, hosts.get(slot.runtime_id), None, first=False)
            except (StoreError, EngineError) as exc:
                self._trouble(slot, str(exc))
        return None

    async def _try_host(
        self, slot: _Slot, holder: HostLease | None, token: str | None, *, first: bool
    ) -> None:
        """Host `slot` now, unless it is stood by for (a live holder elsewhere)."""
        now = datetime.now(UTC)
        if (
            self._standby
            and holder is not None
            and not holder_gone(holder, now=now, stale_after_s=self._stale_after_s)
        ):
            self._standing_by(slot, holder)
            return
        if holder is None and slot.holder is None and not slot.primary:
            if first:  # another machine's runtime: its own host is to start it
                say(
                    f"{slot.name}: standing by for runtime {slot.runtime_id}, which no process "
                    "hosts yet; taking it over once a host of it has come and gone"
                )
            return
        after = self._store.feed.last_position
        try:
            runtime = await Runtime.host(
                self._store,
                slot.runtime_id,
                config_path=self._config,
                lease_token=token,
                stale_after_s=self._stale_after_s,
            )
        except RuntimeBusy as exc:
            if not self._standby:
                raise
            self._standing_by(slot, exc.holder)  # another standby got there first
            return
        seen = slot.holder
        slot.runtime, slot.holder, slot.trouble = runtime, None, None
        if not first and holder is not None:
            say(f"{slot.name}: taking over from pid {holder.pid} on {holder.host_name}: {_why_gone(holder)}")
        elif not first and seen is not None:
            say(f"{slot.name}: taking over: pid {seen.pid} on {seen.host_name} stopped hosting it")
        say(
            f"{slot.name}: hosting runtime {runtime.runtime_id} on {self._store.label} "
            f"(pid {os.getpid()}); SIGTERM or Ctrl-C stops it, queued work is kept"
        )
        runtime.add_fault_listener(lambda fault: say_fault(slot.name, fault))
        slot.follower = asyncio.create_task(
            _follow(self._store, runtime.runtime_id, after, slot.name)
        )

    def _standing_by(self, slot: _Slot, holder: HostLease) -> None:
        seen = slot.holder
        if seen is None or (seen.pid, seen.host_name, seen.started_at) != (
            holder.pid, holder.host_name, holder.started_at
        ):
            say(
                f"{slot.name}: standing by for runtime {slot.runtime_id}, hosted by pid "
                f"{holder.pid} on {holder.host_name}; taking it over when that host is gone"
            )
        slot.holder, slot.trouble = holder, None

    def _trouble(self, slot: _Slot, why: str) -> None:
        if why != slot.trouble:
            say(f"{slot.name}: cannot take it over yet ({why}); trying again")
        slot.trouble = why

    async def _end(self, slot: _Slot) -> None:
        """Stop hosting `slot`: its follower, then the runtime (its runs fail "host closed")."""
        runtime, follower = slot.runtime, slot.follower
        slot.runtime, slot.follower = None, None
        if follower is not None:
            await _stop_follower(follower)
        if runtime is None:
            return
        running, queued = runtime.work_in_progress()
        await runtime.close()
        say(
            f"{slot.name}: stopped; {_runs(len(running))} failed \"host closed\", "
            f"{_runs(queued)} queued kept for the next host"
        )


def _why_gone(holder: HostLease) -> str:
    if holder.host_name == machine_name() and not pid_alive(holder.pid):
        return "that process is gone"
    return f"no heartbeat since {holder.heartbeat_at:%H:%M:%S} UTC"


async def _stop_follower(follower: asyncio.Task[None]) -> None:
    follower.cancel()
    # Waited with a timeout: on PostgreSQL a follower cancelled mid-read was seen
    # to finish only once the loop woke again (a timer does that); the store's
    # close ends its subscription in any case.
    done, _ = await asyncio.wait({follower}, timeout=FOLLOWER_STOP_S)
    if follower in done and not follower.cancelled():
        follower.exception()  # retrieved: it was already said or is of no use now


async def _follow(store: AnyStore, runtime_id: str, after: int, name: str) -> None:
    """Say each lifecycle event of the runtime, from hosting on (the opening events included)."""
    sub = store.subscribe(after)
    try:
        while True:
            for item in await sub.next_batch(1000):
                if isinstance(item, Lag):
                    say(f"{name}: fell behind the log by {item.dropped} events; lines skipped")
                elif item.runtime_id == runtime_id and is_lifecycle(item):
                    say(f"{name}: {item.kind}: {item.message}")
    except StopAsyncIteration:
        return
    finally:
        sub.close()


def _runs(count: int) -> str:
    return f"{count} run{'s' if count != 1 else ''}"
