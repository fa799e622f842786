"""Fixtures of the store tests: a real database on each back end (see tests/backends.py).

`store` asks for `db_address`, so every test using it runs on SQLite and PostgreSQL;
`db_path` stays for the tests that need the SQLite file itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from store.open import open_store

if TYPE_CHECKING:
    from store.open import AnyStore


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "agentdeck.db"


@pytest.fixture
async def store(db_address: str | Path) -> AsyncIterator[AnyStore]:
    """A writer store on a new database, without the folder watcher (in-process tests)."""
    opened = await open_store(db_address, watch=False)
    try:
        yield opened
    finally:
        await opened.close()
