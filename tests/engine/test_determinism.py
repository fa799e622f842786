"""Injected clock and ids: the same scenario twice gives the same events, ids and times."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from engine.clock import CountingIds, SteppingClock
from engine.errors import RuntimeBusy
from engine.results import CreateWorkerRequest
from engine.runtime import Runtime
from store.models import RoleIntent, RunStatus
from store.open import open_store
from tests.engine.conftest import all_events, demo_profile, profile_set, wait_run
from tests.pg import PgServer


async def scenario(db: str | Path) -> list[dict[str, Any]]:
    """Workers, inputs, a demo run, a stop, a cancel, a close and a reopen."""
    clock, ids = SteppingClock(), CountingIds()
    profiles = profile_set(demo_profile(pace=0.03, steps=4))
    store = await open_store(db)
    try:
        # A quick heartbeat: whatever the lease does must not touch the event clock.
        settings: dict[str, Any] = {
            "profiles": profiles,
            "clock": clock,
            "ids": ids,
            "heartbeat_s": 0.01,
        }
        rt = await Runtime.host(store, "det", **settings)
        echo = await rt.create_worker(CreateWorkerRequest())
        demo = await rt.create_worker(
            CreateWorkerRequest(intent=RoleIntent(role="tester"), profile="slow")
        )
        for text in ("one", "two"):
            ack = await rt.send_input(echo.ref, text)
            assert (await wait_run(rt, ack.run_id)).status is RunStatus.COMPLETED
        ack = await rt.send_input(demo.ref, "work slowly")
        assert (await wait_run(rt, ack.run_id)).status is RunStatus.COMPLETED
        await rt.stop_worker(echo.ref, reason="done")
        await rt.cancel_worker(demo.ref)
        await rt.close()
        rt = await Runtime.host(store, "det", **settings)
        third = await rt.create_worker(CreateWorkerRequest())
        ack = await rt.send_input(third.ref, "after reopen")
        await wait_run(rt, ack.run_id)
        await rt.stop_runtime()
        events = await all_events(rt)
        await rt.close()
    finally:
        await store.close()
    return [e.to_json_dict() for e in events]


async def test_the_same_scenario_gives_identical_events(
    db_address: str | Path, backend: str, tmp_path: Path, pg_server: PgServer
) -> None:
    first = await scenario(db_address)
    if backend == "postgres":  # a second database on the same server, dropped after
        name = pg_server.create_database("determinism")
        try:
            second = await scenario(pg_server.url(name))
        finally:
            pg_server.drop_database(name)
    else:
        second = await scenario(tmp_path / "two.db")
    assert len(first) > 40
    assert first == second
    ids = [e["event_id"] for e in first]
    assert len(set(ids)) == len(ids)
    times = [datetime.fromisoformat(e["at"]) for e in first]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert times[0] == SteppingClock().start


async def test_the_lease_runs_on_wall_time_whatever_clock_stamps_events(
    db_address: str | Path,
) -> None:
    # The test clock is far from now; a host using it is still alive and beating.
    first_store = await open_store(db_address)
    second_store = await open_store(db_address)
    try:
        rt = await Runtime.host(first_store, "local", clock=SteppingClock(), stale_after_s=10)
        try:
            with pytest.raises(RuntimeBusy):
                await Runtime.host(second_store, "local", stale_after_s=10)
        finally:
            await rt.close()
    finally:
        await second_store.close()
        await first_store.close()
