"""`store.database.translate`: real SQLite failures, each to its typed error and message.

Every exception here comes from a real SQLite call (no exception is built by
hand), and only SQLite's corruption codes may produce a message that calls
the file damaged.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from store.database import translate
from store.errors import (
    CannotOpenDatabase,
    CorruptDatabase,
    DatabaseFailure,
    DatabaseLocked,
    DiskFull,
    DiskIOError,
    NotADatabase,
    OutOfMemory,
    QueryTooComplex,
    ReadOnlyDatabase,
    StoreError,
    ValueTooBig,
)
from tests.store.support import spawn

BUSY_S = 0.25


def _raised(action: Callable[[], object]) -> BaseException:
    """The exception `action` raises (it must raise)."""
    try:
        action()
    except (sqlite3.Error, MemoryError) as exc:
        return exc
    raise AssertionError("the SQLite call did not fail")


def _check(exc: BaseException, path: Path, expected: type[StoreError]) -> str:
    """Translate `exc`; the class must be exactly `expected`, the message one line naming
    the file, and "damaged" only for corruption."""
    error = translate(exc, path, BUSY_S)
    assert type(error) is expected, (type(error), error, exc)
    message = str(error)
    assert "\n" not in message and str(path) in message
    assert ("damaged" in message) == (expected is CorruptDatabase), message
    assert "move it aside" not in message or expected is CorruptDatabase
    return message


@pytest.fixture
def memory() -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    yield conn
    conn.close()


def _file_db(path: Path, rows: int = 0, payload: int = 100) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
    conn.executemany("INSERT INTO t (body) VALUES (?)", [("x" * payload,) for _ in range(rows)])
    conn.close()


def test_a_full_database_is_disk_full(memory: sqlite3.Connection) -> None:
    """Issue 7 item 6: SQLITE_FULL (an in-memory database at its max_page_count) is
    DiskFull, whose message says the disk is full and never that the file is damaged."""
    memory.execute("CREATE TABLE t (body TEXT)")
    memory.execute("PRAGMA max_page_count = 3").fetchone()

    def fill() -> None:
        for _ in range(100):
            memory.execute("INSERT INTO t VALUES (?)", ("x" * 2000,))

    exc = _raised(fill)
    assert getattr(exc, "sqlite_errorname", None) == "SQLITE_FULL"
    message = _check(exc, Path("/data/a.db"), DiskFull)
    assert message == "/data/a.db: the disk is full, nothing was written; free some space and retry"


def test_a_too_deep_expression_is_a_query_too_complex(memory: sqlite3.Connection) -> None:
    """Issue 7 item 6: "Expression tree is too large" (SQLITE_ERROR) is QueryTooComplex,
    which says to narrow the filter, not that the file is damaged."""
    exc = _raised(lambda: memory.execute("SELECT 1 WHERE " + " AND ".join(["1"] * 1200)))
    assert getattr(exc, "sqlite_errorname", None) == "SQLITE_ERROR"
    assert "Expression tree is too large" in str(exc)
    message = _check(exc, Path("/data/a.db"), QueryTooComplex)
    assert "narrow the filter" in message and "Expression tree is too large" in message


def test_too_many_sql_variables_is_a_query_too_complex(memory: sqlite3.Connection) -> None:
    """Issue 7 item 6: "too many SQL variables" (SQLITE_ERROR) is QueryTooComplex too."""
    memory.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 10)
    exc = _raised(lambda: memory.execute("SELECT " + ", ".join(["?"] * 11), [1] * 11))
    assert "too many SQL variables" in str(exc)
    assert "narrow the filter" in _check(exc, Path("/data/a.db"), QueryTooComplex)


def test_a_value_over_the_length_limit_is_value_too_big(memory: sqlite3.Connection) -> None:
    """Issue 7 item 6: SQLITE_TOOBIG is ValueTooBig: send less, nothing is damaged."""
    memory.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 1000)
    exc = _raised(lambda: memory.execute("SELECT ?", ("x" * 2000,)).fetchone())
    assert getattr(exc, "sqlite_errorname", None) == "SQLITE_TOOBIG"
    assert "smaller" in _check(exc, Path("/data/a.db"), ValueTooBig)


def test_busy_from_another_connection_is_locked(tmp_path: Path) -> None:
    """Issue 7 item 6: SQLITE_BUSY (a second connection holds the write lock) is DatabaseLocked
    with the time waited."""
    path = tmp_path / "a.db"
    _file_db(path)
    holder = sqlite3.connect(path, isolation_level=None)
    waiter = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        holder.execute("BEGIN IMMEDIATE")
        exc = _raised(lambda: waiter.execute("BEGIN IMMEDIATE"))
        assert getattr(exc, "sqlite_errorname", None) == "SQLITE_BUSY"
        message = _check(exc, path, DatabaseLocked)
        assert f"{BUSY_S:g}s" in message
    finally:
        holder.close()
        waiter.close()


def test_a_table_locked_by_its_own_reader_is_locked(tmp_path: Path) -> None:
    """Issue 7 item 6: SQLITE_LOCKED (dropping a table a statement still reads) is
    DatabaseLocked as well."""
    path = tmp_path / "a.db"
    _file_db(path, rows=5)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        reading = conn.execute("SELECT * FROM t")
        reading.fetchone()
        exc = _raised(lambda: conn.execute("DROP TABLE t"))
        assert getattr(exc, "sqlite_errorname", None) == "SQLITE_LOCKED"
        _check(exc, path, DatabaseLocked)
    finally:
        conn.close()


def test_a_truncated_file_is_corrupt(tmp_path: Path) -> None:
    """Issue 7 item 6: SQLITE_CORRUPT (a file cut in half) is the one case called damaged."""
    path = tmp_path / "a.db"
    _file_db(path, rows=2000, payload=300)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    conn = sqlite3.connect(path)
    try:
        exc = _raised(lambda: conn.execute("SELECT max(id), count(body) FROM t").fetchone())
    finally:
        conn.close()
    assert getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_CORRUPT
    message = _check(exc, path, CorruptDatabase)
    assert "restore it from a backup" in message


def test_a_text_file_is_not_a_database(tmp_path: Path) -> None:
    """Issue 7 item 6: SQLITE_NOTADB is NotADatabase (not "damaged")."""
    path = tmp_path / "notes.txt"
    path.write_text("these are my notes\n" * 50)
    conn = sqlite3.connect(path)
    try:
        exc = _raised(lambda: conn.execute("SELECT count(*) FROM sqlite_master").fetchone())
    finally:
        conn.close()
    assert getattr(exc, "sqlite_errorname", None) == "SQLITE_NOTADB"
    assert "not a SQLite database" in _check(exc, path, NotADatabase)


def test_writing_through_a_read_only_connection(tmp_path: Path) -> None:
    """Issue 7 item 6: SQLITE_READONLY is ReadOnlyDatabase."""
    path = tmp_path / "a.db"
    _file_db(path)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        exc = _raised(lambda: conn.execute("INSERT INTO t (body) VALUES ('x')"))
    finally:
        conn.close()
    assert getattr(exc, "sqlite_errorname", None) == "SQLITE_READONLY"
    assert "cannot be written" in _check(exc, path, ReadOnlyDatabase)


def test_a_file_that_cannot_be_opened(tmp_path: Path) -> None:
    """Issue 7 item 6: SQLITE_CANTOPEN is CannotOpenDatabase: check the path and permissions."""
    path = tmp_path / "missing.db"
    exc = _raised(lambda: sqlite3.connect(f"file:{path}?mode=ro", uri=True))
    assert getattr(exc, "sqlite_errorname", None) == "SQLITE_CANTOPEN"
    assert "check the path and its permissions" in _check(exc, path, CannotOpenDatabase)


def test_a_failed_rollback_is_not_damage(memory: sqlite3.Connection) -> None:
    """Issue 7 item 6: the very error that masked a full disk ("cannot rollback - no
    transaction is active") no longer reads as a damaged database."""
    exc = _raised(lambda: memory.execute("ROLLBACK"))
    assert "cannot rollback" in str(exc)
    _check(exc, Path("/data/a.db"), DatabaseFailure)


def test_a_missing_table_is_not_a_complex_query(memory: sqlite3.Connection) -> None:
    """Issue 7 item 6: SQLITE_ERROR that is not over a limit ("no such table") does not
    advise narrowing a filter, nor calls the file damaged: it points at verify."""
    exc = _raised(lambda: memory.execute("SELECT * FROM events_fts").fetchall())
    message = _check(exc, Path("/data/a.db"), DatabaseFailure)
    assert "narrow the filter" not in message and "verify" in message


def test_an_interrupted_query_is_a_plain_failure(memory: sqlite3.Connection) -> None:
    """Issue 7 item 6: a code with no class of its own (SQLITE_INTERRUPT) is a
    DatabaseFailure that names the code, never "damaged"."""
    memory.set_progress_handler(lambda: 1, 1)
    exc = _raised(lambda: memory.execute("SELECT 1").fetchone())
    assert getattr(exc, "sqlite_errorname", None) == "SQLITE_INTERRUPT"
    message = _check(exc, Path("/data/a.db"), DatabaseFailure)
    assert "SQLITE_INTERRUPT" in message and "verify" in message


def test_a_duplicate_key_is_a_plain_failure(memory: sqlite3.Connection) -> None:
    """Issue 7 item 6: an extended code (SQLITE_CONSTRAINT_PRIMARYKEY) is named whole."""
    memory.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    memory.execute("INSERT INTO t VALUES (1)")
    exc = _raised(lambda: memory.execute("INSERT INTO t VALUES (1)"))
    assert "SQLITE_CONSTRAINT_PRIMARYKEY" in _check(exc, Path("/data/a.db"), DatabaseFailure)


def test_a_closed_connection_is_a_plain_failure() -> None:
    """Issue 7 item 6: an error Python's sqlite3 raises itself has no SQLite code; it is a
    DatabaseFailure naming the exception, not damage."""
    conn = sqlite3.connect(":memory:")
    conn.close()
    exc = _raised(lambda: conn.execute("SELECT 1"))
    assert getattr(exc, "sqlite_errorcode", None) is None
    assert "ProgrammingError" in _check(exc, Path("/data/a.db"), DatabaseFailure)


def test_a_store_error_passes_through(tmp_path: Path) -> None:
    """Issue 7 item 6: translate leaves an already typed error alone."""
    error = DiskFull(tmp_path / "a.db")
    assert translate(error, tmp_path / "b.db", BUSY_S) is error


def _child(*args: object) -> dict[str, object]:
    proc = spawn("sqlite_failure.py", *args)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "Traceback" not in err, err
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


def test_out_of_memory() -> None:
    """Issue 7 item 6: SQLITE_NOMEM (a real heap cap, in a child process since the cap
    cannot be lifted) arrives as MemoryError and becomes OutOfMemory."""
    result = _child("nomem")
    assert result["raw"] == "MemoryError"
    assert result["error"] == OutOfMemory.__name__
    message = str(result["message"])
    assert "ran out of memory" in message and "damaged" not in message


def test_an_io_error(tmp_path: Path) -> None:
    """Issue 7 item 6: SQLITE_IOERR (a write failing with EFBIG under a file-size cap, in a
    child process) is DiskIOError: the disk may be failing, removed or full."""
    result = _child("ioerr", tmp_path / "a.db")
    assert result["name"] == "SQLITE_IOERR_WRITE"
    assert result["error"] == DiskIOError.__name__
    message = str(result["message"])
    assert "I/O error" in message and "failing, removed or full" in message
    assert "nothing was written" in message and "damaged" not in message
