"""Opening a database file: checks before any write, pragmas, migrations, typed errors.

The order matters. A failed open must never alter the file, so everything
that can refuse (network file system, foreign or newer file, damage) is
decided from the raw header and a read-only connection before the file is
opened for writing or switched to WAL.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from store.errors import (
    CorruptDatabase,
    DatabaseLocked,
    DiskFull,
    ForeignDatabase,
    NetworkFileSystem,
    NewerSchema,
    NotADatabase,
    ReadOnlyDatabase,
    StoreError,
    UnusableDatabase,
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


def translate(exc: BaseException, path: Path, busy_timeout_s: float) -> StoreError:
    """Map a sqlite3 error to the store's typed error with an operator's message."""
    if isinstance(exc, StoreError):
        return exc
    text = str(exc).lower()
    if "file is not a database" in text:
        return NotADatabase(path)
    if "malformed" in text or "corrupt" in text:
        return CorruptDatabase(path, str(exc))
    if "locked" in text or "busy" in text:
        return DatabaseLocked(path, busy_timeout_s)
    if "disk is full" in text or "database or disk is full" in text:
        return DiskFull(path)
    if "readonly" in text or "read-only" in text or "attempt to write" in text:
        return ReadOnlyDatabase(path, str(exc))
    if "unable to open" in text:
        return UnusableDatabase(path, "cannot be opened", "check the path and its permissions")
    return CorruptDatabase(path, str(exc))


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
        conn.close()


def _create_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Owner-only from the first byte; SQLite gives -wal and -shm the same mode.
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
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
            raise UnusableDatabase(path, "does not exist", "check the path, or open it without --read-only")
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
            raise UnusableDatabase(
                path, "holds no agentdeck data yet", "open it once without --read-only"
            )
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
    try:
        conn = _connect(path, "rw", options)
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            conn.close()
            raise UnusableDatabase(path, f"cannot use WAL mode (got {mode})", "use a local disk")
        conn.execute(f"PRAGMA synchronous = {options.synchronous}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
        if migrate_from is not None:
            migrate(conn, migrate_from)
        return conn
    except sqlite3.Error as exc:
        raise translate(exc, path, options.busy_timeout_s) from None


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
