"""`--db postgresql://...` and $AGENTDECK_DB on the command line (issue 10).

Real `agentdeck` processes on the session's throwaway PostgreSQL server (tests/pg.py),
and the console under Pilot on a PostgreSQL backend.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from engine.results import CreateWorkerRequest
from engine.runtime import Runtime
from store.models import AssistantIntent
from store.open import chosen_address, has_password, open_store, parse_address
from store.postgres.event_store import PgEventStore
from tests.pg import PgServer
from tests.store.support import AGENTDECK, child_env, wait_for_line
from tests.ui.test_live import send_by_keys, started, transcript_rows, until
from tui.app import AgentDeckApp
from tui.backend import HostedBackend, open_backend
from tui.handover import host_argv, host_env
from tui.screens.create_worker import CreateWorkerScreen


def agentdeck(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(AGENTDECK), *args], capture_output=True, text=True, timeout=60,
        env=env or child_env(), stdin=subprocess.DEVNULL,
    )


async def seed(url: str) -> None:
    """A runtime with one worker on the database at `url`."""
    store = await PgEventStore.open(url, watch=False)
    runtime = await Runtime.host(store, "local")
    try:
        await runtime.create_worker(CreateWorkerRequest(intent=AssistantIntent()))
    finally:
        await runtime.close()
        await store.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- choosing the store --------------------------------------------------------


def test_the_address_chooses_the_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert parse_address("postgresql://u@h/db") == "postgresql://u@h/db"
    assert parse_address("postgres://u@h/db") == "postgres://u@h/db"
    assert parse_address("some/file.db") == Path("some/file.db")
    default = tmp_path / "default.db"
    monkeypatch.delenv("AGENTDECK_DB", raising=False)
    assert chosen_address(None, default) == default
    monkeypatch.setenv("AGENTDECK_DB", "postgresql://u@h/db")
    assert chosen_address(None, default) == "postgresql://u@h/db"
    assert chosen_address(Path("x.db"), default) == Path("x.db")  # --db wins
    monkeypatch.setenv("AGENTDECK_DB", str(tmp_path / "env.db"))
    assert chosen_address(None, default) == tmp_path / "env.db"


async def test_open_store_gives_each_back_end_a_label_and_folder(
    pg_url: str, tmp_path: Path
) -> None:
    sqlite = await open_store(tmp_path / "a.db", watch=False)
    try:
        assert sqlite.label == str(tmp_path / "a.db")
        assert sqlite.folder == tmp_path
    finally:
        await sqlite.close()
    pg = await open_store(pg_url, watch=False)
    try:
        assert isinstance(pg, PgEventStore)
        assert pg.label == pg_url  # no password in it
        assert pg.folder is None
        assert pg.address == pg_url
    finally:
        await pg.close()


def test_a_hand_over_keeps_a_password_out_of_argv() -> None:
    secret = "postgresql://agent:s3cret@db.example/agentdeck"
    assert has_password(secret)
    argv = host_argv(secret, "local", None, "token")
    assert not any("s3cret" in arg for arg in argv)
    assert host_env(secret)["AGENTDECK_DB"] == secret
    plain = "postgresql://agent@db.example/agentdeck"
    argv = host_argv(plain, "local", None, "token")
    assert argv[argv.index("--db") + 1] == plain


# -- real processes --------------------------------------------------------------


def test_events_on_postgresql_by_flag_and_by_environment(pg_url: str) -> None:
    asyncio.run(seed(pg_url))
    done = agentdeck("--db", pg_url, "events", "--json")
    assert done.returncode == 0, done.stderr
    kinds = [json.loads(line)["kind"] for line in done.stdout.splitlines()]
    assert "runtime.started" in kinds and "worker.created" in kinds

    env = {**child_env(), "AGENTDECK_DB": pg_url}
    by_env = agentdeck("events", "--json", env=env)
    assert by_env.returncode == 0, by_env.stderr
    assert by_env.stdout == done.stdout


def test_verify_of_a_database_agentdeck_never_set_up_is_one_line(pg_url: str) -> None:
    done = agentdeck("--db", pg_url, "verify")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "no agentdeck database here yet" in done.stderr


def test_an_unreachable_server_is_one_line_and_exit_2() -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/agentdeck?connect_timeout=5"
    # [] is the console: refused before it takes the screen.
    for args in (["events"], ["host"], ["demo", "--duration", "1"], []):
        done = agentdeck("--db", url, *args)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.count("\n") == 1, done.stderr
        assert "cannot reach the PostgreSQL server" in done.stderr
        assert "Traceback" not in done.stderr


def test_a_missing_database_is_one_line_and_exit_2(pg_server: PgServer) -> None:
    url = pg_server.url("no_such_database_here")
    for args in (["events"], ["host"]):
        done = agentdeck("--db", url, *args)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.count("\n") == 1, done.stderr
        assert "no such database on the server" in done.stderr


def test_a_password_never_shows_in_the_error_line() -> None:
    url = f"postgresql://agent:s3cret@127.0.0.1:{free_port()}/agentdeck?connect_timeout=5"
    done = agentdeck("events", env={**child_env(), "AGENTDECK_DB": url})
    assert done.returncode == 2
    assert "s3cret" not in done.stderr and "agent:***@" in done.stderr


def test_host_on_postgresql_starts_and_stops_on_sigterm(pg_url: str, tmp_path: Path) -> None:
    env = {**child_env(), "XDG_DATA_HOME": str(tmp_path / "data")}
    proc = subprocess.Popen(
        [str(AGENTDECK), "--db", pg_url, "host"], stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    try:
        line = wait_for_line(proc, "agentdeck: host local: hosting runtime local on ")
        assert pg_url in line
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0, out
        assert "SIGTERM received; stopping" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)


# -- the console ------------------------------------------------------------------


async def test_the_console_on_postgresql_creates_a_worker_and_shows_its_answer(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    app = AgentDeckApp(lambda: open_backend(pg_url, watch=True), settings_file=None)
    async with app.run_test(size=(120, 40)) as pilot:
        await started(app, pilot)
        backend = app.backend
        assert isinstance(backend, HostedBackend)
        assert backend.label == pg_url
        assert backend.config_path == tmp_path / "data" / "agentdeck" / "agentdeck.toml"
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, CreateWorkerScreen))
        await pilot.press("ctrl+s")  # an assistant on the default (echo) profile
        await until(pilot, lambda: app.screen is app.main)
        await until(pilot, lambda: app.main.workers_table.row_count == 1)
        await send_by_keys(app, pilot, "hello postgres")
        await until(pilot, lambda: "  echo: hello postgres" in transcript_rows(app))
        assert "  hello postgres" in transcript_rows(app)


async def test_a_console_on_postgresql_hands_its_runtime_over_to_a_host(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.ui.console_process import end_process, gone

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    backend = await open_backend(pg_url, watch=False)
    new_host: int | None = None
    try:
        assert backend.runtime is not None
        assert backend.db_address == pg_url
        handed = await backend.hand_over()
        assert handed is not None and handed.pid is not None, handed
        new_host = handed.pid
        assert handed.hosting, handed.line()
        assert (await backend.store.hosts())["local"].pid == new_host
        assert handed.log is not None
        log_file = handed.log
        assert f"hands runtime local on {pg_url} over" in log_file.read_text()
        # The new host holds the lease a moment before it says so in its log.
        said = f"host local: hosting runtime local on {pg_url} (pid {new_host})"
        for _ in range(200):
            if said in log_file.read_text():
                break
            await asyncio.sleep(0.05)
        assert said in log_file.read_text()
    finally:
        if new_host is not None:
            await asyncio.to_thread(end_process, new_host)
        await backend.close()
    assert new_host is not None and gone(new_host)
