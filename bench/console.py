"""`agentdeck bench console`: the real console, headless, under load and on a big database.

Every figure stands next to a baseline measured in the same run (issue 4,
"Benchmarks"):

- events_applied_per_s, backlog_p99: the console (`tui.app.AgentDeckApp`,
  headless via `App.run_test(size=(120, 40))`, in this process) watches a
  demo runtime that a *separate process* drives at 10,000 events/s for 30 s
  into the same database file; the console only sees those events through
  the store's change feed. Applied = the newest position in the event log's
  window; backlog = the load's newest committed position minus that.
  Baseline: a minimal Textual app on the same kind of stream (its own child,
  same rate, same duration, same store subscription) writing one
  `Log.write_line` per event into Textual's stock `Log`.
- key_latency_p99: every ~0.5 s a key that changes the screen is pressed
  with `Pilot.press` (`j`/`k` in the workers table: the transcript pane's
  title names the newly selected worker) and timed until a frame *showing*
  the change leaves the compositor (see "Frames" below). Baseline: the same
  keys in the `Log` app, where they set the log's title.
- peak_rss_growth: peak RSS of this process in the first third of the load
  (0-10 s) against the whole load (0-30 s), as % growth.
- first_paint, first_paint_vs_small: the console opened (hosting its
  runtime, as `agentdeck --db X` does) on a database of 1M events and 1,000
  workers, from constructing the App to the first frame that shows worker
  rows and event rows; baseline: the same on a database of 1,000 events.

Frames: `App._display` is where Textual hands each composed frame to the
terminal driver; headless, it returns without writing. This bench wraps it on
the app *instance*: each frame is encoded exactly as the real driver path
does (`CompositorUpdate.render_segments`, so the app pays the same encoding
cost it pays in a terminal, only the write syscall is missing) and applied
to a small virtual terminal (a 120x40 grid of characters). "The screen
shows X" means that grid shows X inside the widget's region.

Load: `agentdeck demo` cannot make 10,000 events/s (on the 2-core machine
this was written on it made ~1,200 events/s with 50 workers: its feeder
sends inputs one at a time, each awaiting a durable commit), so the load is
`python -m bench.console load ...`: a child process that hosts the `demo`
runtime's lease like `agentdeck demo` and appends demo-shaped events (the
kinds, messages and payloads of `builtin:demo` runs, 50 workers taking turns)
through `store.event_store.EventStore.append`, paced to the target rate. The
rate it actually achieved is reported next to every figure.

The first-paint databases are built once with raw sqlite3 inserts, the real
projector and the real FTS indexer step (as `bench.store` builds its log) and
cached under bench/data/ (ignored by git); each run opens a copy, because
opening a runtime appends `runtime.restored`.

`python -m bench.console [--json] [--quick] [--scale X] [--profile]` runs it
alone; `agentdeck bench console` calls `run_console_command`.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import gc
import io
import os
import pstats
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import (
    Goal,
    Progress,
    data_dir,
    emit_json,
    figure,
    latency_ms,
    machine_info,
    median,
    now,
    percentile,
    rss_mb,
    summary_lines,
)
from bench.store import Spec, fresh_raw_db, raw_insert
from store.codec import dump_payload, us_from_dt
from store.database import OpenOptions, open_reader
from store.errors import DatabaseLocked
from store.event_store import EventStore
from store.levels import level_of
from store.models import Event, Limits, NewEvent, RoleIntent, WorkerSpec
from store.projector import Row
from store.schema import LATEST_VERSION
from store.search import index_step

ProgressFn = Callable[[str], None]

SIZE = (120, 40)
LOAD_RUNTIME = "demo"  # what `agentdeck demo` hosts by default
DECK_RUNTIME = "local"  # what `agentdeck` hosts by default
DEMO_PROFILE = "builtin:demo"
DEMO_STEPS = 3
TOOL_RATE = 0.7
FAIL_RATE = 0.1
GENERATOR_VERSION = 1  # bump when the first-paint databases' content changes
MAX_APPEND = 2_000  # most events the load child puts in one append
TICK_S = 0.005
SAMPLE_S = 0.1  # backlog sampling
RSS_SAMPLE_S = 0.25
KEY_EVERY_S = 0.5
KEY_TIMEOUT_S = 5.0
IDLE_KEYS = 8  # key samples before the load starts (the figure at rest)
CATCH_UP_TIMEOUT_S = 15.0
PAINT_TIMEOUT_S = 120.0
LOG_BASELINE_LINES = 5_000  # the stock Log keeps as many lines as the EventLog's window
YIELD_EVERY = 100  # the Log app's feed yields to the event loop every so many write_line calls
PROJECT_ROOT = str(Path(__file__).resolve().parent.parent)

_WORKER_ID_CELL = re.compile(r"\bw-\d+\b")
_EVENT_TIME = re.compile(r"\d\d:\d\d:\d\d\.\d\d\d")


# ---------------------------------------------------------------------------
# Sizes
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    load_s: float  # seconds of load
    early_s: float  # the "10 s" of "peak RSS at 10 s vs 30 s"
    rate: float  # target events/s of the load
    load_workers: int
    paint_events: int  # the big first-paint database
    paint_workers: int
    small_events: int  # the first-paint baseline database
    small_workers: int
    paint_repeats: int


def sizes(quick: bool, scale: float = 1.0) -> Sizes:
    """Full: 30 s at 10k/s, 1M events / 1,000 workers. Quick: 5 s, 100k events."""
    load_s, events, repeats = (5.0, 100_000, 2) if quick else (30.0, 1_000_000, 3)
    load = max(1.5, load_s * scale)
    workers = 1_000 if scale >= 1 else max(10, round(1_000 * scale))
    return Sizes(
        load_s=load,
        early_s=load / 3,
        rate=10_000.0,
        load_workers=50,
        paint_events=max(2_000, round(events * scale)),
        paint_workers=workers,
        small_events=1_000,
        small_workers=10,
        paint_repeats=repeats if scale >= 0.5 else 1,
    )


# ---------------------------------------------------------------------------
# Demo-shaped events (the kinds, messages and payloads of builtin:demo runs)
# ---------------------------------------------------------------------------


def runtime_started(runtime_id: str) -> Spec:
    payload = {"display_name": None, "limits": Limits().model_dump()}
    return Spec("runtime.started", None, None, None, f"runtime {runtime_id} started", payload)


def worker_created(number: int) -> list[Spec]:
    """`worker.created` and the two info diagnostics the engine raises with it."""
    w = f"w-{number}"
    spec = WorkerSpec(intent=RoleIntent(role=f"demo-{number}"), profile=DEMO_PROFILE)
    out = [Spec("worker.created", w, None, None, f"worker {w} created (role: demo-{number},"
                f" {DEMO_PROFILE})", {"spec": spec.model_dump(mode="json")})]
    for code, text in (
        ("runtime.local_default_resources",
         "worker created without a config bundle; runtime-local defaults are assumed"),
        ("worker.tools_less", "worker created without requested tool capabilities"),
    ):
        out.append(Spec("diagnostic.raised", w, None, None, f"info: {code}: {text}",
                        {"severity": "info", "code": code, "message": text}))
    return out


class DemoWorker:
    """One demo worker's events, one at a time, run after run (engine.drivers.demo's shape)."""

    def __init__(self, number: int, rng: random.Random) -> None:
        self.worker_id = f"w-{number}"
        self._rng = rng
        self._runs = 0
        self._transcript = 0
        self._pending: deque[Spec] = deque()

    @property
    def between_runs(self) -> bool:
        return not self._pending

    def next_event(self) -> Spec:
        if not self._pending:
            self._pending.extend(self._run())
        return self._pending.popleft()

    def _run(self) -> list[Spec]:
        from engine.drivers.demo import TOOLS, VERBS

        rng, w = self._rng, self.worker_id
        self._runs += 1
        run_id = f"{w}.r{self._runs}"
        self._transcript += 1
        asked = self._transcript
        content = f"demo task #{self._runs} for {w}"
        out = [
            Spec("worker.input.accepted", w, run_id, 1, f"user input #{asked}: {content}",
                 {"role": "user", "content": content, "sequence": asked}),
            Spec("run.created", w, run_id, 2, f"run {run_id} queued",
                 {"prompt": content, "input_sequence": asked, "role": "user"}),
        ]

        def ev(kind: str, message: str, payload: dict[str, Any] | None = None) -> None:
            out.append(Spec(kind, w, run_id, len(out) + 1, message, payload or {}))

        ev("run.planning", f"run {run_id} planning")
        ev("run.executing", f"run {run_id} executing")
        for step in range(1, DEMO_STEPS + 1):
            verb = VERBS[rng.randrange(len(VERBS))]
            ev("run.step.started", f"step {step}: {verb}", {"step": step, "title": verb})
            if rng.random() < TOOL_RATE:
                tool = TOOLS[rng.randrange(len(TOOLS))]
                took = rng.randint(5, 900)
                ev("run.tool.started", f"tool {tool}", {"step": step, "tool": tool})
                ev("run.tool.completed", f"tool {tool} done in {took} ms",
                   {"step": step, "tool": tool, "duration_ms": took})
        ev("run.verifying", f"run {run_id} verifying")
        if rng.random() < FAIL_RATE:
            reason = "demo failure: the simulated tests did not pass"
            ev("run.failed", f"run {run_id} failed: {reason}", {"error": reason})
        else:
            self._transcript += 1
            answer = f"done: {content[:60]}"
            ev("worker.output", f"assistant: {answer}",
               {"role": "assistant", "content": answer, "sequence": self._transcript})
            ev("run.completed", f"run {run_id} completed", {"result": answer})
        return out


def _new_event(spec: Spec, at: datetime) -> NewEvent:
    from uuid6 import uuid7

    # model_construct: the fields are valid by construction, and validating
    # 10,000 events a second would cost the load child a core of its own.
    return NewEvent.model_construct(
        event_id=uuid7(), kind=spec.kind, worker_id=spec.worker_id, run_id=spec.run_id,
        run_seq=spec.run_seq, message=spec.message, payload=spec.payload, at=at,
    )


# ---------------------------------------------------------------------------
# The load: a child process appending demo-shaped events at a paced rate
# ---------------------------------------------------------------------------


async def _load_main(db: str, rate: float, seconds: float, workers: int, seed: int) -> None:
    """Set the demo runtime up, say `ready`, wait for `go`, then append at `rate` for `seconds`.

    Prints `c POSITION MONOTONIC` after each append and `done ...` at the end.
    """
    from engine.clock import SystemClock
    from engine.hosting import HostLeaseHolder

    store = await EventStore.open(db, watch=False)  # indexer on, as `agentdeck demo` opens it
    lease = HostLeaseHolder(store, LOAD_RUNTIME, SystemClock())
    await lease.acquire()
    try:
        setup = [runtime_started(LOAD_RUNTIME)]
        for i in range(1, workers + 1):
            setup += worker_created(i)
        at = datetime.now(UTC)
        await store.append(LOAD_RUNTIME, None, [_new_event(s, at) for s in setup])
        print(f"ready {store.feed.last_position}", flush=True)
        line = await asyncio.to_thread(sys.stdin.readline)
        if line.strip() != "go":
            return
        rng = random.Random(seed)
        demo = [DemoWorker(i, random.Random(rng.random())) for i in range(1, workers + 1)]
        cpu0 = time.process_time()
        start = time.monotonic()
        sent = locked = 0
        while (elapsed := time.monotonic() - start) < seconds:
            due = min(int(rate * elapsed) - sent, MAX_APPEND)
            if due <= 0:
                await asyncio.sleep(TICK_S)
                continue
            at = datetime.now(UTC)
            batch = [_new_event(demo[rng.randrange(workers)].next_event(), at) for _ in range(due)]
            while True:
                try:
                    events = await store.append(LOAD_RUNTIME, None, batch)
                    break
                except DatabaseLocked:
                    locked += 1  # another process held the write lock past the busy timeout
            sent += due
            print(f"c {events[-1].position} {time.monotonic()!r}", flush=True)
        elapsed = time.monotonic() - start
        print(f"done {sent} {elapsed!r} {time.process_time() - cpu0!r} {locked}", flush=True)
    finally:
        await lease.release()
        await store.close()


class LoadChild:
    """The load process, seen from here: its commits as (monotonic time, position).

    Its lines are read by a thread, not by the event loop the app runs on, so a
    busy app cannot make the load look later than it was.
    """

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.commits: list[tuple[float, int]] = []
        self.setup_position = 0
        self.sent = 0
        self.elapsed = 0.0
        self.cpu_s = 0.0
        self.locked = 0  # appends refused with DatabaseLocked (and retried)
        self._ready = threading.Event()
        self._done = threading.Event()
        self._reader = threading.Thread(target=self._read, name="bench-load-reader", daemon=True)
        self._reader.start()

    @classmethod
    def start(cls, db: Path, rate: float, seconds: float, workers: int, seed: int) -> LoadChild:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (PROJECT_ROOT, env.get("PYTHONPATH")) if p)
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.console", "load", str(db), str(rate), str(seconds),
             str(workers), str(seed)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
        )
        return cls(proc)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            parts = line.split()
            if not parts:
                continue
            if parts[0] == b"c":
                self.commits.append((float(parts[2]), int(parts[1])))
            elif parts[0] == b"ready":
                self.setup_position = int(parts[1])
                self._ready.set()
            elif parts[0] == b"done":
                self.sent, self.elapsed, self.cpu_s = int(parts[1]), float(parts[2]), float(parts[3])
                self.locked = int(parts[4])
                self._done.set()
        self._ready.set()
        self._done.set()

    async def ready(self, timeout: float = 60.0) -> None:
        if not await asyncio.to_thread(self._ready.wait, timeout) or not self.setup_position:
            raise RuntimeError(f"the load process was not ready (exit status {self.proc.poll()})")

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()

    def finished_now(self) -> bool:
        return self._done.is_set()

    def committed_at(self, t: float) -> int:
        """The newest position the child had committed at monotonic time `t`."""
        commits = self.commits
        for i in range(len(commits) - 1, -1, -1):
            stamp, position = commits[i]
            if stamp <= t:
                return position
        return self.setup_position

    @property
    def last_position(self) -> int:
        return self.commits[-1][1] if self.commits else self.setup_position

    async def close(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            await asyncio.to_thread(self.proc.wait, 30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            await asyncio.to_thread(self.proc.wait)
        await asyncio.to_thread(self._reader.join, 5)
        if self.proc.returncode != 0:
            raise RuntimeError(f"the load process exited {self.proc.returncode}")

    def source_rate(self) -> float:
        """Events/s the child committed between its first and last append."""
        if len(self.commits) < 2:
            return 0.0
        (t0, p0), (t1, p1) = self.commits[0], self.commits[-1]
        return (p1 - p0) / (t1 - t0) if t1 > t0 else 0.0


# ---------------------------------------------------------------------------
# Frames: what the terminal would show
# ---------------------------------------------------------------------------

_ESCAPE = re.compile(r"\x1b(?:\[([0-9;?]*)([A-Za-z])|\][^\x07\x1b]*(?:\x07|\x1b\\)|[()][A-Za-z0-9])")


class VirtualTerminal:
    """A grid of characters fed with what the driver would write (cursor moves and text)."""

    def __init__(self, width: int, height: int) -> None:
        self.width = width
        self.height = height
        self.rows = [[" "] * width for _ in range(height)]

    def feed(self, data: str) -> None:
        x = y = 0
        pos = 0
        for match in _ESCAPE.finditer(data):
            if match.start() > pos:
                x, y = self._text(data[pos : match.start()], x, y)
            pos = match.end()
            if match.group(2) == "H":
                params = (match.group(1) or "").split(";")
                y = int(params[0] or 1) - 1
                x = int(params[1] or 1) - 1 if len(params) > 1 else 0
        if pos < len(data):
            self._text(data[pos:], x, y)

    def _text(self, text: str, x: int, y: int) -> tuple[int, int]:
        for i, part in enumerate(text.split("\n")):
            if i:
                x, y = 0, y + 1
            part = part.replace("\r", "")
            if part and 0 <= y < self.height and x < self.width:
                row = self.rows[y]
                end = min(self.width, x + len(part))
                if x >= 0:
                    row[x:end] = part[: end - x]
            x += len(part)
        return x, y

    def text(self, y: int, x0: int = 0, x1: int | None = None) -> str:
        if not 0 <= y < self.height:
            return ""
        return "".join(self.rows[y][max(0, x0) : self.width if x1 is None else x1])

    def screen(self) -> str:
        return "\n".join("".join(r) for r in self.rows)


@dataclass
class _Waiter:
    check: Callable[[], bool]
    future: asyncio.Future[float]


class FrameWatch:
    """Wraps `app._display` (instance only): encodes each frame like the driver, keeps a virtual screen."""

    def __init__(self, app: Any, size: tuple[int, int] = SIZE) -> None:
        from textual._compositor import CompositorUpdate, LayoutUpdate

        self.vt = VirtualTerminal(*size)
        self.frames: list[float] = []
        self.full_frames: list[float] = []  # whole-screen repaints (after a layout refresh)
        self.encode_s = 0.0
        self.parse_s = 0.0
        self._waiters: list[_Waiter] = []
        original = app._display

        def display(screen: Any, renderable: Any) -> None:
            original(screen, renderable)
            if not isinstance(renderable, CompositorUpdate):
                return
            t0 = time.monotonic()
            data = renderable.render_segments(app.console)  # what the driver would write
            t1 = time.monotonic()
            self.vt.feed(data)
            self.parse_s += time.monotonic() - t1
            self.encode_s += t1 - t0
            self.frames.append(t1)
            if isinstance(renderable, LayoutUpdate):
                self.full_frames.append(t1)
            for waiter in list(self._waiters):
                if waiter.future.done():
                    self._waiters.remove(waiter)
                    continue
                try:
                    shown = waiter.check()
                except Exception:
                    shown = False
                if shown:
                    waiter.future.set_result(t1)
                    self._waiters.remove(waiter)

        app._display = display

    def expect(self, check: Callable[[], bool]) -> asyncio.Future[float]:
        """A future set to the time of the first frame after now for which `check()` is true."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiters.append(_Waiter(check, future))
        return future

    async def shown(self, check: Callable[[], bool], timeout: float) -> None:
        """Return once the screen shows what `check` looks for (now, or after a later frame)."""
        with contextlib.suppress(Exception):
            if self.frames and check():
                return
        await asyncio.wait_for(self.expect(check), timeout)

    def region_text(self, region: Any) -> list[str]:
        return [self.vt.text(y, region.x, region.right) for y in range(region.y, region.bottom)]

    def stats(self, since: float, until: float) -> dict[str, Any]:
        frames = [t for t in self.frames if since <= t <= until]
        full = [t for t in self.full_frames if since <= t <= until]
        span = max(until - since, 1e-9)
        total = len(self.frames) or 1
        return {
            "frames": len(frames),
            "frames_per_s": len(frames) / span,
            "full_screen_frames": len(full),
            "encode_us_per_frame": self.encode_s / total * 1e6,
            "virtual_terminal_us_per_frame": self.parse_s / total * 1e6,
        }


