"""Opening a database file: checks before any write, pragmas, migrations, typed errors.

The order matters. A failed open must never alter the file, so everything
that can refuse (network file system, foreign or newer file, damage) is
decided from the raw header and a read-only connection before the file is
opened for writing or switched to WAL.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from store.errors import (
    CannotOpenDatabase,
    CorruptDatabase,
    DatabaseFailure,
    DatabaseLocked,
    DiskFull,
    DiskIOError,
    ForeignDatabase,
    MissingDatabase,
    NetworkFileSystem,
    NewerSchema,
    NotADatabase,
    OutOfMemory,
    QueryTooComplex,
    ReadOnlyDatabase,
    StoreError,
    UnusableDatabase,
    ValueTooBig,
)
from store.schema import APPLICATION_ID, LATEST_VERSION, migrate

SQLITE_MAGIC = b"SQLite format 3\x00"
NETWORK_FS_TYPES = frozenset(
    {"nfs", "nfs4", "cifs", "smb", "smb2", "smbfs", "ncpfs", "afs", "9p", "ceph", "glusterfs",
     "fuse.sshfs", "sshfs", "fuse.glusterfs", "fuse.s3fs", "lustre", "gpfs", "davfs", "fuse.rclone"}
)
DEFAULT_BUSY_TIMEOUT_S = 5.0
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024


@dataclass(frozen=True)
class OpenOptions:
    read_only: bool = False
    busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S
    synchronous: str = "FULL"
    mounts_file: Path = Path("/proc/mounts")


def filesystem_type(path: Path, mounts_file: Path = Path("/proc/mounts")) -> str | None:
    """The type of the file system holding `path`, from the mount table (None if unknown)."""
    try:
        lines = mounts_file.read_text().splitlines()
    except OSError:
        return None
    target = str(path.resolve())
    best: tuple[int, str] | None = None
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount_point = fields[1].replace("\\040", " ")
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and (best is None or len(mount_point) > best[0]):
            best = (len(mount_point), fields[2])
    return best[1] if best else None


# SQLite's messages for a statement over one of its compile-time limits.
_TOO_COMPLEX = re.compile(
    r"too large|too many|too complex|too deep|stack overflow|depth|limit", re.IGNORECASE
)


def translate(exc: BaseException, path: Path, busy_timeout_s: float) -> StoreError:
    """Map a sqlite3 error to the store's typed error with an operator's message.

    By SQLite's result code, never by message text: only SQLite's own
    corruption codes may call a file damaged, because "move it aside" is the
    wrong advice for a healthy file on a full disk or a too-long query.
    """
    if isinstance(exc, StoreError):
        return exc
    detail = str(exc)
    if isinstance(exc, MemoryError):
        # Python's sqlite3 raises SQLITE_NOMEM as a bare MemoryError, without a code.
        return OutOfMemory(path, detail or "out of memory")
    code = getattr(exc, "sqlite_errorcode", None)
    if not isinstance(exc, sqlite3.Error) or not isinstance(code, int):
        # Raised by Python's sqlite3 module itself (a closed connection, a value it
        # cannot bind): no SQLite code, and nothing about the file.
        return DatabaseFailure(path, type(exc).__name__, detail)
    if code == sqlite3.SQLITE_IOERR_SHMSIZE:
        # SQLite could not grow the -shm file by writing a byte into each new page
        # (unixShmMap): ENOSPC or a quota, short of a file-size cap (EFBIG). A full
        # disk at open shows up as this, not SQLITE_FULL, when -shm is the first
        # file that needs space.
        return DiskFull(path)
    if code == sqlite3.SQLITE_IOERR_NOMEM:
        return OutOfMemory(path, detail)
    primary = code & 0xFF  # an extended code's low byte is its primary code
    if primary == sqlite3.SQLITE_CORRUPT:
        return CorruptDatabase(path, detail)
    if primary == sqlite3.SQLITE_NOTADB:
        return NotADatabase(path)
    if primary == sqlite3.SQLITE_FULL:
        return DiskFull(path)
    # PROTOCOL: WAL locks kept changing while SQLite retried. Like BUSY and
    # LOCKED it is someone else's activity, and waiting is the remedy.
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_PROTOCOL):
        return DatabaseLocked(path, busy_timeout_s)
    if primary == sqlite3.SQLITE_READONLY:
        return ReadOnlyDatabase(path, detail)
    if primary in (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM):
        return CannotOpenDatabase(path, detail)
    if primary == sqlite3.SQLITE_IOERR:
        return DiskIOError(path, detail)
    if primary == sqlite3.SQLITE_NOMEM:
        return OutOfMemory(path, detail)
    if primary == sqlite3.SQLITE_TOOBIG:
        return ValueTooBig(path, detail)
    if primary == sqlite3.SQLITE_ERROR and _TOO_COMPLEX.search(detail):
        # The generic code, for a statement over one of SQLite's limits: a filter's
        # expression deeper than the limit, too many variables. (Other generic
        # errors, such as a missing table, are not the query's size: they fall
        # through to DatabaseFailure, which points at `verify`.)
        return QueryTooComplex(path, detail)
    name = getattr(exc, "sqlite_errorname", None) or f"SQLite code {code}"
    return DatabaseFailure(path, str(name), detail)


def _uri(path: Path, mode: str) -> str:
    return f"file:{path}?mode={mode}"


def _connect(path: Path, mode: str, options: OpenOptions) -> sqlite3.Connection:
    conn = sqlite3.connect(
        _uri(path, mode),
        uri=True,
        isolation_level=None,
        check_same_thread=False,
        timeout=options.busy_timeout_s,
    )
    conn.execute(f"PRAGMA busy_timeout = {int(options.busy_timeout_s * 1000)}")
    return conn


def _check_header(path: Path) -> bool:
    """True if the file is empty (a new database); raise if it is not SQLite."""
    size = path.stat().st_size
    if size == 0:
        return True
    with path.open("rb") as fh:
        header = fh.read(100)
    if not header.startswith(SQLITE_MAGIC):
        raise NotADatabase(path)
    if len(header) < 100:
        raise CorruptDatabase(path, "the file is shorter than a SQLite header")
    return False


def _refuse_from_header(path: Path) -> None:
    """Refuse a foreign or newer file from its raw header, before SQLite opens it.

    Even a read-only SQLite connection to a WAL-mode file creates `-wal` and
    `-shm` beside it, so a refusal decided after connecting would leave new
    files behind. The header is authoritative only while no WAL content can
    supersede it.
    """
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        return  # the WAL may hold a newer page 1: let SQLite read it
    with path.open("rb") as fh:
        header = fh.read(100)
    version = int.from_bytes(header[60:64], "big", signed=True)
    app_id = int.from_bytes(header[68:72], "big", signed=True)
    if app_id == APPLICATION_ID and version > LATEST_VERSION:
        raise NewerSchema(path, version, LATEST_VERSION)
    if app_id != APPLICATION_ID and (app_id != 0 or version != 0):
        raise ForeignDatabase(path)
    # No marks at all: a file agentdeck began but never migrated has one page; more
    # pages (when the in-header size is valid) means another program's tables.
    pages = int.from_bytes(header[28:32], "big")
    if app_id == 0 and header[24:28] == header[92:96] and pages > 1:
        raise ForeignDatabase(path)


def _inspect(path: Path, options: OpenOptions) -> int:
    """Schema version of an existing file, read without writing; raise if unusable."""
    _refuse_from_header(path)
    try:
        conn = _connect(path, "ro", options)
    except sqlite3.Error as exc:
        raise translate(exc, path, options.busy_timeout_s) from None
    try:
        # One read transaction, so the marks and the tables come from one snapshot:
        # read one by one, a creator committing in between (another console
        # starting at the same moment) would show a half-marked, "foreign" file.
        conn.execute("BEGIN")
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if app_id != APPLICATION_ID:
            if app_id == 0 and version == 0 and tables == 0:
                return 0
            raise ForeignDatabase(path)
        if version > LATEST_VERSION:
            raise NewerSchema(path, version, LATEST_VERSION)
        if version >= 1:
            # Touch the end of the log: a truncated file fails here, not mid-session.
            conn.execute("SELECT max(position) FROM events").fetchone()
        return int(version)
    except sqlite3.Error as exc:
        raise translate(exc, path, options.busy_timeout_s) from None
    finally:
        close_quietly(conn)  # also ends the read transaction


def _create_file(path: Path) -> None:
    """Create an empty, owner-only file, unless another process just did."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        # Owner-only from the first byte; SQLite gives -wal and -shm the same mode.
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        # Created since `prepare` looked: another console started at the same
        # moment. Its file is ours to open; `migrate` re-checks under the write
        # lock, so whoever migrates second finds the work done.
        return
    os.close(fd)


