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
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
from typing import TYPE_CHECKING

from engine.runtime import Runtime
from store.catalog import COMMAND_OUTCOME_KINDS, WORKER_STATUS_KINDS
from store.models import Event, Lag, Severity
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
    """Host `args.runtime` on `args.db` until a stop signal (or until another host takes it)."""
    name = f"host {args.runtime}"
    store = await open_store(args.db, watch=True)
    try:
        after = store.feed.last_position
        config = args.config if args.config is not None else default_config_path(store.folder)
        runtime = await Runtime.host(
            store, args.runtime, config_path=config, lease_token=args.lease_token
        )
        try:
            return await _serve(runtime, store, after, stop, name)
        finally:
            running, queued = runtime.work_in_progress()
            await runtime.close()
            say(
                f"{name}: stopped; {_runs(len(running))} failed \"host closed\", "
                f"{_runs(queued)} queued kept for the next host"
            )
    finally:
        await store.close()


async def _serve(runtime: Runtime, store: AnyStore, after: int, stop: Stop, name: str) -> int:
    say(
        f"{name}: hosting runtime {runtime.runtime_id} on {store.label} (pid {os.getpid()});"
        " SIGTERM or Ctrl-C stops it, queued work is kept"
    )
    runtime.add_fault_listener(lambda fault: say_fault(name, fault))
    follower = asyncio.create_task(_follow(store, runtime.runtime_id, after, name))
    try:
        while not stop.requested:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), LEASE_CHECK_S)
            if runtime.lease_lost:
                say(f"{name}: another process took over hosting this runtime; stopping")
                return EXIT_FAILED
        signum = stop.signum
        why = signal.Signals(signum).name if signum is not None else "a stop"
        running, queued = runtime.work_in_progress()
        say(f"{name}: {why} received; stopping ({_runs(len(running))} running, {queued} queued)")
        return EXIT_OK
    finally:
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
