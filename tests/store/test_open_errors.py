"""Typed errors, each from a real file, and a failed open never alters the file."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from store.database import OpenOptions
from store.errors import (
    CorruptDatabase,
    DatabaseLocked,
    DiskFull,
    DiskIOError,
    ForeignDatabase,
    MissingDatabase,
    NetworkFileSystem,
    NewerSchema,
    NotADatabase,
    ReadOnlyDatabase,
    UnusableDatabase,
)
from store.event_store import EventStore
from store.schema import LATEST_VERSION
from tests.store.support import (
    AGENTDECK,
    child_env,
    new_event,
    read_all,
    sidecars,
    snapshot,
    spawn,
    step_event,
    wait_for_line,
)


async def _make_db(path: Path, events: int = 200, message_size: int = 10) -> None:
    async with await EventStore.open(path, watch=False) as store:
        for start in range(0, events, 100):
            await store.append(
                "rt", None,
                [step_event(start + i, message="m" * message_size)
                 for i in range(min(100, events - start))],
            )
        await store.index_now()


def _settle(path: Path) -> None:
    """Checkpoint everything into the main file; as the last connection, SQLite then
    removes the -wal and -shm files, leaving one self-contained file."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    assert sidecars(path) == {"-wal": False, "-shm": False}


async def _refused(path: Path, error: type[Exception], **open_args: object) -> Exception:
    """Open must fail with `error`, leaving every file in the folder as it was."""
    before = snapshot(path.parent)
    with pytest.raises(error) as caught:
        store = await EventStore.open(path, **open_args)  # type: ignore[arg-type]
        await store.close()
    assert snapshot(path.parent) == before
    assert str(path.name) in str(caught.value), "the message names the file"
    return caught.value


@pytest.mark.parametrize("read_only", [False, True])
async def test_a_text_file_is_not_a_database(tmp_path: Path, read_only: bool) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("these are my notes\n" * 50)
    await _refused(path, NotADatabase, read_only=read_only)


@pytest.mark.parametrize("read_only", [False, True])
async def test_a_truncated_database_is_corrupt_at_open(tmp_path: Path, read_only: bool) -> None:
    """Cut in half, the log's last pages are gone: open itself notices.

    (`prepare` reads `max(position)`, which walks the right edge of the events
    b-tree, so a lost tail is caught before the console starts.)
    """
    path = tmp_path / "agentdeck.db"
    await _make_db(path, events=2000, message_size=300)  # closed cleanly: WAL checkpointed
    assert path.with_name(path.name + "-wal").stat().st_size == 0
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    error = await _refused(path, CorruptDatabase, read_only=read_only)
    assert "damaged" in str(error)


