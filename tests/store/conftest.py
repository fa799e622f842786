"""Fixtures of the store tests: a real database file in tmp_path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from store.event_store import EventStore


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "agentdeck.db"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[EventStore]:
    """A writer store on a new file, without the folder watcher (in-process tests)."""
    opened = await EventStore.open(db_path, watch=False)
    try:
        yield opened
    finally:
        await opened.close()