# ---------------------------------------------------------------------------
# The two apps under load: the console, and the stock-Log baseline
# ---------------------------------------------------------------------------


class ConsoleUnderTest:
    """The real console, pointed at the demo runtime's workers."""

    name = "console"

    def __init__(self, db: Path) -> None:
        from tui.app import AgentDeckApp
        from tui.backend import open_backend

        self.app = AgentDeckApp(lambda: open_backend(db), settings_file=None)
        self.frames = FrameWatch(self.app)
        self.reloads = 0

    async def settle(self, workers: int, timeout: float = 60.0) -> None:
        """Backend open, the demo runtime selected, its workers listed, the event log loaded."""
        app = self.app
        await _until(lambda: app.backend is not None and app.runtimes_pane.row_count >= 2, timeout)
        app.runtimes_pane.select_runtime(LOAD_RUNTIME)
        await _until(
            lambda: app.selected_runtime == LOAD_RUNTIME
            and app.workers_table.row_count >= workers
            and app.event_log.loaded
            and app.transcript.ref is not None,
            timeout,
        )
        app.workers_table.move_cursor(row=0)
        app.workers_table.focus()
        log = app.event_log
        original = log.reload

        def counting(*args: Any, **kwargs: Any) -> Any:
            self.reloads += 1
            return original(*args, **kwargs)

        log.reload = counting  # type: ignore[method-assign]
        await self.frames.shown(lambda: self.shows("w-1"), timeout)

    def applied(self) -> int:
        """The newest position applied to the event log's window."""
        window = self.app.event_log.window
        return window[-1].position if window else 0

    def shows(self, worker_id: str) -> bool:
        region = self.app.transcript.region
        return bool(
            re.search(rf"Transcript — {worker_id}(?!\d)", self.frames.vt.text(region.y, region.x, region.right))
        )

    def details(self) -> dict[str, Any]:
        app = self.app
        buffer = getattr(app, "_buffer", None)
        log_buffer = getattr(app.event_log, "_buffer", None)
        return {
            "event_log_reloads": self.reloads,
            "event_log_window": app.event_log.window_size,
            "event_log_buffer_dropped": getattr(log_buffer, "dropped_total", None),
            "workers_feed_buffer_pushed": getattr(buffer, "pushed_total", None),
            "workers_feed_buffer_dropped": getattr(buffer, "dropped_total", None),
        }

    async def wind_down(self) -> None:
        return None


