"""Run a test on both store back ends from one fixture: `db_address`.

A test (or fixture) that asks for `db_address` gets the address of a new, empty
database and is collected twice, as `[sqlite]` (a file in tmp_path) and as
`[postgres]` (a fresh database on the session's throwaway server, tests/pg.py).
Open it with `store.open.open_store(db_address, ...)`, or hand it to a child
process as `--db` (`str(db_address)`).

A test that needs SQLite itself (raw sqlite3 on the file, the WAL, a full
disk, file permissions) asks for `db_path` instead, or is marked
`@pytest.mark.sqlite_only`; it is then collected once, as `[sqlite]`, with
`db_address` being that same file. No combination is generated only to be
skipped.

`backend` is "sqlite" or "postgres", for the rare test whose expectation
differs by back end (say why where you use it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

BACKENDS = ("sqlite", "postgres")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sqlite_only: needs the SQLite file itself; collected for SQLite alone"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    sqlite_only = (
        "db_path" in metafunc.fixturenames
        or metafunc.definition.get_closest_marker("sqlite_only") is not None
    )
    metafunc.parametrize("backend", ["sqlite"] if sqlite_only else list(BACKENDS), indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_address(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str | Path:
    if backend == "postgres":
        return str(request.getfixturevalue("pg_url"))
    if "db_path" in request.fixturenames:
        return Path(request.getfixturevalue("db_path"))
    return tmp_path / "deck.db"