def _writable(path: Path) -> str | None:
    """Why `path` cannot be written (None if it can)."""
    if not os.access(path, os.W_OK):
        return "the file is read-only"
    if not os.access(path.parent, os.W_OK):
        return "its folder is read-only"
    return None


def prepare(path: Path | str, options: OpenOptions = OpenOptions()) -> Path:
    """Check (and for a writer, create and migrate) the database; return its resolved path.

    Raises a typed `StoreError`; on any refusal the file is left as it was.
    """
    path = Path(path).expanduser().absolute()
    fstype = filesystem_type(path.parent if not path.exists() else path, options.mounts_file)
    if fstype in NETWORK_FS_TYPES:
        raise NetworkFileSystem(path, fstype)
    if path.is_dir():
        raise UnusableDatabase(path, "is a folder", "give the path of a database file")
    if not path.exists():
        if options.read_only:
            raise MissingDatabase(path)
        try:
            _create_file(path)
        except OSError as exc:
            raise UnusableDatabase(
                path, f"cannot be created ({exc.strerror})", "choose a writable folder"
            ) from None
    try:
        new = _check_header(path)
    except OSError as exc:
        raise UnusableDatabase(path, f"cannot be read ({exc.strerror})", "check its permissions") from None
    version = 0 if new else _inspect(path, options)
    if options.read_only:
        if version < 1:
            raise MissingDatabase(path, "the file holds no agentdeck data")
        return path
    why = _writable(path)
    if why:
        raise ReadOnlyDatabase(path, why)
    if version < LATEST_VERSION:
        conn = open_writer(path, options, migrate_from=version)
        conn.close()
    return path


