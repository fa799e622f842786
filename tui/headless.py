"""The headless commands: `events`, `verify` (and `demo`). No Textual here."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TextIO

from store.errors import StoreError
from store.event_store import EventStore
from store.filters import parse_filter
from store.models import Event, Lag

PAGE = 1000
EXIT_OK, EXIT_FAILED, EXIT_UNUSABLE = 0, 1, 2


def _printable(text: str) -> str:
    """One terminal-safe line: control characters and escapes shown, never executed."""
    out = []
    for ch in text:
        code = ord(ch)
        if ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif code < 0x20 or code == 0x7F or 0x80 <= code < 0xA0:
            out.append(f"\\x{code:02x}")
        else:
            out.append(ch)
    return "".join(out)


def format_event(event: Event) -> str:
    """The plain-text line of `agentdeck events` (without --json)."""
    who = " ".join(x for x in (event.worker_id, event.run_id) if x)
    at = event.at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return (
        f"{event.position:>8} {at} {event.runtime_id}#{event.seq} {event.level.value:<7} "
        f"{event.kind:<24} {who:<16} {_printable(event.message)}"
    )


class _Printer:
    def __init__(self, as_json: bool, out: TextIO) -> None:
        self._json = as_json
        self._out = out

    def event(self, event: Event) -> None:
        if self._json:
            line = json.dumps(event.to_json_dict(), ensure_ascii=False, separators=(",", ":"))
        else:
            line = format_event(event)
        self._out.write(line + "\n")

    def flush(self) -> None:
        self._out.flush()


async def events_command(args: argparse.Namespace) -> int:
    flt = parse_filter(args.filter)  # a bad filter is a usage error before any I/O
    store = await EventStore.open(args.db, read_only=True, watch=args.follow, index=False)
    printer = _Printer(args.json, sys.stdout)
    remaining = args.limit
    try:
        if args.follow:
            with store.subscribe(args.after, flt) as sub:
                async for item in sub:
                    if isinstance(item, Lag):
                        print(
                            f"agentdeck: fell behind by {item.dropped} events; catching up from the store",
                            file=sys.stderr,
                        )
                        continue
                    printer.event(item)
                    printer.flush()
                    if remaining is not None:
                        remaining -= 1
                        if remaining == 0:
                            break
            return EXIT_OK
        position = args.after
        while remaining is None or remaining > 0:
            size = PAGE if remaining is None else min(PAGE, remaining)
            batch = await store.read_after(position, size, flt)
            for event in batch.events:
                printer.event(event)
            if remaining is not None:
                remaining -= len(batch.events)
            position = batch.cursor.position
            if not batch.has_more:
                break
        printer.flush()
        return EXIT_OK
    except BrokenPipeError:
        # The reader went away (`| head`): not an error. Point stdout at devnull so
        # the interpreter's final flush does not complain either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    finally:
        await store.close()


async def verify_command(args: argparse.Namespace) -> int:
    store = await EventStore.open(args.db, read_only=True, watch=False, index=False)
    try:
        report = await store.verify()
    except StoreError:
        raise
    finally:
        await store.close()
    if report.ok:
        print(report.summary())
        return EXIT_OK
    print(report.summary())
    for problem in report.problems:
        print(f"  {problem}")
    return EXIT_FAILED


def demo_profile_settings(
    workers: int, rate: float, fail_rate: float, steps: int = 3
) -> dict[str, float]:
    """Demo driver settings that make `workers` busy workers emit about `rate` events/s.

    A demo run emits about 7 lifecycle events plus ~2.4 per step (a step, and
    a tool call 70% of the time), and sleeps `pace` once per step.
    """
    events_per_run = 7 + 2.4 * steps
    runs_per_second = rate / events_per_run
    pace = workers / (runs_per_second * steps)
    return {"pace": pace, "steps": steps, "fail_rate": fail_rate}


async def demo_command(args: argparse.Namespace) -> int:
    import asyncio
    import contextlib
    import signal
    import time

    from engine.profiles import BuiltinProfile, ProfileSet
    from engine.results import CreateWorkerRequest
    from engine.runtime import Runtime
    from store.models import RoleIntent, RunStatus

    store = await EventStore.open(args.db, watch=False)
    settings = demo_profile_settings(args.workers, args.rate, args.fail_rate)
    profile = BuiltinProfile(name="demo-load", builtin="demo", demo=settings)
    profiles = ProfileSet(profiles={"demo-load": profile}, default_profile="demo-load")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        runtime = await Runtime.host(store, args.runtime, profiles=profiles)
    except BaseException:
        await store.close()
        raise
    started = time.monotonic()
    first_position = store.feed.last_position
    inputs = 0
    try:
        workers = [
            await runtime.create_worker(
                CreateWorkerRequest(intent=RoleIntent(role=f"demo-{i + 1}"), profile="demo-load")
            )
            for i in range(args.workers)
        ]

        async def feed() -> None:
            nonlocal inputs
            while True:
                for worker in workers:
                    detail = await runtime.worker_detail(worker.ref)
                    if detail.queued == 0:
                        inputs += 1
                        await runtime.send_input(worker.ref, f"demo task #{inputs}")
                await asyncio.sleep(0.05)

        feeder = asyncio.create_task(feed())
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), args.duration)
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeder
        counts = {s: 0 for s in RunStatus}
        for worker in workers:
            for run in await runtime.runs(worker.ref, limit=10_000):
                counts[run.status] += 1
    finally:
        await runtime.close()
        await store.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    elapsed = time.monotonic() - started
    events = store.feed.last_position - first_position
    print(
        f"demo: runtime {args.runtime}, {args.workers} workers, {inputs} inputs, "
        f"{counts[RunStatus.COMPLETED]} runs completed, {counts[RunStatus.FAILED]} failed, "
        f"{events} events in {elapsed:.1f}s ({events / elapsed:.0f} events/s)"
    )
    return EXIT_OK
