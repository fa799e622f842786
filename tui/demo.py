"""`agentdeck demo`: host a runtime headless and keep demo workers busy. No Textual here."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time

from engine.errors import StorageUnavailable
from engine.profiles import BuiltinProfile, ProfileSet
from engine.results import CreateWorkerRequest
from engine.runtime import Runtime
from store.errors import StoreError
from store.models import RoleIntent, RunStatus
from store.open import open_store
from tui.cli import say, say_fault
from tui.shutdown import Stop

EXIT_OK, EXIT_FAILED = 0, 1


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


async def demo_command(args: argparse.Namespace, stop: Stop) -> int:
    """Host `args.runtime`, keep `args.workers` demo workers busy until `stop` or the duration."""
    store = await open_store(args.db, watch=False)
    settings = demo_profile_settings(args.workers, args.rate, args.fail_rate)
    profile = BuiltinProfile(name="demo-load", builtin="demo", demo=settings)
    profiles = ProfileSet(profiles={"demo-load": profile}, default_profile="demo-load")
    try:
        runtime = await Runtime.host(store, args.runtime, profiles=profiles)
    except BaseException:
        await store.close()
        raise
    runtime.add_fault_listener(lambda fault: say_fault("demo", fault))
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
                    try:
                        detail = await runtime.worker_detail(worker.ref)
                        if detail.queued == 0:
                            await runtime.send_input(worker.ref, f"demo task #{inputs + 1}")
                            inputs += 1
                    except (StorageUnavailable, StoreError):
                        break  # the database takes no writes now: wait, then try again
                await asyncio.sleep(0.05 if runtime.fault is None else 0.5)

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
        still = runtime.fault
    finally:
        await runtime.close()
        await store.close()
    elapsed = time.monotonic() - started
    events = store.feed.last_position - first_position
    print(
        f"demo: runtime {args.runtime}, {args.workers} workers, {inputs} inputs, "
        f"{counts[RunStatus.COMPLETED]} runs completed, {counts[RunStatus.FAILED]} failed, "
        f"{events} events in {elapsed:.1f}s ({events / elapsed:.0f} events/s)",
        flush=True,
    )
    if still is not None:
        say(
            f"demo: the database could not be written since {still.since:%H:%M:%S} UTC"
            f" ({still.reason}); runs that were running then are failed by the next host;"
            " free space and check with `agentdeck verify`"
        )
        return EXIT_FAILED
    return EXIT_OK