def open_writer(
    path: Path, options: OpenOptions = OpenOptions(), migrate_from: int | None = None
) -> sqlite3.Connection:
    """The read-write connection: WAL, the chosen durability, bounded journal."""
    conn: sqlite3.Connection | None = None
    try:
        conn = _connect(path, "rw", options)
        mode = _use_wal(conn, options.busy_timeout_s)
        if str(mode).lower() != "wal":
            raise UnusableDatabase(path, f"cannot use WAL mode (got {mode})", "use a local disk")
        conn.execute(f"PRAGMA synchronous = {options.synchronous}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
        if migrate_from is not None:
            migrate(conn, migrate_from)
        return conn
    except (sqlite3.Error, StoreError) as exc:
        # A connection left open would keep the process from exiting.
        close_quietly(conn)
        raise translate(exc, path, options.busy_timeout_s) from None


def _use_wal(conn: sqlite3.Connection, busy_timeout_s: float) -> str:
    """Switch to WAL (a no-op once the file is in WAL mode); return the mode SQLite reports.

    On a new file this write races any other process creating the same
    database. SQLite answers BUSY at once, without its busy handler, where
    waiting could deadlock two lockers, so wait out the other creator here, up
    to the busy timeout like every other lock.
    """
    deadline = time.monotonic() + busy_timeout_s
    pause = 0.005
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            code = getattr(exc, "sqlite_errorcode", None)
            busy = isinstance(code, int) and code & 0xFF == sqlite3.SQLITE_BUSY
            if not busy or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


def open_reader(path: Path, options: OpenOptions = OpenOptions()) -> sqlite3.Connection:
    """A read-only connection (also what aiosqlite wraps for the async reader)."""
    try:
        conn = _connect(path, "ro", options)
        conn.execute("PRAGMA query_only = ON")
        return conn
    except sqlite3.Error as exc:
        raise translate(exc, path, options.busy_timeout_s) from None


def close_quietly(conn: sqlite3.Connection | None) -> None:
    if conn is not None:
        with contextlib.suppress(sqlite3.Error):
            conn.close()