def _log_baseline_app(db: Path) -> Any:
    from textual.app import App, ComposeResult
    from textual.binding import Binding
    from textual.widgets import Log

    from tui.headless import format_event

    class LogBaseline(App[None]):
        """Textual's stock `Log`, one `write_line` per event from the same store subscription."""

        CSS = "Log { border: round $border; height: 1fr; }"
        BINDINGS = [Binding("j", "pick('w-2')"), Binding("k", "pick('w-1')")]

        def __init__(self) -> None:
            super().__init__()
            self.store: EventStore | None = None
            self.applied = 0

        def compose(self) -> ComposeResult:
            yield Log(max_lines=LOG_BASELINE_LINES, highlight=False)

        async def on_mount(self) -> None:
            # An observer (watched, no writer, no indexer): the path from the file to
            # the subscription is the console's (reader, change feed, watcher), and a
            # starved baseline cannot hold the write lock against its load.
            self.store = await EventStore.open(db, read_only=True)
            widget = self.query_one(Log)
            widget.border_title = "selected w-1"
            widget.focus()
            self.run_worker(self._feed(self.store), group="feed")

        async def _feed(self, store: EventStore) -> None:
            widget = self.query_one(Log)
            with store.subscribe(store.feed.last_position) as sub:
                while True:
                    try:
                        batch = await sub.next_batch(1000)
                    except StopAsyncIteration:
                        return
                    for n, item in enumerate(batch, 1):
                        if isinstance(item, Event):
                            widget.write_line(format_event(item))
                            self.applied = item.position
                        if n % YIELD_EVERY == 0:
                            await asyncio.sleep(0)  # let keys and frames through
                    await asyncio.sleep(0)

        def action_pick(self, worker_id: str) -> None:
            self.query_one(Log).border_title = f"selected {worker_id}"

        async def on_unmount(self) -> None:
            if self.store is not None:
                await self.store.close()

    return LogBaseline()


