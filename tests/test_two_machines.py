"""Issue 10: hosts on several machines, simulated on one box.

Two real `agentdeck host` processes present different host names
(AGENTDECK_HOST_NAME box-a and box-b) on one real PostgreSQL database: A hosts
alpha and stands by for beta, B the reverse. A Pilot console in this process
(a third "machine", box-c) operates both runtimes through their hosts. Then A
is SIGKILLed: B takes alpha over only once A's heartbeat is stale (A's pid is
dead, but a pid means nothing across host names), and the console operates
alpha through B.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest
from textual.widgets import TextArea

from engine.hosting import HEARTBEAT_S
from store.models import HostLease, RunStatus
from tests.store.support import AGENTDECK, child_env
from tests.ui.console_process import profiles_config
from tests.ui.rendered import pane_rows
from tests.ui.test_app import SIZE, Console, console, started
from tui.screens.confirm import ConfirmScreen
from tui.screens.create_worker import CreateWorkerScreen
from tui.screens.send_input import SendInputScreen
from tui.widgets.runtimes import host_label

STALE_S = 5.0  # the hosts' --stale-after: how long a silent heartbeat keeps its lease


class Host:
    """A real `agentdeck host` presenting `box` as its machine, its lines read as they come."""

    def __init__(self, url: str, config: Path, box: str, runtime: str, standby_for: str) -> None:
        self.box = box
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [
                str(AGENTDECK), "--db", url, "--config", str(config), "host",
                "--runtime", runtime, "--standby-for", standby_for,
                "--stale-after", f"{STALE_S:g}",
            ],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env={**child_env(), "AGENTDECK_HOST_NAME": box},
        )
        self.pid = self.process.pid
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def said(self, fragment: str) -> str | None:
        return next((line for line in self.lines if fragment in line), None)

    async def until_said(self, fragment: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while (line := self.said(fragment)) is None:
            assert self.process.poll() is None or time.monotonic() < deadline, self.lines
            assert time.monotonic() < deadline, f"{self.box} never said {fragment!r}: {self.lines}"
            await asyncio.sleep(0.05)
        return line

    def programs(self) -> list[psutil.Process]:
        """The programs this host runs now (its workers' process groups)."""
        try:
            return psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def stop(self) -> int:
        """SIGTERM, as a service manager stops it; its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            raise AssertionError(f"{self.box} did not stop on SIGTERM: {self.lines}") from None
        finally:
            self._reader.join(timeout=5)


@pytest.fixture
def leftovers() -> Iterator[list[psutil.Process]]:
    """Programs a test saw that may outlive their host; each is checked and ended at teardown."""
    found: list[psutil.Process] = []
    yield found
    for proc in found:
        end_group(proc)


def end_group(proc: psutil.Process) -> None:
    """SIGKILL `proc` and the process group it is in (a worker's program has its own)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(os.getpgid(proc.pid), signal.SIGKILL)
    with contextlib.suppress(psutil.NoSuchProcess):
        proc.kill()


async def until(c: Console, condition: Callable[[], bool], timeout: float = 20.0) -> None:
    await c.until(condition, timeout)


def runtime_row(c: Console, runtime: str) -> str:
    rows = pane_rows(c.app, c.app.main.runtimes_pane)
    return next((row for row in rows if runtime in row.split()), "")


async def select(c: Console, runtime: str) -> None:
    main = c.app.main
    await until(c, lambda: bool(runtime_row(c, runtime)))
    main.runtimes_pane.select_runtime(runtime)
    await until(c, lambda: main.workers_table.runtime_id == runtime)
    main.workers_table.focus()
    await c.pilot.pause()


async def send(c: Console, text: str) -> None:
    """`i` on the selected worker, `text`, ctrl+s: the host queued it."""
    await c.pilot.press("i")
    await until(c, lambda: isinstance(c.app.screen, SendInputScreen))
    c.app.screen.query_one("#si-content", TextArea).text = text
    shown = len(c.said)
    await c.pilot.press("ctrl+s")
    await until(c, lambda: any("queued as run" in line for line in c.said[shown:]))


async def current_run(c: Console, runtime: str, status: RunStatus) -> str:
    """The selected worker's current run once it has `status`."""
    store = c.backend.store
    for _ in range(400):
        record = await store.worker(runtime, "w-1")
        if record is not None and record.current_run_id is not None:
            run = await store.run(runtime, record.current_run_id)
            if run is not None and run.status is status:
                return run.run_id
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {status} run on {runtime} w-1")


async def operate(c: Console, runtime: str, host: Host) -> None:
    """Create w-1 on `runtime`, get an answer, start a sleep and cancel it: through `host`."""
    main = c.app.main
    await select(c, runtime)
    await c.pilot.press("n")
    await until(c, lambda: isinstance(c.app.screen, CreateWorkerScreen))
    await c.pilot.press("ctrl+s")
    await c.said_something("created w-1 (sh)")
    await until(c, lambda: main.workers_table.row_count == 1)
    main.workers_table.select_worker("w-1")
    main.workers_table.focus()
    await send(c, f"echo hi-{runtime}")
    await until(c, lambda: f"  hi-{runtime}" in pane_rows(c.app, main.transcript))

    await send(c, "sleep 30")
    run_id = await current_run(c, runtime, RunStatus.EXECUTING)
    sleeping = [p for p in host.programs() if p.name() == "sleep"]
    assert sleeping, f"{host.box} should run the sleep"
    await c.pilot.press("x")
    await until(c, lambda: isinstance(c.app.screen, ConfirmScreen))
    await c.pilot.press("y")
    await c.said_something(f"run {run_id} cancelled")
    run = await c.backend.store.run(runtime, run_id)
    assert run is not None and run.status is RunStatus.CANCELLED
    _, alive = psutil.wait_procs(sleeping, timeout=10)
    assert not alive, f"the cancelled sleep still runs: {alive}"


async def test_two_hosts_on_two_machines_stand_by_for_each_other(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    leftovers: list[psutil.Process],
) -> None:
    config = tmp_path / "agentdeck.toml"
    config.write_text(profiles_config(grace=0.3, timeout=None))
    monkeypatch.setenv("AGENTDECK_HOST_NAME", "box-c")  # the console's machine
    a = Host(pg_url, config, "box-a", "alpha", "beta")
    b: Host | None = None
    running: list[psutil.Process] = []
    try:
        await a.until_said("host alpha: hosting runtime alpha")
        b = Host(pg_url, config, "box-b", "beta", "alpha")
        await b.until_said("host beta: hosting runtime beta")
        # Each stands by for the other's runtime, naming its holder.
        await b.until_said(f"host alpha: standing by for runtime alpha, hosted by pid {a.pid} on box-a")
        await a.until_said(f"host beta: standing by for runtime beta, hosted by pid {b.pid} on box-b")

        app = console(pg_url, config=config)
        async with app.run_test(size=SIZE) as pilot:
            c = await started(app, pilot)
            main = app.main
            hosts = await c.backend.store.hosts()
            assert (hosts["alpha"].host_name, hosts["alpha"].pid) == ("box-a", a.pid)
            assert (hosts["beta"].host_name, hosts["beta"].pid) == ("box-b", b.pid)
            assert hosts["local"].host_name == "box-c"  # the console hosts its own
            # The runtimes pane says which process on which machine hosts each.
            try:
                await until(c, lambda: f"pid {a.pid}@box-a" in runtime_row(c, "alpha"))
            except AssertionError:
                raise AssertionError(pane_rows(app, main.runtimes_pane)) from None
            await until(c, lambda: f"pid {b.pid}@box-b" in runtime_row(c, "beta"))

            await operate(c, "alpha", a)
            await operate(c, "beta", b)

            # A program in flight on box-a when box-a dies.
            await select(c, "alpha")
            await send(c, "sleep 33")
            doomed = await current_run(c, "alpha", RunStatus.EXECUTING)
            orphans = [p for p in a.programs() if p.name() == "sleep"]
            assert orphans
            leftovers.extend(orphans)

            os.kill(a.pid, signal.SIGKILL)
            a.process.wait(timeout=10)
            killed = time.monotonic()
            line = await b.until_said("host alpha: taking over from pid", timeout=STALE_S + 15)
            waited = time.monotonic() - killed
            # Not at once (A's pid is dead, but box-a is another machine): only once its
            # last heartbeat (at most HEARTBEAT_S before the kill) was STALE_S old.
            assert waited >= STALE_S - HEARTBEAT_S - 0.5, (waited, line)
            assert f"pid {a.pid} on box-a: no heartbeat since" in line, line
            await b.until_said("host alpha: hosting runtime alpha")
            took = await b.until_said("host alpha: diagnostic.raised")
            assert "programs it started there were not ended from this machine" in took, took
            # ... and which: the orphan's group, to end on box-a.
            assert f"group {os.getpgid(orphans[0].pid)} ({doomed}): sh -c sleep 33" in took, took
            hosts = await c.backend.store.hosts()
            assert (hosts["alpha"].host_name, hosts["alpha"].pid) == ("box-b", b.pid)
            assert (hosts["beta"].host_name, hosts["beta"].pid) == ("box-b", b.pid)

            # B cannot reach box-a's programs: the sleep A started outlives it (the
            # operator is told so), while the run it served failed "host exited".
            assert all(p.is_running() for p in orphans), orphans
            run = await c.backend.store.run("alpha", doomed)
            assert run is not None and (run.status, run.error) == (RunStatus.FAILED, "host exited")

            # The console operates alpha through B now.
            await until(c, lambda: f"pid {b.pid}@box-b" in runtime_row(c, "alpha"))
            await select(c, "alpha")
            main.workers_table.select_worker("w-1")
            main.workers_table.focus()
            await send(c, "echo hi-again")
            await until(c, lambda: "  hi-again" in pane_rows(app, main.transcript))

            # B stops with a run in flight on each runtime: both its programs end with it.
            await send(c, "sleep 34")
            await current_run(c, "alpha", RunStatus.EXECUTING)
            await select(c, "beta")
            main.workers_table.select_worker("w-1")
            main.workers_table.focus()
            await send(c, "sleep 35")
            await current_run(c, "beta", RunStatus.EXECUTING)
            running = b.programs()
            assert len([p for p in running if p.name() == "sleep"]) == 2, running
            leftovers.extend(running)
    finally:
        statuses = {}
        for host in (a, b):
            if host is not None:
                statuses[host.box] = host.stop()
    assert statuses["box-b"] == 0, b.lines if b else None
    assert b is not None and not any("Traceback" in line for line in a.lines + b.lines)
    for name in ("alpha", "beta"):
        assert b.said(f"host {name}: SIGTERM received; stopping (1 run running, 0 queued)")
        assert b.said(f'host {name}: stopped; 1 run failed "host closed"'), b.lines
    # B ended its programs as it stopped; A's orphan is the one this test ends itself.
    assert not [p for p in running if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    for orphan in leftovers:
        end_group(orphan)
    _, alive = psutil.wait_procs(leftovers, timeout=5)
    assert not alive
    mine = [p for p in psutil.Process().children(recursive=True) if p.is_running()]
    assert not [p for p in mine if p.status() != psutil.STATUS_ZOMBIE], mine


def test_a_host_name_too_long_for_the_host_column_keeps_its_first_label() -> None:
    now = datetime.now(UTC)
    lease = HostLease(
        runtime_id="alpha", pid=4194304, host_name="build-7.ci.example.com",
        started_at=now, heartbeat_at=now,
    )
    assert host_label(lease, 40) == "pid 4194304@build-7.ci.example.com"
    assert host_label(lease, 19) == "pid 4194304@build-7"
    assert host_label(lease, 16) == "pid 4194304@bui…"
