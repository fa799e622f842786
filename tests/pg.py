"""A throwaway PostgreSQL server for the tests: one per test session, one new database per test.

Registered in tests/conftest.py (``pytest_plugins``), so every test can ask for:

``pg_server`` (session scope) -> PgServer
    The running server, started on first use with the ``pgserver`` package (PostgreSQL 16
    binaries shipped in the wheel) under ``$TMPDIR/agentdeck-pg-*``, reached through a unix
    socket only (no TCP port). ``.url(dbname)``, ``.admin_url``, ``.create_database()`` and
    ``.drop_database()``. Stopped at session end, failing tests or not, and its processes
    waited for; a server left by a killed session is stopped at the next session's start.

``pg_url`` (function scope) -> str
    ``postgresql://postgres@/<fresh database>?host=<socket dir>&port=5432``: a new, empty
    database made for this test from template1, dropped (``WITH (FORCE)``) after it. Usable
    as-is by psycopg (sync or async, pool or not) and by a second OS process.

As root, pgserver runs the server as a system user ``pgserver`` (made with ``useradd`` on first
use) and widens the permissions of every parent folder of the data directory and of the venv's
``pgserver/pginstall`` to o+rx. That is why the data directory is not under pytest's
``tmp_path`` (``/tmp/pytest-of-root`` is 0700, and pytest resets it to 0700 at each start,
which would cut a running server off from its own files).
"""

from __future__ import annotations

import re
import shutil
import signal
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psutil
import psycopg
import pytest
from psycopg import sql

_PREFIX = "agentdeck-pg-"
_OWNER_FILE = "owner"
_STOP_WAIT_S = 10.0


@dataclass(frozen=True)
class PgServer:
    """The session's server: where it is and how to reach it."""

    base: Path  # $TMPDIR/agentdeck-pg-XXXX, removed at session end
    pgdata: Path  # base/pgdata; the server log is pgdata/log
    socket_dir: Path  # holds .s.PGSQL.<port>; pgdata unless that path was too long for AF_UNIX
    port: int  # names the socket file; no TCP listener
    pid: int  # the postmaster
    user: str = "postgres"  # superuser, trust authentication

    def url(self, dbname: str = "postgres") -> str:
        host = quote(str(self.socket_dir), safe="/")
        # Host, port, user and database all explicit so PG* variables in the environment can't redirect it.
        return f"postgresql://{self.user}@/{quote(dbname, safe='')}?host={host}&port={self.port}"

    @property
    def admin_url(self) -> str:
        return self.url("postgres")

    def create_database(self, hint: str = "test") -> str:
        """Create a new empty database with a unique name built from `hint`; return its name."""
        stem = re.sub(r"[^a-z0-9]+", "_", hint.lower()).strip("_")[:40] or "test"
        name = f"{stem}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return name

    def drop_database(self, name: str) -> None:
        """Drop it, ending any session still connected to it (a leaked pool, a child process)."""
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    _sweep_stale_servers()
    base = Path(tempfile.mkdtemp(prefix=_PREFIX))
    me = psutil.Process()
    (base / _OWNER_FILE).write_text(f"{me.pid} {me.create_time()}\n")
    handle: Any = None
    procs: list[psutil.Process] = []
    try:
        handle = _start(base / "pgdata")
        info = handle.get_postmaster_info()
        procs = _server_processes(info.pid)
        yield PgServer(
            base=base,
            pgdata=info.pgdata,
            socket_dir=info.socket_dir,
            port=info.port or 5432,
            pid=info.pid,
        )
    finally:
        _stop(handle, procs, base)


@pytest.fixture
def pg_url(pg_server: PgServer, request: pytest.FixtureRequest) -> Iterator[str]:
    name = pg_server.create_database(request.node.name)
    try:
        yield pg_server.url(name)
    finally:
        pg_server.drop_database(name)


def _start(pgdata: Path) -> Any:
    with warnings.catch_warnings():
        # platformdirs warns at import that XDG_RUNTIME_DIR is unset (it falls back to /tmp/runtime-UID).
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import get_server
    # cleanup_mode="stop": pg_ctl stop at cleanup(); the folder is removed by _stop, after the wait.
    return get_server(pgdata, cleanup_mode="stop")


def _server_processes(postmaster_pid: int) -> list[psutil.Process]:
    try:
        postmaster = psutil.Process(postmaster_pid)
        return [postmaster, *postmaster.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _alive(proc: psutil.Process) -> bool:
    # The postmaster is pg_ctl's grandchild, reparented to PID 1, so after it exits it may stay a
    # zombie for a moment until PID 1 reaps it: that is not a running server.
    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    alive = [p for p in procs if _alive(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if _alive(p)]
    return alive


def _stop(handle: Any, procs: list[psutil.Process], base: Path) -> None:
    socket_dir = None
    if handle is not None:
        socket_dir = handle.get_postmaster_info().socket_dir
        # Add processes forked since start-up (backends of connections still open).
        procs = procs + [p for p in _server_processes(handle.get_pid()) if p not in procs]
        try:
            handle.cleanup()  # pg_ctl -w stop (fast shutdown); terminate/kill if that fails
        except Exception as exc:  # still make sure of the processes below
            warnings.warn(f"pgserver cleanup failed: {exc!r}", stacklevel=1)
    stuck = _wait_gone(procs, _STOP_WAIT_S)
    _kill(stuck)
    left = _wait_gone(stuck, _STOP_WAIT_S)
    shutil.rmtree(base, ignore_errors=True)
    if socket_dir is not None and not socket_dir.is_relative_to(base):
        shutil.rmtree(socket_dir, ignore_errors=True)  # pgserver's fallback under /tmp/runtime-UID
    if left:
        raise RuntimeError(f"PostgreSQL processes still running after SIGKILL: {left}")
    if stuck:
        warnings.warn(f"PostgreSQL did not stop in {_STOP_WAIT_S}s, killed: {stuck}", stacklevel=1)


def _kill(procs: list[psutil.Process]) -> None:
    for proc in procs:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass


def _owner_alive(base: Path) -> bool:
    try:
        pid_text, created_text = (base / _OWNER_FILE).read_text().split()
        owner = psutil.Process(int(pid_text))
        return bool(abs(owner.create_time() - float(created_text)) < 0.01)
    except (OSError, ValueError, psutil.Error):
        return False


def _sweep_stale_servers() -> None:
    """Stop and remove the servers of earlier sessions that died without their teardown (SIGKILL)."""
    for base in Path(tempfile.gettempdir()).glob(f"{_PREFIX}*"):
        if not base.is_dir() or _owner_alive(base):
            continue
        if time.time() - base.stat().st_mtime < 60 and not (base / _OWNER_FILE).exists():
            continue  # another session between mkdtemp and writing its owner file
        pid_file = base / "pgdata" / "postmaster.pid"
        try:
            postmaster = psutil.Process(int(pid_file.read_text().split()[0]))
            ours = postmaster.name() == "postgres" and str(base) in " ".join(postmaster.cmdline())
        except (OSError, ValueError, IndexError, psutil.Error):
            ours = False
        if ours:
            procs = _server_processes(postmaster.pid)
            postmaster.send_signal(signal.SIGINT)  # fast shutdown: ends the sessions still open
            _kill(_wait_gone(procs, _STOP_WAIT_S))
        shutil.rmtree(base, ignore_errors=True)
