"""Filtered history reads give the live predicate's answer, on both back ends.

Word filters take a different road in the reader: on SQLite, driven from the
FTS index below the indexed position and checked row by row above it; on
PostgreSQL, narrowed by the tsvector index and rechecked where it cannot say
exactly (store.postgres.search). These tests pin that it is the same answer,
newest-first and oldest-first, with any page size, wherever SQLite's indexer
stands.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING

from store.event_store import EventStore
from store.filters import parse_filter
from store.open import open_store
from store.search import index_step
from tests.store.support import new_event

if TYPE_CHECKING:
    from store.open import AnyStore

WORDS = ("timeout", "segfault", "retry", "login", "flaky", "deploy")
FILTERS = (
    "timeout",
    "segfault worker:w-2",
    '"flaky login"',
    "retry -deploy",
    "kind:run.* deploy",
    "-timeout level:error",
    "zzz-not-there",
)


def _payload(kind: str, word: str) -> dict[str, object]:
    """A payload of `kind` (as the catalog has it) with `word` in it, for the text search."""
    if kind == "run.failed":
        return {"error": word}
    if kind == "run.step.started":
        return {"step": 1, "title": word}
    return {"reason": word}  # exec.command.*


async def _fill(store: AnyStore, count: int) -> None:
    rng = random.Random(7)
    for i in range(count):
        words = " ".join(rng.choice(WORDS) for _ in range(3))
        kind = rng.choice(
            ("run.failed", "run.step.started", "exec.command.timeout", "exec.command.started")
        )
        await store.append(
            "rt",
            None,
            [
                new_event(
                    kind,
                    worker_id=f"w-{rng.randint(1, 3)}",
                    message=f"{i}: {words}",
                    payload=_payload(kind, rng.choice(WORDS)),
                )
            ],
        )


async def test_word_reads_match_the_predicate(db_address: str | Path, backend: str) -> None:
    # Without the background indexer, so that on SQLite the test says how far it is.
    store = await open_store(db_address, watch=False, index=False)
    try:
        await _fill(store, 240)
        await _check_reads(store)
        if backend == "postgres":
            return  # indexed at append: there is no indexer to move
        # SQLite: nothing indexed (above), half, everything.
        assert isinstance(store, EventStore)
        for indexed in (120, 240):
            await store.run_job(lambda conn: index_step(conn, 120))
            assert await store.indexed_position() == indexed
            await _check_reads(store)
    finally:
        await store.close()


async def _check_reads(store: AnyStore) -> None:
    everything = (await store.read_after(0, 1000)).events
    for text in FILTERS:
        flt = parse_filter(text)
        expected = [e.position for e in everything if flt.matches(e)]
        newest = await store.read_before(10_000, 1000, flt)
        assert [e.position for e in newest] == expected[::-1], text
        for page in (1, 7, 50):
            walked: list[int] = []
            cursor = 0
            while True:
                batch = await store.read_after(cursor, page, flt)
                walked += [e.position for e in batch.events]
                cursor = batch.cursor.position
                if not batch.has_more:
                    break
            assert walked == expected, (text, page)
        top = await store.read_before(10_000, 5, flt)
        assert [e.position for e in top] == expected[::-1][:5], text
