"""A caller that gives up waiting does not undo what the log already holds."""

from __future__ import annotations

import asyncio
from pathlib import Path

from engine.results import CreateWorkerRequest
from engine.runtime import Runtime
from store.models import RunStatus
from store.open import open_store
from tests.engine.conftest import wait_run


async def test_input_whose_caller_is_cancelled_still_runs(db_address: str | Path) -> None:
    store = await open_store(db_address, watch=False, index=False)
    runtime = await Runtime.host(store, "local")
    try:
        worker = await runtime.create_worker(CreateWorkerRequest())
        sender = asyncio.create_task(runtime.send_input(worker.ref, "hello"))
        await asyncio.sleep(0)  # submitted, not yet committed
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        run = await wait_run(runtime, "w-1.r1")
        assert run.status is RunStatus.COMPLETED
        record = await runtime.worker_detail(worker.ref)
        assert record.queued == 0 and record.transcript_len == 2
    finally:
        await runtime.close()
        await store.close()