async def test_damage_inside_the_log_is_corrupt_at_first_read(tmp_path: Path) -> None:
    """What open does not touch it cannot see: damage in the middle of the log
    surfaces as a typed CorruptDatabase from the first read that crosses it."""
    path = tmp_path / "agentdeck.db"
    await _make_db(path, events=2000, message_size=300)
    _settle(path)
    conn = sqlite3.connect(path)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    leaves = [r[0] for r in conn.execute(
        "SELECT pageno FROM dbstat WHERE name = 'events' AND pagetype = 'leaf' ORDER BY pageno"
    )]
    conn.close()
    victim = leaves[len(leaves) // 3]
    with path.open("r+b") as fh:
        fh.seek((victim - 1) * page_size)
        fh.write(b"\xff" * page_size)
    damaged = path.read_bytes()

    async with await EventStore.open(path, read_only=True, watch=False) as store:
        assert await store.last_position() == 2000  # the right edge is intact
        with pytest.raises(CorruptDatabase):
            await read_all(store)
        with pytest.raises(CorruptDatabase):
            await store.verify()
    assert path.read_bytes() == damaged


@pytest.mark.parametrize("journal", ["delete", "wal"])
async def test_a_foreign_sqlite_database(tmp_path: Path, journal: str) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA journal_mode = {journal}")
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO customers (name) VALUES ('ada')")
    conn.commit()
    conn.close()
    # Also when in WAL mode: no -wal or -shm is created beside it by the refusal.
    await _refused(path, ForeignDatabase)
    await _refused(path, ForeignDatabase, read_only=True)
    assert sidecars(path) == {"-wal": False, "-shm": False}


async def test_a_newer_schema_is_refused_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "agentdeck.db"
    await _make_db(path)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    conn.commit()
    conn.close()
    assert sidecars(path) == {"-wal": False, "-shm": False}
    for read_only in (False, True):
        error = await _refused(path, NewerSchema, read_only=read_only)
        assert isinstance(error, NewerSchema)
        assert (error.found, error.supported) == (LATEST_VERSION + 1, LATEST_VERSION)
        assert "upgrade agentdeck" in str(error)
    assert sidecars(path) == {"-wal": False, "-shm": False}


@contextlib.contextmanager
def _unwritable(path: Path) -> Iterator[None]:
    """Make a file or folder unwritable, for root too, and restore it afterwards.

    Root ignores permission bits: os.access() says a 0444 file is writable, and
    it is. The immutable attribute binds root as well (and os.access honours it),
    so as root the test sets it; everyone else gets plain chmod.
    """
    mode = stat.S_IMODE(path.stat().st_mode)
    path.chmod(0o555 if path.is_dir() else 0o444)
    immutable = False
    try:
        if os.geteuid() == 0:
            chattr = shutil.which("chattr")
            result = subprocess.run(
                [chattr or "chattr", "+i", str(path)], capture_output=True, text=True, check=False
            ) if chattr else None
            if result is None or result.returncode != 0:
                pytest.skip(
                    "running as root, where permission bits do not apply, and the immutable "
                    f"attribute cannot be set here ({result.stderr.strip() if result else 'no chattr'})"
                )
            immutable = True
        assert not os.access(path, os.W_OK)
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        path.chmod(mode)


async def test_a_read_only_file_opens_as_an_observer_only(tmp_path: Path) -> None:
    path = tmp_path / "agentdeck.db"
    await _make_db(path, events=50)
    with _unwritable(path):
        error = await _refused(path, ReadOnlyDatabase)
        assert "--read-only" in str(error) and "the file is read-only" in str(error)
        before = snapshot(tmp_path)
        async with await EventStore.open(path, read_only=True, watch=False) as observer:
            assert len(await read_all(observer)) == 50
            assert (await observer.verify()).ok
            with pytest.raises(ReadOnlyDatabase):
                await observer.append("rt", None, [new_event()])
        assert snapshot(tmp_path) == before


async def test_a_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "agentdeck.db"
    await _make_db(path, events=30)
    # As agentdeck leaves it after a clean close, -wal and -shm are there: an observer
    # can read, a writer is told the folder is read-only.
    assert sidecars(path) == {"-wal": True, "-shm": True}
    with _unwritable(folder):
        error = await _refused(path, ReadOnlyDatabase)
        assert "folder is read-only" in str(error)
        async with await EventStore.open(path, read_only=True, watch=False) as observer:
            assert len(await read_all(observer)) == 30
    # Without them, SQLite cannot open a WAL database in a folder where it cannot
    # create them, even to read: a refusal for both, and nothing changed.
    _settle(path)
    with _unwritable(folder):
        for read_only in (False, True):
            error = await _refused(path, UnusableDatabase, read_only=read_only)
            assert "permissions" in str(error)


async def test_locked_beyond_the_busy_timeout_at_open(tmp_path: Path) -> None:
    path = tmp_path / "agentdeck.db"
    await _make_db(path, events=10)
    holder = spawn("lock_holder.py", path, "exclusive")
    try:
        await asyncio.to_thread(wait_for_line, holder, "locked")
        started = time.monotonic()
        options = OpenOptions(busy_timeout_s=0.2)
        for read_only in (False, True):
            opts = OpenOptions(read_only=read_only, busy_timeout_s=options.busy_timeout_s)
            error = await _refused(path, DatabaseLocked, options=opts)
            assert "0.2s" in str(error)
        assert time.monotonic() - started < 5, "gave up after the busy timeout, not later"
    finally:
        holder.communicate("\n", timeout=10)
    async with await EventStore.open(path, watch=False) as store:
        assert len(await read_all(store)) == 10


async def test_an_append_locked_out_beyond_the_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "agentdeck.db"
    await _make_db(path, events=10)
    async with await EventStore.open(path, watch=False, options=OpenOptions(busy_timeout_s=0.2)) as store:
        holder = spawn("lock_holder.py", path, "immediate")
        try:
            await asyncio.to_thread(wait_for_line, holder, "locked")
            started = time.monotonic()
            with pytest.raises(DatabaseLocked):
                await store.append("rt", 10, [new_event()])
            assert time.monotonic() - started < 5
            assert await store.last_position() == 10  # reads go on meanwhile
            assert holder.stdin is not None
            holder.stdin.write("\n")
            holder.stdin.flush()
            await asyncio.to_thread(wait_for_line, holder, "released")
        finally:
            holder.communicate("", timeout=10)
        [event] = await store.append("rt", 10, [new_event()])
        assert event.seq == 11
        assert (await store.verify()).ok


async def test_disk_full_lands_nothing_and_recovers(tmp_path: Path) -> None:
    path = tmp_path / "agentdeck.db"
    await _make_db(path, events=100)
    async with await EventStore.open(path, watch=False, index=False) as store:
        before = await read_all(store)
        pages = await store.run_job(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
        await store.run_job(lambda c: c.execute(f"PRAGMA max_page_count = {pages}").fetchone())
        big = "x" * 20_000
        futures = [store.submit("rt", None, [new_event(message=big) for _ in range(5)])
                   for _ in range(3)]
        results = await asyncio.gather(*futures, return_exceptions=True)
        assert all(isinstance(r, DiskFull) for r in results), results
        assert "disk is full" in str(results[0])
        assert await read_all(store) == before
        assert (await store.verify()).ok
        # Space again: appends continue where the log was.
        await store.run_job(lambda c: c.execute("PRAGMA max_page_count = 1073741823").fetchone())
        got = await store.append("rt", 100, [new_event(message=big) for _ in range(5)])
        assert [e.seq for e in got] == [101, 102, 103, 104, 105]
        assert (await store.verify()).ok
    async with await EventStore.open(path, watch=False) as reopened:
        assert len(await read_all(reopened)) == 105


def _mounts(tmp_path: Path, *lines: str) -> Path:
    table = tmp_path / "mounts"
    table.write_text("".join(f"{line}\n" for line in lines))
    return table


@pytest.mark.parametrize("fstype", ["nfs4", "cifs", "fuse.sshfs"])
async def test_a_network_file_system_is_refused(tmp_path: Path, fstype: str) -> None:
    folder = tmp_path / "share"
    folder.mkdir()
    table = _mounts(tmp_path, "/dev/vda / ext4 rw 0 0", f"server:/export {folder} {fstype} rw 0 0")
    options = OpenOptions(mounts_file=table)
    # A new file is not even created...
    error = await _refused(folder / "new.db", NetworkFileSystem, options=options)
    assert fstype in str(error) and "local disk" in str(error)
    assert not (folder / "new.db").exists()
    # ...and an existing one is left alone.
    await _make_db(folder / "agentdeck.db", events=5)
    await _refused(folder / "agentdeck.db", NetworkFileSystem, options=options)


async def test_a_local_mount_inside_a_network_one_is_fine(tmp_path: Path) -> None:
    folder = tmp_path / "local"
    folder.mkdir()
    table = _mounts(tmp_path, f"server:/export {tmp_path} nfs rw 0 0", f"/dev/sdb1 {folder} ext4 rw 0 0")
    async with await EventStore.open(folder / "a.db", watch=False, options=OpenOptions(mounts_file=table)):
        pass


def _modes(folder: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}


async def test_new_files_are_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "agentdeck.db"
    old = os.umask(0)  # the store must not rely on the umask for this
    try:
        async with await EventStore.open(path, watch=False) as store:
            await store.append("rt", None, [new_event()])
            modes = _modes(tmp_path)
    finally:
        os.umask(old)
    assert modes == {"agentdeck.db": 0o600, "agentdeck.db-wal": 0o600, "agentdeck.db-shm": 0o600}


async def test_a_folder_or_a_missing_file(tmp_path: Path) -> None:
    error = await _refused(tmp_path, UnusableDatabase)
    assert "folder" in str(error)
    missing = tmp_path / "missing.db"
    await _refused(missing, UnusableDatabase, read_only=True)
    assert not missing.exists()


# ---------------------------------------------------------------------------
# Issue 7: a full disk, a file that cannot grow, a database that is not there
# ---------------------------------------------------------------------------


def _not_damage(message: str) -> None:
    """The advice that is dangerous for a healthy file must not be given."""
    assert "damaged" not in message and "move it aside" not in message, message


async def _works(path: Path, events_before: int) -> None:
    """The file opens for writing, takes an append, and verifies."""
    async with await EventStore.open(path, watch=False) as store:
        await store.append("rt", None, [new_event(message="after")])
        assert len(await read_all(store)) == events_before + 1
        assert (await store.verify()).ok


@pytest.mark.parametrize(
    "max_file_bytes",
    [
        pytest.param(4_000, id="page-1-cannot-be-written"),
        pytest.param(40_000, id="the-schema-cannot-be-committed"),
    ],
)
async def test_creating_a_database_whose_files_cannot_grow(
    tmp_path: Path, max_file_bytes: int
) -> None:
    """Issue 7 item 6: creating a database in a process whose files cannot grow (a real
    RLIMIT_FSIZE; runs on any machine) fails with an I/O error, not "damaged".

    At 40,000 bytes the migration's COMMIT fails and SQLite rolls the transaction
    back itself: the ROLLBACK that followed used to fail with "cannot rollback -
    no transaction is active", which hid the real error and read as damage. The
    file is left empty of data and opens normally once it can grow.
    """
    path = tmp_path / "agentdeck.db"
    proc = spawn("sqlite_failure.py", "open", path, max_file_bytes)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "Traceback" not in err, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["error"] == DiskIOError.__name__, result
    message = result["message"]
    assert message.startswith(f"{path}: an I/O error")
    assert "nothing was written" in message and "or full" in message
    _not_damage(message)
    await _works(path, 0)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real, nearly empty 1 MiB file system (tmpfs), unmounted afterwards."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mount, umount = shutil.which("mount"), shutil.which("umount")
    if mount is None or umount is None:
        pytest.skip("no mount command here to make a small file system to fill")
    result = subprocess.run(
        [mount, "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        pytest.skip(
            "this machine does not allow mounting a small tmpfs "
            f"({result.stderr.strip() or f'mount exited {result.returncode}'}); "
            "test_creating_a_database_whose_files_cannot_grow covers the same code"
        )
    try:
        yield mount_point
    finally:
        if subprocess.run([umount, str(mount_point)], check=False).returncode != 0:
            subprocess.run([umount, "-l", str(mount_point)], check=False)


def _fill(disk: Path, leave: int) -> Path:
    """Fill `disk` with one file until at most `leave` bytes are free; return the file."""
    filler = disk / "filler"
    # Written zeros take real pages on tmpfs (a sparse file would not fill it).
    with filler.open("wb") as fh, contextlib.suppress(OSError):
        fh.write(b"\0" * max(shutil.disk_usage(disk).free - leave, 0))
    assert shutil.disk_usage(disk).free <= leave
    return filler


@pytest.mark.parametrize(
    "leave",
    [
        pytest.param(0, id="no-room-for-page-1"),
        pytest.param(16_384, id="no-room-for-the-shm-index"),
        pytest.param(65_536, id="no-room-for-the-schema"),
    ],
)
async def test_creating_a_database_on_a_full_disk(small_disk: Path, leave: int) -> None:
    """Issue 7 item 6: a new database on a really full disk (a filled tmpfs) is refused
    with "the disk is full", never "damaged", at whichever step the space runs out
    (switching to WAL, growing the -shm index, committing the schema); once space is
    freed the same file opens and works."""
    filler = _fill(small_disk, leave)
    path = small_disk / "agentdeck.db"
    with pytest.raises(DiskFull) as caught:
        store = await EventStore.open(path, watch=False)
        await store.close()
    message = str(caught.value)
    assert message == f"{path}: the disk is full, nothing was written; free some space and retry"
    _not_damage(message)
    filler.unlink()
    await _works(path, 0)


async def test_a_database_on_a_disk_that_fills_up(small_disk: Path) -> None:
    """Issue 7 item 6: an existing database on a disk that is now full still opens and
    reads; an append and a writer job fail with DiskFull (the job's ROLLBACK after
    SQLite's own used to report "damaged"); nothing is lost, and writing resumes when
    space is freed."""
    path = small_disk / "agentdeck.db"
    await _make_db(path, events=20)
    filler = _fill(small_disk, 0)
    async with await EventStore.open(path, watch=False) as store:
        assert len(await read_all(store)) == 20
        with pytest.raises(DiskFull):
            await store.append("rt", None, [new_event(message="x" * 50_000)])
        with pytest.raises(DiskFull) as caught:
            await store.run_job(lambda conn: conn.execute(
                "INSERT INTO hosts VALUES ('big', 1, ?, 'token', 0, 0)", ("h" * 60_000,)
            ))
        _not_damage(str(caught.value))
        assert await store.run_job(lambda c: c.execute("SELECT count(*) FROM hosts").fetchone()[0]) == 0
        assert (await store.verify()).ok
    filler.unlink()
    await _works(path, 20)


async def test_a_writer_job_on_a_full_database_reports_disk_full(tmp_path: Path) -> None:
    """Issue 7 item 6: a writer job that fills the database (a real SQLITE_FULL from
    max_page_count; runs anywhere) is told DiskFull. SQLite rolls such a transaction
    back itself, and the job's own ROLLBACK used to replace the error with
    "cannot rollback - no transaction is active", reported as damage."""
    path = tmp_path / "agentdeck.db"
    async with await EventStore.open(path, watch=False) as store:
        await store.run_job(lambda c: c.execute("CREATE TABLE scratch (body TEXT)"))
        pages = await store.run_job(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
        await store.run_job(lambda c: c.execute(f"PRAGMA max_page_count = {pages + 2}").fetchone())

        def fill(conn: sqlite3.Connection) -> None:
            for _ in range(50):
                conn.execute("INSERT INTO scratch VALUES (?)", ("x" * 3000,))

        with pytest.raises(DiskFull) as caught:
            await store.run_job(fill)
        _not_damage(str(caught.value))
        assert await store.run_job(lambda c: c.execute("SELECT count(*) FROM scratch").fetchone()[0]) == 0
        # The writer goes on: the next job and append commit.
        await store.run_job(lambda c: c.execute("PRAGMA max_page_count = 1073741823").fetchone())
        await store.run_job(fill)
        [event] = await store.append("rt", None, [new_event()])
        assert event.seq == 1


@pytest.mark.parametrize("empty_file", [False, True])
async def test_reading_a_database_that_is_not_there_yet(tmp_path: Path, empty_file: bool) -> None:
    """Issue 7 item 7: opening to read where no database exists yet (no file, or an empty
    one) is MissingDatabase, whose advice is the command that creates one, and which
    mentions no option of a particular command."""
    path = tmp_path / "my data" / "agentdeck.db"
    if empty_file:
        path.parent.mkdir()
        path.touch()
    before = snapshot(tmp_path)
    with pytest.raises(MissingDatabase) as caught:
        await EventStore.open(path, read_only=True, watch=False)
    assert isinstance(caught.value, UnusableDatabase)
    why = "the file holds no agentdeck data" if empty_file else "the file does not exist"
    assert str(caught.value) == (
        f"{path}: no agentdeck database here yet ({why}); check the path, "
        f"or create one by starting the console once: agentdeck --db '{path}'"
    )
    assert "--read-only" not in str(caught.value)
    assert snapshot(tmp_path) == before
    assert path.exists() == empty_file


@pytest.mark.parametrize("command", [["events"], ["verify"], ["--read-only"]])
def test_the_command_line_on_a_missing_database(tmp_path: Path, command: list[str]) -> None:
    """Issue 7 item 7: `agentdeck --db MISSING events` (and verify, and the console's
    --read-only) exits 2 with one line on stderr that says how to create it; no traceback."""
    path = tmp_path / "x" / "missing.db"
    result = subprocess.run(
        [str(AGENTDECK), "--db", str(path), *command],
        capture_output=True, text=True, timeout=60, env=child_env(), check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"agentdeck: {path}: no agentdeck database here yet (the file does not exist); "
        f"check the path, or create one by starting the console once: agentdeck --db {path}"
    ]
    assert result.stdout == ""
    assert not path.parent.exists()