class LogUnderTest:
    name = "log"

    def __init__(self, db: Path) -> None:
        self.app = _log_baseline_app(db)
        self.frames = FrameWatch(self.app)

    async def settle(self, workers: int, timeout: float = 60.0) -> None:
        await _until(lambda: self.app.store is not None, timeout)
        await self.frames.shown(lambda: self.shows("w-1"), timeout)

    def applied(self) -> int:
        return int(self.app.applied)

    def shows(self, worker_id: str) -> bool:
        from textual.widgets import Log

        region = self.app.query_one(Log).region
        return bool(
            re.search(rf"selected {worker_id}(?!\d)", self.frames.vt.text(region.y, region.x, region.right))
        )

    def details(self) -> dict[str, Any]:
        from textual.widgets import Log

        return {"log_lines": self.app.query_one(Log).line_count}

    async def wind_down(self, timeout: float = 30.0) -> None:
        """Stop the feed and let the Log's pending size workers finish before the app exits."""
        self.app.workers.cancel_group(self.app, "feed")
        with contextlib.suppress(TimeoutError):
            await _until(lambda: all(w.is_finished for w in self.app.workers), timeout)


async def _until(condition: Callable[[], bool], timeout: float, step: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the app did not reach the expected state in time")
        await asyncio.sleep(step)


# ---------------------------------------------------------------------------
# One live phase: an app, its load child, the samplers
# ---------------------------------------------------------------------------


LAG_TICK_S = 0.01


class LoopWatch:
    """What the app's event loop went through during the load: stalls, GC pauses, layouts.

    Stalls: a task sleeping 10 ms at a time records how late it wakes. GC:
    `gc.callbacks` times every collection. Layouts: the main screen's
    `_refresh_layout` (a whole-screen reflow and repaint) is wrapped on the
    instance and timed.
    """

    def __init__(self, app: Any) -> None:
        self.lags: list[float] = []
        self.gc: list[tuple[int, float]] = []  # (generation, seconds)
        self.layouts = 0
        self.layout_s = 0.0
        self._active = False
        self._gc_start = 0.0
        self._task: asyncio.Task[None] | None = None
        screen = app.screen
        original = screen._refresh_layout

        def refresh_layout(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                if self._active:
                    self.layouts += 1
                    self.layout_s += time.perf_counter() - t0

        screen._refresh_layout = refresh_layout

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        elif self._active:
            self.gc.append((int(info.get("generation", -1)), time.perf_counter() - self._gc_start))

    async def _tick(self) -> None:
        while self._active:
            t0 = time.perf_counter()
            await asyncio.sleep(LAG_TICK_S)
            self.lags.append(max(0.0, time.perf_counter() - t0 - LAG_TICK_S))

    def start(self) -> None:
        self._active = True
        gc.callbacks.append(self._on_gc)
        self._task = asyncio.create_task(self._tick(), name="bench-loop-lag")

    async def stop(self) -> None:
        self._active = False
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._on_gc)
        if self._task is not None:
            await self._task

    def summary(self, seconds: float) -> dict[str, Any]:
        lag = latency_ms(self.lags)
        pauses = [d for _, d in self.gc]
        full = [d for g, d in self.gc if g == 2]
        return {
            "loop_lag_ms": {k: lag[k] for k in ("p50", "p99", "max")},
            "loop_stalls_over_50ms": sum(1 for x in self.lags if x > 0.05),
            "gc_collections": len(pauses),
            "gc_ms_total": sum(pauses) * 1000,
            "gc_ms_max": max(pauses) * 1000 if pauses else 0.0,
            "gc_full_collections": len(full),
            "gc_full_ms_max": max(full) * 1000 if full else 0.0,
            "screen_layouts": self.layouts,
            "screen_layouts_per_s": self.layouts / seconds if seconds else 0.0,
            "screen_layout_ms_total": self.layout_s * 1000,
            "screen_layout_ms_mean": self.layout_s * 1000 / self.layouts if self.layouts else 0.0,
        }



@dataclass
class LiveRun:
    name: str
    target_rate: float
    seconds: float
    source_rate: float = 0.0
    source_events: int = 0
    source_cpu_s: float = 0.0
    source_locked: int = 0
    applied_rate: float = 0.0
    applied_events: int = 0
    backlog: list[tuple[float, int]] = field(default_factory=list)  # (seconds since go, events)
    keys: list[float] = field(default_factory=list)
    key_timeouts: int = 0
    idle_keys: list[float] = field(default_factory=list)
    rss: list[tuple[float, float]] = field(default_factory=list)  # (seconds since go, MiB)
    rss_before_mb: float = 0.0
    loop_cpu_s: float = 0.0
    process_cpu_s: float = 0.0
    catch_up_s: float | None = None
    frames: dict[str, Any] = field(default_factory=dict)
    loop: dict[str, Any] = field(default_factory=dict)
    app: dict[str, Any] = field(default_factory=dict)
    profile: list[dict[str, Any]] | None = None
    loadavg: list[float] = field(default_factory=list)  # 1-minute load average at go and at end

    def backlog_values(self) -> list[int]:
        return [b for _, b in self.backlog]

    def backlog_trend(self) -> float:
        """Least-squares slope of the backlog over the load, events per second (0: flat)."""
        pts = self.backlog
        if len(pts) < 3:
            return 0.0
        n = len(pts)
        mx = sum(t for t, _ in pts) / n
        my = sum(b for _, b in pts) / n
        den = sum((t - mx) ** 2 for t, _ in pts)
        return sum((t - mx) * (b - my) for t, b in pts) / den if den else 0.0

    def rss_peak(self, until: float) -> float:
        values = [m for t, m in self.rss if t <= until]
        return max(values) if values else float("nan")

    def rss_at(self, when: float) -> float:
        """The sample taken closest to `when` seconds into the load."""
        if not self.rss:
            return float("nan")
        return min(self.rss, key=lambda s: abs(s[0] - when))[1]

    def summary(self, early_s: float) -> dict[str, Any]:
        backlog = self.backlog_values()
        keys = latency_ms(self.keys)
        idle = latency_ms(self.idle_keys)
        per_event = 1e6 / self.applied_events if self.applied_events else float("nan")
        return {
            "target_events_per_s": self.target_rate,
            "source_events_per_s": self.source_rate,
            "source_reached_target": self.source_rate >= 0.95 * self.target_rate,
            "source_events": self.source_events,
            "source_cpu_s": self.source_cpu_s,
            "source_appends_locked_out": self.source_locked,
            "applied_events_per_s": self.applied_rate,
            "applied_events": self.applied_events,
            "backlog_p50": percentile(backlog, 50),
            "backlog_p99": percentile(backlog, 99),
            "backlog_max": max(backlog) if backlog else float("nan"),
            "backlog_at_end": backlog[-1] if backlog else float("nan"),
            "backlog_trend_events_per_s": self.backlog_trend(),
            "catch_up_s": self.catch_up_s,
            "key_ms": keys,
            "key_timeouts": self.key_timeouts,
            "idle_key_ms": idle,
            "rss_before_load_mb": self.rss_before_mb,
            "rss_peak_early_mb": self.rss_peak(early_s),
            "rss_peak_all_mb": self.rss_peak(self.seconds + 1),
            "rss_at_early_mb": self.rss_at(early_s),
            "rss_at_end_mb": self.rss_at(self.seconds),
            "loop_thread_cpu_s": self.loop_cpu_s,
            "loop_thread_busy_pct": 100 * self.loop_cpu_s / self.seconds,
            "process_cpu_s": self.process_cpu_s,
            "loop_thread_cpu_us_per_event": self.loop_cpu_s * per_event,
            "process_cpu_us_per_event": self.process_cpu_s * per_event,
            "machine_loadavg_1m_at_start_and_end": self.loadavg,
            "frames": self.frames,
            "loop": self.loop,
            "app": self.app,
        }


async def _press_and_time(
    target: Any, pilot: Any, worker_id: str, presses: list[asyncio.Task[None]]
) -> float | None:
    """Press the key that selects `worker_id`; seconds until a frame shows it (None: timeout)."""
    key = "j" if worker_id == "w-2" else "k"
    shown = target.frames.expect(lambda: target.shows(worker_id))
    t0 = time.monotonic()
    presses.append(asyncio.create_task(pilot.press(key)))
    try:
        t1: float = await asyncio.wait_for(shown, KEY_TIMEOUT_S)
    except TimeoutError:
        return None
    return t1 - t0


async def live_phase(
    name: str, work: Path, size: Sizes, say: ProgressFn, seed: int, profile: bool = False
) -> LiveRun:
    db = work / f"live-{name}.db"
    run = LiveRun(name=name, target_rate=size.rate, seconds=size.load_s)
    child = LoadChild.start(db, size.rate, size.load_s, size.load_workers, seed)
    try:
        await child.ready()
        target: ConsoleUnderTest | LogUnderTest = (
            ConsoleUnderTest(db) if name == "console" else LogUnderTest(db)
        )
        app = target.app
        async with app.run_test(size=SIZE) as pilot:
            await target.settle(size.load_workers)
            presses: list[asyncio.Task[None]] = []
            selected = "w-1"
            for _ in range(IDLE_KEYS):  # at rest, for reference
                selected = "w-2" if selected == "w-1" else "w-1"
                took = await _press_and_time(target, pilot, selected, presses)
                if took is not None:
                    run.idle_keys.append(took)
                await asyncio.sleep(0.1)
            await asyncio.gather(*presses)
            presses.clear()
            gc.collect()
            run.rss_before_mb = rss_mb()
            say(f"  {name}: load of {size.rate:,.0f} events/s for {size.load_s:g}s starts")
            profiler = cProfile.Profile() if profile else None
            loop_cpu0, cpu0 = time.thread_time(), time.process_time()
            applied0 = target.applied()
            watch = LoopWatch(app)
            watch.start()
            run.loadavg.append(os.getloadavg()[0])
            child.go()
            t_go = time.monotonic()
            end = t_go + size.load_s
            if profiler is not None:
                profiler.enable()

            async def sample() -> None:
                next_rss = 0.0
                while (t := time.monotonic()) < end:
                    run.backlog.append((t - t_go, max(0, child.committed_at(t) - target.applied())))
                    if t - t_go >= next_rss:
                        run.rss.append((t - t_go, rss_mb()))
                        next_rss += RSS_SAMPLE_S
                    await asyncio.sleep(SAMPLE_S)

            async def keys() -> None:
                nonlocal selected
                while time.monotonic() + KEY_EVERY_S < end:
                    await asyncio.sleep(KEY_EVERY_S)
                    selected = "w-2" if selected == "w-1" else "w-1"
                    took = await _press_and_time(target, pilot, selected, presses)
                    if took is None:
                        run.key_timeouts += 1
                        run.keys.append(KEY_TIMEOUT_S)
                    else:
                        run.keys.append(took)

            await asyncio.gather(sample(), keys())
            t_end = time.monotonic()
            run.loadavg.append(os.getloadavg()[0])
            await watch.stop()
            run.loop = watch.summary(t_end - t_go)
            if profiler is not None:
                profiler.disable()
                run.profile = _top_functions(profiler)
            run.loop_cpu_s = time.thread_time() - loop_cpu0
            run.process_cpu_s = time.process_time() - cpu0
            applied1 = target.applied()
            run.applied_events = applied1 - applied0
            run.applied_rate = run.applied_events / (t_end - t_go)
            run.rss.append((t_end - t_go, rss_mb()))
            run.frames = target.frames.stats(t_go, t_end)
            # Catch-up: from the load's last commit until the app has applied it.
            deadline = t_end + min(CATCH_UP_TIMEOUT_S, max(5.0, size.load_s / 2))
            while time.monotonic() < deadline:
                done = child.finished_now()
                if done and target.applied() >= child.last_position:
                    run.catch_up_s = max(0.0, time.monotonic() - child.commits[-1][0])
                    break
                await asyncio.sleep(0.02)
            await asyncio.gather(*presses, return_exceptions=True)
            run.app = target.details()
            await target.wind_down()
    finally:
        await child.close()
    run.source_rate = child.source_rate()
    run.source_events = child.sent
    run.source_cpu_s = child.cpu_s
    run.source_locked = child.locked
    say(
        f"  {name}: source {run.source_rate:,.0f}/s, applied {run.applied_rate:,.0f}/s,"
        f" backlog p99 {percentile(run.backlog_values(), 99):,.0f}, key p50/p99"
        f" {percentile(run.keys, 50) * 1000:.0f}/{percentile(run.keys, 99) * 1000:.0f} ms,"
        f" RSS {run.rss_peak(size.early_s):.0f} -> {run.rss_peak(size.load_s + 1):.0f} MiB"
    )
    return run


def _top_functions(profiler: cProfile.Profile, limit: int = 30) -> list[dict[str, Any]]:
    stats = pstats.Stats(profiler, stream=io.StringIO())
    rows = []
    for (filename, line, func), (_cc, calls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append({
            "function": f"{_short(filename)}:{line}({func})",
            "calls": calls,
            "tottime_s": tottime,
            "cumtime_s": cumtime,
        })
    rows.sort(key=lambda r: r["tottime_s"], reverse=True)
    return rows[:limit]


def _short(filename: str) -> str:
    for marker in ("site-packages/", PROJECT_ROOT + "/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


# ---------------------------------------------------------------------------
# First paint: the cached databases, then the console opened on a copy
# ---------------------------------------------------------------------------


def deck_dataset_path(events: int, workers: int) -> Path:
    return data_dir() / f"console-{events}e-{workers}w-g{GENERATOR_VERSION}-v{LATEST_VERSION}.db"


def _row(position: int, seq: int, spec: Spec, at_us: int) -> Row:
    from uuid6 import uuid7

    return Row(
        position, DECK_RUNTIME, seq, str(uuid7()), spec.kind, level_of(spec.kind, spec.payload).rank,
        spec.worker_id, spec.run_id, spec.run_seq, spec.message, dump_payload(spec.payload), at_us,
        spec.payload,
    )


def deck_rows(events: int, workers: int, seed: int, batch: int) -> Iterator[list[Row]]:
    """Runtime `local` with `workers` demo workers taking turns at random, ~1 s apart.

    Every worker is created first; at the end each run in progress is finished,
    so the log has no open run and opening it fails nothing (a few events over
    `events`).
    """
    rng = random.Random(seed)
    at = us_from_dt(datetime(2026, 1, 5, tzinfo=UTC))
    out: list[Row] = []
    position = 0

    def add(spec: Spec) -> None:
        nonlocal position, at
        position += 1
        at += rng.randint(1_000, 2_000_000)
        out.append(_row(position, position, spec, at))

    add(runtime_started(DECK_RUNTIME))
    for i in range(1, workers + 1):
        for spec in worker_created(i):
            add(spec)
    demo = [DemoWorker(i, random.Random(rng.random())) for i in range(1, workers + 1)]
    while position < events:
        add(demo[rng.randrange(workers)].next_event())
        if len(out) >= batch:
            yield out
            out = []
    for worker in demo:
        while not worker.between_runs:
            add(worker.next_event())
    yield out


def _deck_ok(path: Path, events: int, workers: int) -> bool:
    try:
        conn = open_reader(path)
    except Exception:
        return False
    try:
        last = conn.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()[0]
        indexed = conn.execute("SELECT indexed_position FROM search_state").fetchone()[0]
        count = conn.execute("SELECT count(*) FROM workers").fetchone()[0]
        return bool(last >= events and indexed == last and count == workers)
    except sqlite3.Error:
        return False
    finally:
        conn.close()


def build_deck(path: Path, events: int, workers: int, say: ProgressFn) -> None:
    """Raw executemany of the rows, the real projector, then the real FTS indexer step."""
    tmp = path.with_name(path.name + ".building")
    conn = fresh_raw_db(tmp, OpenOptions(synchronous="OFF"))  # a cache, not data: no fsync
    try:
        conn.execute("PRAGMA cache_size = -262144")
        done = 0
        for rows in deck_rows(events, workers, seed=4, batch=20_000):
            raw_insert(conn, rows, projections=True)
            done += len(rows)
            if done % 200_000 < len(rows):
                say(f"    {done:,} events written")
        more = True
        while more:
            conn.execute("BEGIN IMMEDIATE")
            more = index_step(conn, 50_000)
            conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        conn.close()
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{tmp}{suffix}").unlink()
    tmp.replace(path)


def ensure_deck(events: int, workers: int, say: ProgressFn) -> tuple[Path, float]:
    """The cached database (built now if missing) and the seconds spent building it."""
    path = deck_dataset_path(events, workers)
    if path.exists() and _deck_ok(path, events, workers):
        return path, 0.0
    _remove_db(path)
    say(f"  building the {events:,}-event, {workers:,}-worker database (once; cached as {path})")
    started = now()
    build_deck(path, events, workers, say)
    return path, now() - started


def _remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", ".building", ".building-wal", ".building-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").unlink()


def _db_facts(path: Path) -> dict[str, Any]:
    conn = open_reader(path)
    try:
        return {
            "events": conn.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()[0],
            "workers": conn.execute("SELECT count(*) FROM workers").fetchone()[0],
            "runs": conn.execute("SELECT count(*) FROM runs").fetchone()[0],
            "bytes": path.stat().st_size,
        }
    finally:
        conn.close()


@dataclass
class Paint:
    painted_s: float
    first_frame_s: float | None
    backend_open_s: float | None


async def open_console(db: Path) -> Paint:
    """Construct the console on `db`; seconds until a frame shows worker rows and event rows."""
    from tui.app import AgentDeckApp
    from tui.backend import open_backend

    marks: dict[str, float] = {}
    t0 = time.monotonic()

    async def factory() -> Any:
        backend = await open_backend(db)
        marks["backend"] = time.monotonic()
        return backend

    app = AgentDeckApp(factory, settings_file=None)
    frames = FrameWatch(app)

    def painted() -> bool:
        workers = frames.region_text(app.workers_table.content_region)
        events = frames.region_text(app.event_log.content_region)
        return any(_WORKER_ID_CELL.search(line) for line in workers) and any(
            _EVENT_TIME.search(line) for line in events
        )

    shown = frames.expect(painted)
    async with app.run_test(size=SIZE):
        t1 = await asyncio.wait_for(shown, PAINT_TIMEOUT_S)
    first = frames.frames[0] - t0 if frames.frames else None
    backend = marks["backend"] - t0 if "backend" in marks else None
    return Paint(painted_s=t1 - t0, first_frame_s=first, backend_open_s=backend)


async def first_paint_on(
    name: str, cached: Path, work: Path, repeats: int, say: ProgressFn
) -> dict[str, Any]:
    copy = work / f"paint-{name}.db"
    await asyncio.to_thread(shutil.copyfile, cached, copy)
    facts = _db_facts(copy)
    paints: list[Paint] = []
    try:
        for _ in range(repeats):
            gc.collect()
            paints.append(await open_console(copy))
            gc.collect()
    finally:
        _remove_db(copy)
    ms = [p.painted_s * 1000 for p in paints]
    say(
        f"  first paint on {name} ({facts['events']:,} events, {facts['workers']:,} workers):"
        f" {', '.join(f'{m:.0f}' for m in ms)} ms"
    )
    return {
        "ms": median(ms),
        "runs_ms": ms,
        "first_frame_ms": median([p.first_frame_s * 1000 for p in paints if p.first_frame_s]),
        "backend_open_ms": median([p.backend_open_s * 1000 for p in paints if p.backend_open_s]),
        **facts,
    }


def import_ms() -> float:
    """Milliseconds a fresh interpreter takes to import the console (not in first paint)."""
    code = (
        "import time; t = time.perf_counter(); import tui.app, tui.backend;"
        " print((time.perf_counter() - t) * 1000)"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PROJECT_ROOT, env.get("PYTHONPATH")) if p)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    return float(out.stdout.strip())


# ---------------------------------------------------------------------------
# The program
# ---------------------------------------------------------------------------


async def run_console_bench(
    quick: bool, progress: ProgressFn | None = None, scale: float = 1.0, *, profile: bool = False
) -> dict[str, Any]:
    """Measure every figure; the JSON-able result (figures, baselines, ratios, notes)."""
    say = progress or (lambda _m: None)
    size = sizes(quick, scale)
    started = now()
    root = data_dir()
    work = Path(tempfile.mkdtemp(prefix="console-", dir=root))
    try:
        say(f"live load: {size.rate:,.0f} events/s from {size.load_workers} demo workers for"
            f" {size.load_s:g}s, console then stock Log")
        console = await live_phase("console", work, size, say, seed=11, profile=profile)
        gc.collect()
        log = await live_phase("log", work, size, say, seed=11)
        gc.collect()
        say("first paint")
        big_db, big_build_s = await asyncio.to_thread(
            ensure_deck, size.paint_events, size.paint_workers, say
        )
        small_db, small_build_s = await asyncio.to_thread(
            ensure_deck, size.small_events, size.small_workers, say
        )
        many_db, many_build_s = await asyncio.to_thread(
            ensure_deck, 3 * size.paint_workers + 1, size.paint_workers, say
        )
        small = await first_paint_on("small", small_db, work, size.paint_repeats, say)
        many = await first_paint_on("many-workers", many_db, work, size.paint_repeats, say)
        big = await first_paint_on("big", big_db, work, size.paint_repeats, say)
        big["import_ms"] = await asyncio.to_thread(import_ms)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    c, b = console.summary(size.early_s), log.summary(size.early_s)
    figures = _figures(size, c, b, big, small, many)
    notes = _notes(size, console, log, big, small, many)
    notes["datasets"] = {
        "big": {"path": str(big_db), "built_now_s": big_build_s},
        "small": {"path": str(small_db), "built_now_s": small_build_s},
        "many_workers": {"path": str(many_db), "built_now_s": many_build_s},
    }
    return {
        "suite": "console",
        "quick": quick,
        "scale": scale,
        "sizes": size.__dict__,
        "machine": machine_info(root),
        "elapsed_s": now() - started,
        "figures": figures,
        "console": c,
        "baseline_log": b,
        "notes": notes,
    }


def _figures(
    size: Sizes,
    c: dict[str, Any],
    b: dict[str, Any],
    big: dict[str, Any],
    small: dict[str, Any],
    many: dict[str, Any],
) -> dict[str, dict[str, Any]]:
    src = c["source_events_per_s"]
    pace = 0.95 * src
    per_second = src  # "bounded": less than one second of load behind
    rss_growth = _growth_pct(c["rss_peak_early_mb"], c["rss_peak_all_mb"])
    rss_growth_base = _growth_pct(b["rss_peak_early_mb"], b["rss_peak_all_mb"])
    early, total = size.early_s, size.load_s
    return {
        "events_applied_per_s": figure(
            value=c["applied_events_per_s"],
            unit="events/s",
            desc=f"events the console applied to its event log per second while a separate process"
            f" committed demo-shaped events at {src:,.0f}/s (target {size.rate:,.0f}/s) for"
            f" {total:g}s to the same file (seen through the store's change feed)",
            baseline=b["applied_events_per_s"],
            baseline_desc="a minimal Textual app with the stock Log (max_lines"
            f" {LOG_BASELINE_LINES:,}), one write_line per event from the same store"
            f" subscription, its own load child at {b['source_events_per_s']:,.0f}/s",
            goal=Goal("value", ">=", pace, f"keeps pace: >= 95% of the source's {src:,.0f}/s"),
            source_events_per_s=src,
            source_reached_target=c["source_reached_target"],
            baseline_source_events_per_s=b["source_events_per_s"],
            catch_up_s=c["catch_up_s"],
            baseline_catch_up_s=b["catch_up_s"],
        ),
        "backlog_p99": figure(
            value=c["backlog_p99"],
            unit="events (p99)",
            desc=f"committed by the load but not yet in the event log's window, sampled every"
            f" {SAMPLE_S * 1000:.0f} ms during the load (includes change-feed wake-up and the"
            " console's drain pacing)",
            baseline=b["backlog_p99"],
            baseline_desc="the same for the stock Log app (last position written with write_line)",
            goal=Goal("value", "<=", per_second, f"bounded: p99 <= 1 s of load ({per_second:,.0f}"
                      " events)"),
            p50=c["backlog_p50"],
            max=c["backlog_max"],
            at_end=c["backlog_at_end"],
            trend_events_per_s=c["backlog_trend_events_per_s"],
            baseline_p50=b["backlog_p50"],
            baseline_max=b["backlog_max"],
            baseline_at_end=b["backlog_at_end"],
            baseline_trend_events_per_s=b["backlog_trend_events_per_s"],
        ),
        "key_latency_p99": figure(
            value=c["key_ms"]["p99"],
            unit="ms (p99)",
            desc=f"Pilot.press('j'/'k') in the workers table every {KEY_EVERY_S:g}s under the"
            " load, until a frame shows the transcript titled with the newly selected worker"
            f" (timeouts count as {KEY_TIMEOUT_S:g}s)",
            baseline=b["key_ms"]["p99"],
            baseline_desc="the same keys in the stock Log app, where they retitle the Log",
            goal=Goal("value", "<=", 100.0, "p99 <= 100 ms"),
            p50=c["key_ms"]["p50"],
            p90=c["key_ms"]["p90"],
            max=c["key_ms"]["max"],
            samples=c["key_ms"]["n"],
            timeouts=c["key_timeouts"],
            idle_p50=c["idle_key_ms"]["p50"],
            idle_p99=c["idle_key_ms"]["p99"],
            baseline_p50=b["key_ms"]["p50"],
            baseline_max=b["key_ms"]["max"],
            baseline_timeouts=b["key_timeouts"],
            baseline_idle_p50=b["idle_key_ms"]["p50"],
        ),
        "peak_rss_growth": figure(
            value=rss_growth,
            unit=f"% (peak RSS 0-{total:g}s over 0-{early:g}s)",
            desc=f"growth of this process's peak VmRSS from the first {early:g}s of the load to"
            f" all {total:g}s, with the console running (flat = no leak, bounded windows)",
            baseline=rss_growth_base,
            baseline_desc="the same for the stock Log app (run after the console in the same"
            " process: its numbers start from the heap the console left)",
            goal=Goal("value", "<=", 10.0, "flat: <= 10% growth"),
            ratio=(rss_growth + 1) / (rss_growth_base + 1),
            ratio_desc="(growth + 1) / (baseline growth + 1): growth is near 0 on both sides",
            rss_early_mb=c["rss_peak_early_mb"],
            rss_all_mb=c["rss_peak_all_mb"],
            rss_sample_at_early_mb=c["rss_at_early_mb"],
            rss_sample_at_end_mb=c["rss_at_end_mb"],
            rss_before_load_mb=c["rss_before_load_mb"],
            baseline_rss_early_mb=b["rss_peak_early_mb"],
            baseline_rss_all_mb=b["rss_peak_all_mb"],
        ),
        "first_paint": figure(
            value=big["ms"],
            unit="ms (median)",
            desc=f"AgentDeckApp constructed on a copy of a database of {big['events']:,} events"
            f" and {big['workers']:,} workers (hosting `local`, as `agentdeck --db X` does) until"
            " the first frame showing worker rows and event rows; imports excluded",
            baseline=small["ms"],
            baseline_desc=f"the same on {small['events']:,} events and {small['workers']} workers",
            goal=Goal("value", "<=", 1000.0, "<= 1 s"),
            events=big["events"],
            workers=big["workers"],
            baseline_events=small["events"],
            baseline_workers=small["workers"],
            runs_ms=big["runs_ms"],
            baseline_runs_ms=small["runs_ms"],
            backend_open_ms=big["backend_open_ms"],
            first_frame_ms=big["first_frame_ms"],
            import_ms=big["import_ms"],
            import_desc="what a fresh `agentdeck` process spends importing tui.app before it"
            " can construct the App (measured in a child interpreter; not in the figure)",
            baseline_backend_open_ms=small["backend_open_ms"],
        ),
        "first_paint_vs_small": figure(
            value=big["ms"],
            unit="ms (median)",
            desc="first paint on the big database over first paint on the small one",
            baseline=small["ms"],
            baseline_desc=f"first paint on {small['events']:,} events",
            goal=Goal("ratio", "<=", 1.5, "ratio <= 1.5"),
            many_workers_ms=many["ms"],
            many_workers_desc=f"first paint on {many['events']:,} events and {many['workers']:,}"
            " workers (only their creation): the big database's workers without its history",
            ratio_to_many_workers=big["ms"] / many["ms"] if many["ms"] else float("nan"),
        ),
    }


def _growth_pct(early: float, total: float) -> float:
    return (total / early - 1) * 100 if early else float("nan")


def _notes(
    size: Sizes,
    console: LiveRun,
    log: LiveRun,
    big: dict[str, Any],
    small: dict[str, Any],
    many: dict[str, Any],
) -> dict[str, Any]:
    notes: dict[str, Any] = {
        "method": (
            "Both apps run headless in this process via App.run_test(size=(120, 40)). Their load"
            " is a child process (python -m bench.console load) that takes the `demo` runtime's"
            " host lease, creates the workers, then appends demo-shaped events (builtin:demo's"
            " kinds, messages and payloads; workers take turns at random, so runs interleave)"
            " through EventStore.append, paced every few ms to the target rate (one append per"
            " tick, group-committed, synchronous=FULL), and prints each commit's position and"
            " CLOCK_MONOTONIC time. The console opens the file like `agentdeck --db X` (hosting"
            " `local`, writable, watched, indexed), selects the `demo` runtime in the runtimes"
            " pane and focuses the workers table; it sees the load only through the store's"
            " change feed (watchfiles + data_version poll)."
        ),
        "load_source": (
            "not `agentdeck demo`: measured here at ~1,200 events/s with 50 workers and --rate"
            " 10000 (its feeder sends one input at a time and awaits each durable commit), and"
            " with 200 workers it hung on close; so a child appends directly through"
            " EventStore at the target rate. Achieved rates are in source_events_per_s."
        ),
        "frames": (
            "App._display is wrapped on each app instance: every frame the compositor hands to"
            " the driver is encoded with CompositorUpdate.render_segments (the real driver's"
            " work, minus the write) and applied to a 120x40 virtual terminal. A key's latency"
            " runs from just before Pilot.press posts it to the first frame after which the"
            " virtual terminal shows the change in the widget's region; first paint runs from"
            " constructing the App to the first frame showing a worker id in the workers table"
            " and an event time in the event log. Pilot.press itself is not awaited for the"
            " figure: under constant load its wait_for_idle waits its 1 s maximum."
        ),
        "baseline_log": (
            "Textual's Log.write_lines starts a thread worker (_update_size) per call and sets"
            " virtual_size (a screen layout) until max_lines is reached, so one write_line per"
            f" event costs a thread per event; its feed yields to the loop every {YIELD_EVERY}"
            " lines so keys and frames get through (without that it starves the loop for as"
            " long as the subscription has events queued). Its store is opened read-only (same"
            " reader, change feed and watcher as the console's; no writer, no indexer): opened"
            " writable, its indexer's transaction, starved by the Log's threads, held the write"
            " lock past the 5 s busy timeout and the load process failed with DatabaseLocked."
        ),
        "loop": (
            "loop_lag_ms: how late a task sleeping 10 ms wakes (stalls of the event loop);"
            " gc_*: every collection timed with gc.callbacks; screen_layouts: calls of the main"
            " screen's _refresh_layout (a whole-screen reflow), timed; full_screen_frames:"
            " frames that repaint the whole screen."
        ),
        "applied_and_backlog": (
            "applied = newest position in EventLog.window (follow on); backlog(t) = the load's"
            " newest commit at t (its own timestamps) - applied(t). For the Log app, applied ="
            " the position of the last event passed to write_line."
        ),
        "rss": (
            f"VmRSS of this process every {RSS_SAMPLE_S:g}s during the load; early = peak over the"
            f" first {size.early_s:g}s, all = peak over {size.load_s:g}s."
        ),
        "cpu": {
            "console_loop_thread_busy_pct": 100 * console.loop_cpu_s / console.seconds,
            "console_process_cpu_s": console.process_cpu_s,
            "log_loop_thread_busy_pct": 100 * log.loop_cpu_s / log.seconds,
            "log_process_cpu_s": log.process_cpu_s,
            "console_load_child_cpu_s": console.source_cpu_s,
            "log_load_child_cpu_s": log.source_cpu_s,
        },
        "first_paint_many_workers_short_history": {
            "desc": "the same first paint on a database of the big one's workers and nothing"
            " but their creation: separates the cost of workers from the cost of history",
            **many,
        },
        "first_paint_big": big,
        "first_paint_small": small,
    }
    short = [r.name for r in (console, log) if r.source_rate < 0.95 * r.target_rate]
    if short:
        notes["warning"] = (
            f"the load did not reach {size.rate:,.0f} events/s for {', '.join(short)} (see"
            " source_events_per_s): the machine was short of CPU (see"
            " machine_loadavg_1m_at_start_and_end); the figures hold for the rate achieved"
        )
    if console.profile is not None:
        notes["profile_console_loop_thread"] = {
            "desc": "cProfile of the event-loop thread during the console's load (--profile;"
            " cProfile slows Python calls, so read the numbers as shares, and the figures of"
            " a profiled run are not comparable)",
            "top_by_tottime": console.profile,
        }
    return notes


async def run_console_command(
    quick: bool, json_only: bool, scale: float = 1.0, profile: bool = False
) -> int:
    """`agentdeck bench console [--json] [--quick]`: JSON on stdout, progress on stderr."""
    result = await run_console_bench(quick, Progress(quiet=json_only), scale, profile=profile)
    emit_json(result)
    if not json_only:
        for line in summary_lines(result["figures"]):
            print(line, file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m bench.console [--json] [--quick] [--scale X] [--profile]` (and the load child)."""
    import argparse

    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["load"]:
        if len(args_list) != 6:
            print("usage: python -m bench.console load DB RATE SECONDS WORKERS SEED", file=sys.stderr)
            return 2
        _, db, rate, seconds, workers, seed = args_list
        asyncio.run(_load_main(db, float(rate), float(seconds), int(workers), int(seed)))
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.console")
    parser.add_argument("--json", action="store_true", help="only the JSON on stdout")
    parser.add_argument("--quick", action="store_true", help="5 s of load, a 100k-event database")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the sizes")
    parser.add_argument("--profile", action="store_true", help="cProfile the console's loop thread")
    args = parser.parse_args(args_list)
    return asyncio.run(run_console_command(args.quick, args.json, args.scale, args.profile))


if __name__ == "__main__":
    raise SystemExit(main())
