"""`agentdeck bench console`: the real console, headless, under load and on a big database.

Every figure stands next to a baseline measured in the same run:

- events_applied_per_s, backlog_p99: the console (`tui.app.AgentDeckApp`,
  headless via `App.run_test(size=(120, 40))`, in this process) watches the
  `demo` runtime that a *separate process* drives at 10,000 events/s for 60 s
  into the same file; the console sees those events only through the store's
  change feed. Applied = the newest position in the event log's window;
  backlog = the load's newest committed position minus that. Baseline: a
  minimal Textual app with the stock `Log` widget on the same kind of stream
  (its own load child, same rate and duration, same store subscription), one
  `Log.write_line` per event.
- key_latency_p99: every 0.5 s a key that changes the screen (`j`/`k` in the
  workers table: the transcript's title names the newly selected worker) is
  pressed and timed until a frame *showing* the change leaves the compositor.
  Baseline: the same keys in the `Log` app, where they retitle the log.
- pictures_strip_key_latency_p99: the same key figure and pace with the pictures
  strip shown (what every other console figure runs with) against a second
  console run with it hidden (`console-no-pictures`, its own load child).
- peak_rss_growth: peak RSS of this process over the first 10 s of the load
  against the whole 60 s, as % growth (the same for the `Log` app); beside it the
  growth over the second 30 s, which a leak keeps and a warm-up does not.
- first_paint, first_paint_vs_small: the console opened (hosting `local`, as
  `agentdeck --db X` does) on a database of 1M events and 1,000 workers, from
  constructing the App to the first frame showing worker rows and event rows;
  baseline: the same on 1,000 events and 10 workers.

Frames: `App._display` is wrapped on the app instance; each frame is
encoded as the driver does (`CompositorUpdate.render_segments`) and applied
to a 120x40 virtual terminal, so "the screen shows X" means that grid does.
The load is `python -m bench.console load ...` (`agentdeck demo` cannot make
10,000 events/s): a child hosting the `demo` runtime's lease that appends
builtin:demo-shaped events, each built through `store.catalog.event`. The
first-paint databases are built once (`bench.common.build_cached_db`) and
cached under bench/data/. `python -m bench.console [--json] [--quick]
[--scale X]` runs it alone.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import gc
import itertools
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from uuid6 import uuid7

from bench.common import (
    Goal,
    Progress,
    build_cached_db,
    child_env,
    data_dir,
    figure,
    finish,
    latency_ms,
    loadavg,
    machine_info,
    median,
    now,
    percentile,
    remove_db,
    row_of,
    rss_mb,
)
from store import catalog as c
from store.database import open_reader
from store.errors import DatabaseLocked
from store.event_store import EventStore
from store.models import Event, NewEvent, Role, RoleIntent, WorkerSpec
from store.projector import Row
from store.schema import LATEST_VERSION

Say = Callable[[str], None]
Clock = Callable[[], datetime]

SIZE = (120, 40)
LOAD_RUNTIME = "demo"  # what `agentdeck demo` hosts by default
DECK_RUNTIME = "local"  # what `agentdeck` hosts by default
DEMO_PROFILE = "builtin:demo"
DEMO_STEPS, TOOL_RATE, FAIL_RATE = 3, 0.7, 0.1  # engine.drivers.demo.DemoSettings
GENERATOR_VERSION = 2  # bump when the first-paint databases' content changes
MAX_APPEND = 2_000  # most events the load child puts in one append
TICK_S = 0.005
SAMPLE_S = 0.1  # backlog sampling
RSS_SAMPLE_S = 0.25
KEY_EVERY_S = 0.5
KEY_TIMEOUT_S = 5.0
IDLE_KEYS = 8  # key samples before the load starts (the figure at rest)
CATCH_UP_TIMEOUT_S = 15.0
PAINT_TIMEOUT_S = 120.0
LAG_TICK_S = 0.01
LOG_BASELINE_LINES = 5_000  # the stock Log keeps as many lines as the EventLog's window
YIELD_EVERY = 100  # the Log app's feed yields to the loop every so many write_line calls

_WORKER_ID_CELL = re.compile(r"\bw-\d+\b")
_EVENT_TIME = re.compile(r"\d\d:\d\d:\d\d\.\d\d\d")
_DIAGNOSTICS = (
    ("runtime.local_default_resources",
     "worker created without a config bundle; runtime-local defaults are assumed"),
    ("worker.tools_less", "worker created without requested tool capabilities"),
)


@dataclass(frozen=True)
class Sizes:
    load_s: float  # seconds of load
    early_s: float  # the "10 s" of "peak RSS at 10 s vs at the end"
    rate: float  # target events/s of the load
    load_workers: int
    paint_events: int  # the big first-paint database
    paint_workers: int
    small_events: int  # the first-paint baseline database
    small_workers: int
    paint_repeats: int


def sizes(quick: bool, scale: float = 1.0) -> Sizes:
    """Full: 60 s at 10k/s, 1M events / 1,000 workers. Quick: 5 s, 100k events."""
    load_s, events, repeats = (5.0, 100_000, 2) if quick else (60.0, 1_000_000, 3)
    load = max(1.5, load_s * scale)
    return Sizes(
        load_s=load, early_s=min(10.0, load / 3), rate=10_000.0, load_workers=50,
        paint_events=max(2_000, round(events * scale)),
        paint_workers=1_000 if scale >= 1 else max(10, round(1_000 * scale)),
        small_events=1_000, small_workers=10, paint_repeats=repeats if scale >= 0.5 else 1,
    )


# ---------------------------------------------------------------------------
# builtin:demo-shaped events, built through the catalog
# ---------------------------------------------------------------------------


def _event(kind: str, payload: c.Payload, message: str, at: datetime, **where: Any) -> NewEvent:
    return c.event(kind, payload, event_id=uuid7(), at=at, message=message, **where)


def setup_events(runtime_id: str, workers: int, clock: Clock) -> list[NewEvent]:
    """`runtime.started`, then each worker's `worker.created` and the engine's two diagnostics."""
    out = [_event("runtime.started", c.RuntimeStarted(), f"runtime {runtime_id} started", clock())]
    for n in range(1, workers + 1):
        w, role = f"w-{n}", f"demo-{n}"
        spec = WorkerSpec(intent=RoleIntent(role=role), profile=DEMO_PROFILE)
        out.append(_event("worker.created", c.WorkerCreated(spec=spec),
                          f"worker {w} created (role: {role}, {DEMO_PROFILE})", clock(), worker_id=w))
        out += [_event("diagnostic.raised", c.DiagnosticRaised(code=code, message=text),
                       f"info: {code}: {text}", clock(), worker_id=w) for code, text in _DIAGNOSTICS]
    return out


def _demo_run(w: str, run_no: int, asked: int, rng: random.Random) -> list[tuple[str, c.Payload, str]]:
    """One run of a builtin:demo worker: (kind, payload, message), as engine.drivers.demo makes them."""
    from engine.drivers.demo import TOOLS, VERBS

    run_id, content = f"{w}.r{run_no}", f"demo task #{run_no} for {w}"
    run: list[tuple[str, c.Payload, str]] = [
        ("worker.input.accepted", c.TranscriptAppended(role=Role.USER, content=content,
                                                       sequence=asked),
         f"user input #{asked}: {content}"),
        ("run.created", c.RunCreated(prompt=content, input_sequence=asked), f"run {run_id} queued"),
        ("run.planning", c.Empty(), f"run {run_id} planning"),
        ("run.executing", c.Empty(), f"run {run_id} executing"),
    ]
    for step in range(1, DEMO_STEPS + 1):
        verb = VERBS[rng.randrange(len(VERBS))]
        run.append(("run.step.started", c.StepStarted(step=step, title=verb), f"step {step}: {verb}"))
        if rng.random() < TOOL_RATE:
            tool, took = TOOLS[rng.randrange(len(TOOLS))], rng.randint(5, 900)
            run.append(("run.tool.started", c.ToolStarted(step=step, tool=tool), f"tool {tool}"))
            run.append(("run.tool.completed", c.ToolCompleted(step=step, tool=tool, duration_ms=took),
                        f"tool {tool} done in {took} ms"))
    run.append(("run.verifying", c.Empty(), f"run {run_id} verifying"))
    if rng.random() < FAIL_RATE:
        reason = "demo failure: the simulated tests did not pass"
        run.append(("run.failed", c.RunFailed(error=reason), f"run {run_id} failed: {reason}"))
    else:
        answer = f"done: {content[:60]}"
        run.append(("worker.output", c.TranscriptAppended(role=Role.ASSISTANT, content=answer,
                                                          sequence=asked + 1),
                    f"assistant: {answer}"))
        run.append(("run.completed", c.RunCompleted(result=answer), f"run {run_id} completed"))
    return run


def demo_worker(number: int, rng: random.Random, clock: Clock) -> Iterator[NewEvent]:
    """One demo worker's events, run after run, forever; each stamped by `clock` when taken."""
    w, transcript = f"w-{number}", 0
    for run_no in itertools.count(1):
        run_id = f"{w}.r{run_no}"
        run = _demo_run(w, run_no, transcript + 1, rng)
        transcript += sum(1 for kind, _, _ in run if kind in c.TRANSCRIPT_KINDS)
        for run_seq, (kind, payload, message) in enumerate(run, 1):
            yield _event(kind, payload, message, clock(), worker_id=w, run_id=run_id,
                         run_seq=run_seq)


RUN_ENDS = ("run.completed", "run.failed")


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
        stamp: list[datetime] = [datetime.now(UTC)]  # the time of the append being built

        def clock() -> datetime:
            return stamp[0]

        await store.append(LOAD_RUNTIME, None, setup_events(LOAD_RUNTIME, workers, clock))
        print(f"ready {store.feed.last_position}", flush=True)
        if (await asyncio.to_thread(sys.stdin.readline)).strip() != "go":
            return
        rng = random.Random(seed)
        demo = [demo_worker(i, random.Random(rng.random()), clock) for i in range(1, workers + 1)]
        cpu0, start = time.process_time(), time.monotonic()
        sent = locked = 0
        while (elapsed := time.monotonic() - start) < seconds:
            due = min(int(rate * elapsed) - sent, MAX_APPEND)
            if due <= 0:
                await asyncio.sleep(TICK_S)
                continue
            stamp[0] = datetime.now(UTC)
            batch = [next(demo[rng.randrange(workers)]) for _ in range(due)]
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
    """The load process seen from here: its commits as (monotonic time, position).

    A thread reads its lines, not the event loop the app runs on, so a busy app
    cannot make the load look later than it was.
    """

    def __init__(self, db: Path, rate: float, seconds: float, workers: int, seed: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.console", "load", str(db), str(rate), str(seconds),
             str(workers), str(seed)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=child_env(),
        )
        # Compact (this process's RSS is the figure): commit times and positions.
        self.stamps, self.positions = array("d"), array("q")
        self.setup_position = self.sent = self.locked = 0
        self.elapsed = self.cpu_s = 0.0
        self._ready, self._done = threading.Event(), threading.Event()
        self._reader = threading.Thread(target=self._read, name="bench-load-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            parts = line.split()
            if parts[:1] == [b"c"]:
                self.stamps.append(float(parts[2]))
                self.positions.append(int(parts[1]))
            elif parts[:1] == [b"ready"]:
                self.setup_position = int(parts[1])
                self._ready.set()
            elif parts[:1] == [b"done"]:
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
        i = bisect.bisect_right(self.stamps, t)
        return self.positions[i - 1] if i else self.setup_position

    @property
    def last_position(self) -> int:
        return self.positions[-1] if self.positions else self.setup_position

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
        if len(self.stamps) < 2:
            return 0.0
        span = self.stamps[-1] - self.stamps[0]
        return (self.positions[-1] - self.positions[0]) / span if span > 0 else 0.0


# ---------------------------------------------------------------------------
# Frames: what the terminal would show
# ---------------------------------------------------------------------------

_ESCAPE = re.compile(r"\x1b(?:\[([0-9;?]*)([A-Za-z])|\][^\x07\x1b]*(?:\x07|\x1b\\)|[()][A-Za-z0-9])")


class VirtualTerminal:
    """A grid of characters fed with what the driver would write (cursor moves and text)."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.rows = [[" "] * width for _ in range(height)]

    def feed(self, data: str) -> None:
        x = y = pos = 0
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
            if part and 0 <= y < self.height and 0 <= x < self.width:
                end = min(self.width, x + len(part))
                self.rows[y][x:end] = part[: end - x]
            x += len(part)
        return x, y

    def text(self, y: int, x0: int = 0, x1: int | None = None) -> str:
        if not 0 <= y < self.height:
            return ""
        return "".join(self.rows[y][max(0, x0) : self.width if x1 is None else x1])


class FrameWatch:
    """Wraps `app._display` (instance only): encodes each frame like the driver, keeps a virtual screen."""

    def __init__(self, app: Any) -> None:
        from textual._compositor import CompositorUpdate, LayoutUpdate

        self.vt = VirtualTerminal(*SIZE)
        self.frames: list[float] = []
        self.full_frames: list[float] = []  # whole-screen repaints (after a layout refresh)
        self.encode_s = self.parse_s = 0.0
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[float]]] = []
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
                check, future = waiter
                shown = False
                if not future.done():
                    with contextlib.suppress(Exception):
                        shown = check()
                    if not shown:
                        continue
                    future.set_result(t1)
                self._waiters.remove(waiter)

        app._display = display

    def expect(self, check: Callable[[], bool]) -> asyncio.Future[float]:
        """A future set to the time of the first frame after now for which `check()` is true."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiters.append((check, future))
        return future

    async def shown(self, check: Callable[[], bool], timeout: float) -> None:
        """Return once the screen shows what `check` looks for (now, or after a later frame)."""
        with contextlib.suppress(Exception):
            if self.frames and check():
                return
        await asyncio.wait_for(self.expect(check), timeout)

    def region_text(self, region: Any) -> list[str]:
        return [self.vt.text(y, region.x, region.right) for y in range(region.y, region.bottom)]

    def shows(self, region: Any, pattern: str) -> bool:
        """Whether the top row of `region` (a pane's title) matches `pattern`."""
        return bool(re.search(pattern, self.vt.text(region.y, region.x, region.right)))

    def stats(self, since: float, until: float) -> dict[str, Any]:
        total = len(self.frames) or 1
        frames = sum(1 for t in self.frames if since <= t <= until)
        return {
            "frames": frames,
            "frames_per_s": frames / max(until - since, 1e-9),
            "full_screen_frames": sum(1 for t in self.full_frames if since <= t <= until),
            "encode_us_per_frame": self.encode_s / total * 1e6,
            "virtual_terminal_us_per_frame": self.parse_s / total * 1e6,
        }


# ---------------------------------------------------------------------------
# The two apps under load: the console, and the stock-Log baseline
# ---------------------------------------------------------------------------


class ConsoleUnderTest:
    """The real console, pointed at the demo runtime's workers; the pictures strip shown
    (`pictures`) or hidden through its settings file, as an operator's `v` leaves it."""

    name = "console"

    def __init__(self, db: Path, pictures: bool = True) -> None:
        import json

        from tui.app import AgentDeckApp
        from tui.backend import open_backend

        settings = db.with_suffix(".settings.json")
        settings.write_text(json.dumps({"pictures": pictures}))
        self.pictures = pictures
        self.app = AgentDeckApp(lambda: open_backend(db, background=True), settings_file=settings)
        self.frames = FrameWatch(self.app)
        self.reloads = 0
        self.picture_ms: list[float] = []  # wall time of each fleet_picture read

    async def settle(self, workers: int, timeout: float = 60.0) -> None:
        """Backend open, the demo runtime selected, its workers listed, the event log loaded."""
        app = self.app
        await _until(lambda: app.main_screen is not None and app.main.runtimes_pane.row_count >= 2,
                     timeout)
        main = app.main
        main.runtimes_pane.select_runtime(LOAD_RUNTIME)
        await _until(
            lambda: main.selected_runtime == LOAD_RUNTIME and main.workers_table.row_count >= workers
            and main.event_log.loaded and main.transcript.ref is not None,
            timeout,
        )
        main.workers_table.move_cursor(row=0)
        main.workers_table.focus()
        log = main.event_log
        original = log.reload

        def counting(*args: Any, **kwargs: Any) -> Any:
            self.reloads += 1
            return original(*args, **kwargs)

        log.reload = counting  # type: ignore[method-assign]
        await self.frames.shown(lambda: self.shows("w-1"), timeout)
        strip = main.pictures
        read = strip._read

        async def timed(now_us: int) -> Any:
            t0 = time.perf_counter()
            try:
                return await read(now_us)
            finally:
                self.picture_ms.append((time.perf_counter() - t0) * 1000)

        strip._read = timed
        if self.pictures:
            await _until(lambda: strip.reads >= 1, timeout)

    def applied(self) -> int:
        """The newest position applied to the event log's window."""
        window = self.app.main.event_log.window
        return window[-1].position if window else 0

    def shows(self, worker_id: str) -> bool:
        return self.frames.shows(self.app.main.transcript.region, rf"Transcript — {worker_id}(?!\d)")

    def details(self) -> dict[str, Any]:
        feed = self.app.feed
        buffer = feed.buffer if feed is not None else None  # one console feed for every pane
        strip = self.app.main.pictures
        return {
            "pictures_shown": bool(strip.display),
            "pictures_reads": strip.reads,
            "pictures_read_ms": latency_ms([ms / 1000 for ms in self.picture_ms]),
            "event_log_reloads": self.reloads,
            "event_log_window": self.app.main.event_log.window_size,
            "feed_batches": feed.batches if feed is not None else None,
            "feed_buffer_pushed": getattr(buffer, "pushed_total", None),
            "feed_buffer_dropped": getattr(buffer, "dropped_total", None),
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
            # An observer (watched, no writer, no indexer): the path from the file to the
            # subscription is the console's, and a starved baseline cannot hold the write lock.
            self.store = await EventStore.open(db, read_only=True)
            widget = self.query_one(Log)
            widget.border_title = "selected w-1"
            widget.focus()
            self.run_worker(self._feed(self.store, widget), group="feed")

        async def _feed(self, store: EventStore, widget: Log) -> None:
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

        return self.frames.shows(self.app.query_one(Log).region, rf"selected {worker_id}(?!\d)")

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


class LoopWatch:
    """What the event loop went through during the load: stalls and GC pauses.

    A task sleeping 10 ms at a time records how late it wakes; `gc.callbacks`
    times every collection.
    """

    def __init__(self, app: Any) -> None:
        self.lags = array("d")  # compact: this process's RSS is measured
        self.gc: list[tuple[int, float]] = []  # (generation, seconds)
        self._active, self._gc_start = False, 0.0
        self._task: asyncio.Task[None] | None = None

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

    async def stop(self, seconds: float) -> dict[str, Any]:
        self._active = False
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._on_gc)
        if self._task is not None:
            await self._task
        lag = latency_ms(self.lags)
        pauses = [d for _, d in self.gc]
        full = [d for g, d in self.gc if g == 2]
        return {
            "loop_lag_ms": {k: lag[k] for k in ("p50", "p99", "max")},
            "loop_stalls_over_50ms": sum(1 for x in self.lags if x > 0.05),
            "gc_collections": len(pauses),
            "gc_ms_total": sum(pauses) * 1000,
            "gc_ms_max": max(pauses, default=0.0) * 1000,
            "gc_full_collections": len(full),
            "gc_full_ms_max": max(full, default=0.0) * 1000,
        }


@dataclass
class LiveRun:
    name: str
    target_rate: float
    seconds: float
    early_s: float
    source_rate: float = 0.0
    source_events: int = 0
    source_cpu_s: float = 0.0
    source_locked: int = 0
    applied_rate: float = 0.0
    applied_events: int = 0
    backlog: list[tuple[float, int]] = field(default_factory=list)  # (s since go, events)
    keys: list[float] = field(default_factory=list)
    key_timeouts: int = 0
    idle_keys: list[float] = field(default_factory=list)
    rss: list[tuple[float, float]] = field(default_factory=list)  # (s since go, MiB)
    rss_before_mb: float = 0.0
    loop_cpu_s: float = 0.0
    process_cpu_s: float = 0.0
    catch_up_s: float | None = None
    frames: dict[str, Any] = field(default_factory=dict)
    loop: dict[str, Any] = field(default_factory=dict)
    app: dict[str, Any] = field(default_factory=dict)
    loadavg: list[float | None] = field(default_factory=list)  # 1-minute load at go and at end

    def backlog_trend(self) -> float:
        """Least-squares slope of the backlog over the load, events per second (0: flat)."""
        pts, n = self.backlog, len(self.backlog)
        if n < 3:
            return 0.0
        mx, my = sum(t for t, _ in pts) / n, sum(b for _, b in pts) / n
        den = sum((t - mx) ** 2 for t, _ in pts)
        return sum((t - mx) * (b - my) for t, b in pts) / den if den else 0.0

    def rss_peak(self, until: float) -> float:
        return max((m for t, m in self.rss if t <= until), default=float("nan"))

    def rss_at(self, when: float) -> float:
        """The sample taken closest to `when` seconds into the load."""
        return min(self.rss, key=lambda s: abs(s[0] - when))[1] if self.rss else float("nan")

    def summary(self) -> dict[str, Any]:
        backlog = [b for _, b in self.backlog]
        per_event = 1e6 / self.applied_events if self.applied_events else float("nan")
        early, whole = self.rss_peak(self.early_s), self.rss_peak(self.seconds + 1)
        half = self.rss_peak(self.seconds / 2)  # a leak keeps growing past it; a warm-up does not
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
            "backlog_max": max(backlog, default=float("nan")),
            "backlog_at_end": backlog[-1] if backlog else float("nan"),
            "backlog_trend_events_per_s": self.backlog_trend(),
            "catch_up_s": self.catch_up_s,
            "key_ms": latency_ms(self.keys),
            "key_timeouts": self.key_timeouts,
            "idle_key_ms": latency_ms(self.idle_keys),
            "rss_before_load_mb": self.rss_before_mb,
            "rss_peak_early_mb": early,
            "rss_peak_all_mb": whole,
            "rss_growth_pct": (whole / early - 1) * 100 if early else float("nan"),
            "rss_peak_first_half_mb": half,
            "rss_growth_second_half_pct": (whole / half - 1) * 100 if half else float("nan"),
            "rss_at_early_mb": self.rss_at(self.early_s),
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
    """Press the key that selects `worker_id`; seconds until a frame shows it (None: timeout).

    Pilot.press is not awaited for the figure: under constant load its
    wait_for_idle waits its 1 s maximum.
    """
    shown = target.frames.expect(lambda: target.shows(worker_id))
    t0 = time.monotonic()
    presses.append(asyncio.create_task(pilot.press("j" if worker_id == "w-2" else "k")))
    try:
        return float(await asyncio.wait_for(shown, KEY_TIMEOUT_S)) - t0
    except TimeoutError:
        return None


async def live_phase(name: str, work: Path, size: Sizes, say: Say) -> LiveRun:
    db = work / f"live-{name}.db"
    run = LiveRun(name, size.rate, size.load_s, size.early_s)
    child = LoadChild(db, size.rate, size.load_s, size.load_workers, seed=11)
    try:
        await child.ready()
        target = (
            ConsoleUnderTest(db, pictures=name == "console") if name.startswith("console")
            else LogUnderTest(db)
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
            loop_cpu0, cpu0, applied0 = time.thread_time(), time.process_time(), target.applied()
            watch = LoopWatch(app)
            watch.start()
            run.loadavg.append(loadavg())
            child.go()
            t_go = time.monotonic()
            end = t_go + size.load_s

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
                    run.key_timeouts += took is None
                    run.keys.append(KEY_TIMEOUT_S if took is None else took)

            await asyncio.gather(sample(), keys())
            t_end = time.monotonic()
            run.loadavg.append(loadavg())
            run.loop = await watch.stop(t_end - t_go)
            run.loop_cpu_s = time.thread_time() - loop_cpu0
            run.process_cpu_s = time.process_time() - cpu0
            run.applied_events = target.applied() - applied0
            run.applied_rate = run.applied_events / (t_end - t_go)
            run.rss.append((t_end - t_go, rss_mb()))
            run.frames = target.frames.stats(t_go, t_end)
            # Catch-up: from the load's last commit until the app has applied it.
            deadline = t_end + min(CATCH_UP_TIMEOUT_S, max(5.0, size.load_s / 2))
            while time.monotonic() < deadline:
                if child.finished_now() and target.applied() >= child.last_position:
                    run.catch_up_s = max(0.0, time.monotonic() - child.stamps[-1])
                    break
                await asyncio.sleep(0.02)
            await asyncio.gather(*presses, return_exceptions=True)
            run.app = target.details()
            await target.wind_down()
    finally:
        await child.close()
    run.source_rate, run.source_events = child.source_rate(), child.sent
    run.source_cpu_s, run.source_locked = child.cpu_s, child.locked
    say(
        f"  {name}: source {run.source_rate:,.0f}/s, applied {run.applied_rate:,.0f}/s, backlog"
        f" p99 {percentile([b for _, b in run.backlog], 99):,.0f}, key p50/p99"
        f" {percentile(run.keys, 50) * 1000:.0f}/{percentile(run.keys, 99) * 1000:.0f} ms,"
        f" RSS {run.rss_peak(size.early_s):.0f} -> {run.rss_peak(size.load_s + 1):.0f} MiB"
    )
    return run


# ---------------------------------------------------------------------------
# First paint: the cached databases, then the console opened on a copy
# ---------------------------------------------------------------------------


def deck_path(events: int, workers: int) -> Path:
    return data_dir() / f"console-{events}e-{workers}w-g{GENERATOR_VERSION}-v{LATEST_VERSION}.db"


def deck_batches(events: int, workers: int, seed: int, batch: int) -> Iterator[list[Row]]:
    """Runtime `local` with `workers` demo workers taking turns at random, ~1 s apart.

    Every worker is created first; at the end each run in progress is finished,
    so the log has no open run and opening it fails nothing (a few events over
    `events`).
    """
    rng = random.Random(seed)
    at = [datetime(2026, 1, 5, tzinfo=UTC)]

    def clock() -> datetime:
        at[0] += timedelta(microseconds=rng.randint(1_000, 2_000_000))
        return at[0]

    out: list[Row] = []
    position = 0

    def add(event: NewEvent) -> str:
        nonlocal position
        position += 1
        out.append(row_of(position, DECK_RUNTIME, position, event))
        return event.kind

    for event in setup_events(DECK_RUNTIME, workers, clock):
        add(event)
    demo = [demo_worker(i, random.Random(rng.random()), clock) for i in range(1, workers + 1)]
    last_kind = [RUN_ENDS[0]] * workers
    while position < events:
        w = rng.randrange(workers)
        last_kind[w] = add(next(demo[w]))
        if len(out) >= batch:
            yield out
            out = []
    for w, worker in enumerate(demo):
        while last_kind[w] not in RUN_ENDS:
            last_kind[w] = add(next(worker))
    yield out


def _db_facts(path: Path) -> dict[str, Any] | None:
    """Events, workers, runs and bytes of a finished database; None if it is not one."""
    try:
        conn = open_reader(path)
    except Exception:
        return None
    try:
        def one(sql: str) -> Any:
            return conn.execute(sql).fetchone()[0]

        last = one("SELECT coalesce(max(position), 0) FROM events")
        if one("SELECT indexed_position FROM search_state") != last:
            return None
        return {"events": last, "workers": one("SELECT count(*) FROM workers"),
                "runs": one("SELECT count(*) FROM runs"), "bytes": path.stat().st_size}
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def ensure_deck(events: int, workers: int, say: Say) -> tuple[Path, float]:
    """The cached database (built now if missing) and the seconds spent building it."""
    path = deck_path(events, workers)
    facts = _db_facts(path) if path.exists() else None
    if facts and facts["events"] >= events and facts["workers"] == workers:
        return path, 0.0
    remove_db(path)
    say(f"  building the {events:,}-event, {workers:,}-worker database (once; cached as {path})")
    started = now()
    build_cached_db(path, deck_batches(events, workers, seed=4, batch=20_000), say)
    return path, now() - started


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
        backend = await open_backend(db, background=True)
        marks["backend"] = time.monotonic()
        return backend

    app = AgentDeckApp(factory, settings_file=None)
    frames = FrameWatch(app)

    def painted() -> bool:
        if app.main_screen is None:
            return False
        workers = frames.region_text(app.main.workers_table.content_region)
        events = frames.region_text(app.main.event_log.content_region)
        return any(map(_WORKER_ID_CELL.search, workers)) and any(map(_EVENT_TIME.search, events))

    shown = frames.expect(painted)
    async with app.run_test(size=SIZE):
        t1 = await asyncio.wait_for(shown, PAINT_TIMEOUT_S)
    first = frames.frames[0] - t0 if frames.frames else None
    return Paint(t1 - t0, first, marks["backend"] - t0 if "backend" in marks else None)


async def first_paint_on(name: str, cached: Path, work: Path, repeats: int, say: Say) -> dict[str, Any]:
    copy = work / f"paint-{name}.db"
    await asyncio.to_thread(shutil.copyfile, cached, copy)
    facts = _db_facts(copy) or {}
    paints: list[Paint] = []
    try:
        for _ in range(repeats):
            gc.collect()
            paints.append(await open_console(copy))
            gc.collect()
    finally:
        remove_db(copy)
    ms = [p.painted_s * 1000 for p in paints]
    say(f"  first paint on {name} ({facts.get('events', 0):,} events,"
        f" {facts.get('workers', 0):,} workers): {', '.join(f'{m:.0f}' for m in ms)} ms")
    return {
        "ms": median(ms),
        "runs_ms": ms,
        "first_frame_ms": median([p.first_frame_s * 1000 for p in paints if p.first_frame_s]),
        "backend_open_ms": median([p.backend_open_s * 1000 for p in paints if p.backend_open_s]),
        **facts,
    }


def import_ms() -> float:
    """Milliseconds a fresh interpreter takes to import the console (not in first paint)."""
    code = ("import time; t = time.perf_counter(); import tui.app, tui.backend;"
            " print((time.perf_counter() - t) * 1000)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=child_env(), check=True)
    return float(out.stdout.strip())


# ---------------------------------------------------------------------------
# The program
# ---------------------------------------------------------------------------


async def run_console_bench(
    quick: bool, say: Say | None = None, scale: float = 1.0
) -> dict[str, Any]:
    """Measure every figure; the JSON-able result (figures, baselines, ratios, notes)."""
    say = say or (lambda _m: None)
    size = sizes(quick, scale)
    started = now()
    root = data_dir()
    work = Path(tempfile.mkdtemp(prefix="console-", dir=root))
    try:
        say(f"live load: {size.rate:,.0f} events/s from {size.load_workers} demo workers for"
            f" {size.load_s:g}s, console then stock Log")
        console = await live_phase("console", work, size, say)
        gc.collect()
        plain = await live_phase("console-no-pictures", work, size, say)
        gc.collect()
        log = await live_phase("log", work, size, say)
        gc.collect()
        say("first paint")
        decks = {
            name: await asyncio.to_thread(ensure_deck, events, workers, say)
            for name, events, workers in (
                ("big", size.paint_events, size.paint_workers),
                ("small", size.small_events, size.small_workers),
                ("many_workers", 3 * size.paint_workers + 1, size.paint_workers),
            )
        }
        paint = {
            name: await first_paint_on(name, decks[name][0], work, size.paint_repeats, say)
            for name in ("small", "many_workers", "big")
        }
        paint["big"]["import_ms"] = await asyncio.to_thread(import_ms)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    notes = _notes(size, console, log, paint)
    notes["pictures"] = (
        "`console` runs with the pictures strip shown (re-read from the store every"
        " 1.5 s during the load: app.pictures_reads), `console-no-pictures` with it hidden, in"
        " the same run on their own load child each; every other figure is the strip-on console's"
    )
    notes["datasets"] = {n: {"path": str(p), "built_now_s": s} for n, (p, s) in decks.items()}
    c_sum, b_sum, p_sum = console.summary(), log.summary(), plain.summary()
    figures = _figures(size, c_sum, b_sum, paint)
    figures["pictures_strip_key_latency_p99"] = _pictures_figure(c_sum, p_sum)
    return {
        "suite": "console",
        "quick": quick,
        "scale": scale,
        "sizes": size.__dict__,
        "machine": machine_info(root),
        "elapsed_s": now() - started,
        "figures": figures,
        "console": c_sum,
        "console_no_pictures": p_sum,
        "baseline_log": b_sum,
        "notes": notes,
    }


def _figures(
    size: Sizes, c: dict[str, Any], b: dict[str, Any], paint: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    src = c["source_events_per_s"]
    big, small, many = paint["big"], paint["small"], paint["many_workers"]
    early, total = size.early_s, size.load_s
    growth, base_growth = c["rss_growth_pct"], b["rss_growth_pct"]

    def both(*keys: str, side: dict[str, Any] = c, prefix: str = "") -> dict[str, Any]:
        return {prefix + k: side[k] for k in keys}

    return {
        "events_applied_per_s": figure(
            value=c["applied_events_per_s"], unit="events/s",
            desc=f"events the console applied to its event log per second while a separate process"
            f" committed demo-shaped events at {src:,.0f}/s (target {size.rate:,.0f}/s) for"
            f" {total:g}s to the same file (seen through the store's change feed)",
            baseline=b["applied_events_per_s"],
            baseline_desc=f"a minimal Textual app with the stock Log (max_lines"
            f" {LOG_BASELINE_LINES:,}), one write_line per event from the same store subscription,"
            f" its own load child at {b['source_events_per_s']:,.0f}/s",
            goal=Goal("value", ">=", 0.95 * src, f"keeps pace: >= 95% of the source's {src:,.0f}/s"),
            source_events_per_s=src,
            source_reached_target=c["source_reached_target"],
            baseline_source_events_per_s=b["source_events_per_s"],
            catch_up_s=c["catch_up_s"],
            baseline_catch_up_s=b["catch_up_s"],
        ),
        "backlog_p99": figure(
            value=c["backlog_p99"], unit="events (p99)",
            desc=f"committed by the load but not yet in the event log's window, sampled every"
            f" {SAMPLE_S * 1000:.0f} ms during the load (includes the change feed's wake-up and the"
            " console feed's pacing)",
            baseline=b["backlog_p99"],
            baseline_desc="the same for the stock Log app (last position written with write_line)",
            goal=Goal("value", "<=", src, f"bounded: p99 <= 1 s of load ({src:,.0f} events)"),
            **both("backlog_p50", "backlog_max", "backlog_at_end", "backlog_trend_events_per_s"),
            **both("backlog_p50", "backlog_max", "backlog_at_end", "backlog_trend_events_per_s",
                   side=b, prefix="baseline_"),
        ),
        "key_latency_p99": figure(
            value=c["key_ms"]["p99"], unit="ms (p99)",
            desc=f"Pilot.press('j'/'k') in the workers table every {KEY_EVERY_S:g}s under the load,"
            " until a frame shows the transcript titled with the newly selected worker (timeouts"
            f" count as {KEY_TIMEOUT_S:g}s)",
            baseline=b["key_ms"]["p99"],
            baseline_desc="the same keys in the stock Log app, where they retitle the Log",
            goal=Goal("value", "<=", 100.0, "p99 <= 100 ms"),
            **{k: c["key_ms"][k] for k in ("p50", "p90", "max")},
            samples=c["key_ms"]["n"], timeouts=c["key_timeouts"],
            idle_p50=c["idle_key_ms"]["p50"], idle_p99=c["idle_key_ms"]["p99"],
            baseline_p50=b["key_ms"]["p50"], baseline_max=b["key_ms"]["max"],
            baseline_timeouts=b["key_timeouts"], baseline_idle_p50=b["idle_key_ms"]["p50"],
        ),
        "peak_rss_growth": figure(
            value=growth, unit=f"% (peak RSS 0-{total:g}s over 0-{early:g}s)",
            desc=f"growth of this process's peak VmRSS from the first {early:g}s of the load to all"
            f" {total:g}s, with the console running (flat = bounded windows, no leak)",
            baseline=base_growth,
            baseline_desc="the same for the stock Log app (run after the console in the same"
            " process: its numbers start from the heap the console left)",
            goal=Goal("value", "<=", 5.0, "flat: <= 5% growth"),
            ratio=(growth + 1) / (base_growth + 1),
            ratio_desc="(growth + 1) / (baseline growth + 1): growth is near 0 on both sides",
            **both("rss_peak_early_mb", "rss_peak_all_mb", "rss_at_early_mb", "rss_at_end_mb",
                   "rss_before_load_mb", "rss_peak_first_half_mb", "rss_growth_second_half_pct"),
            **both("rss_peak_early_mb", "rss_peak_all_mb", side=b, prefix="baseline_"),
        ),
        "first_paint": figure(
            value=big["ms"], unit="ms (median)",
            desc=f"AgentDeckApp constructed on a copy of a database of {big['events']:,} events and"
            f" {big['workers']:,} workers (hosting `local`, as `agentdeck --db X` does) until the"
            " first frame showing worker rows and event rows; imports excluded",
            baseline=small["ms"],
            baseline_desc=f"the same on {small['events']:,} events and {small['workers']} workers",
            goal=Goal("value", "<=", 1000.0, "<= 1 s"),
            events=big["events"], workers=big["workers"],
            baseline_events=small["events"], baseline_workers=small["workers"],
            runs_ms=big["runs_ms"], baseline_runs_ms=small["runs_ms"],
            backend_open_ms=big["backend_open_ms"], first_frame_ms=big["first_frame_ms"],
            baseline_backend_open_ms=small["backend_open_ms"],
            import_ms=big["import_ms"],
            import_desc="what a fresh `agentdeck` process spends importing tui.app before it can"
            " construct the App (measured in a child interpreter; not in the figure)",
        ),
        "first_paint_vs_small": figure(
            value=big["ms"], unit="ms (median)",
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


def _pictures_figure(on: dict[str, Any], off: dict[str, Any]) -> dict[str, Any]:
    """Key press -> screen p99 and pace with the pictures strip shown against hidden."""
    return figure(
        value=on["key_ms"]["p99"], unit="ms (p99)",
        desc="key press -> screen p99 under the load with the pictures strip shown (it reads"
        " the store every 1.5 s); the same measure as key_latency_p99",
        baseline=off["key_ms"]["p99"],
        baseline_desc="the same console with the strip hidden (`v`), its own load child,"
        " same rate and duration",
        goal=Goal("value", "<=", 100.0, "p99 <= 100 ms with the strip on"),
        p50=on["key_ms"]["p50"], baseline_p50=off["key_ms"]["p50"],
        timeouts=on["key_timeouts"], baseline_timeouts=off["key_timeouts"],
        applied_events_per_s=on["applied_events_per_s"],
        source_events_per_s=on["source_events_per_s"],
        baseline_applied_events_per_s=off["applied_events_per_s"],
        baseline_source_events_per_s=off["source_events_per_s"],
        keeps_pace=on["applied_events_per_s"] >= 0.95 * on["source_events_per_s"],
        baseline_keeps_pace=off["applied_events_per_s"] >= 0.95 * off["source_events_per_s"],
        backlog_p99=on["backlog_p99"], baseline_backlog_p99=off["backlog_p99"],
        loop_busy_pct=on["loop_thread_busy_pct"],
        baseline_loop_busy_pct=off["loop_thread_busy_pct"],
        pictures_reads=on["app"].get("pictures_reads"),
        pictures_read_ms=on["app"].get("pictures_read_ms"),
    )


def _notes(
    size: Sizes, console: LiveRun, log: LiveRun, paint: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    notes: dict[str, Any] = {
        "method": (
            "Both apps run headless in this process via App.run_test(size=(120, 40)). Their load"
            " is a child process (python -m bench.console load) that takes the `demo` runtime's"
            " host lease, creates the workers, then appends builtin:demo-shaped events (each built"
            " through store.catalog.event; workers take turns at random, so runs interleave) with"
            " EventStore.append, paced every few ms to the target rate (group-committed,"
            " synchronous=FULL), and prints each commit's position and CLOCK_MONOTONIC time. The"
            " console opens the file like `agentdeck --db X` (hosting `local`, writable, watched,"
            " indexed), selects the `demo` runtime and focuses the workers table; it sees the load"
            " only through the store's change feed."
        ),
        "frames": (
            "App._display is wrapped on each app instance: every frame is encoded with"
            " CompositorUpdate.render_segments (the driver's work, minus the write) and applied to"
            " a 120x40 virtual terminal. A key's latency runs from just before Pilot.press posts"
            " it to the first frame showing the change in the widget's region; first paint runs"
            " from constructing the App to the first frame showing a worker id in the workers"
            " table and an event time in the event log."
        ),
        "baseline_log": (
            "Textual's Log.write_lines starts a thread worker (_update_size) per call, so one"
            f" write_line per event costs a thread per event; its feed yields every {YIELD_EVERY}"
            " lines so keys and frames get through. Its store is opened read-only (same reader,"
            " change feed and watcher as the console's; no writer, no indexer)."
        ),
        "loop": (
            "loop_lag_ms: how late a task sleeping 10 ms wakes; gc_*: every collection, timed."
        ),
        "rss": (
            f"VmRSS of this process every {RSS_SAMPLE_S:g}s during the load; early = peak over the"
            f" first {size.early_s:g}s, all = peak over {size.load_s:g}s. The second half's growth"
            f" (peak over {size.load_s:g}s against the first {size.load_s / 2:g}s) tells a leak,"
            " which keeps growing, from bounded windows and caches filling and the allocator's"
            " high-water mark, which level off."
        ),
        "cpu": {
            "console_loop_thread_busy_pct": 100 * console.loop_cpu_s / console.seconds,
            "console_process_cpu_s": console.process_cpu_s,
            "log_loop_thread_busy_pct": 100 * log.loop_cpu_s / log.seconds,
            "log_process_cpu_s": log.process_cpu_s,
            "console_load_child_cpu_s": console.source_cpu_s,
            "log_load_child_cpu_s": log.source_cpu_s,
        },
        "first_paint": paint,
    }
    short = [r.name for r in (console, log) if r.source_rate < 0.95 * r.target_rate]
    if short:
        notes["warning"] = (
            f"the load did not reach {size.rate:,.0f} events/s for {', '.join(short)} (see"
            " source_events_per_s): the machine was short of CPU; the figures hold for the rate"
            " achieved"
        )
    return notes


async def run_console_command(quick: bool, json_only: bool, scale: float = 1.0) -> int:
    """`agentdeck bench console [--json] [--quick]`: JSON on stdout, progress on stderr."""
    return finish(await run_console_bench(quick, Progress(quiet=json_only), scale), json_only)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m bench.console [--json] [--quick] [--scale X]` (and the load child)."""
    import argparse

    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["load"]:
        if len(args) != 6:
            print("usage: python -m bench.console load DB RATE SECONDS WORKERS SEED", file=sys.stderr)
            return 2
        _, db, rate, seconds, workers, seed = args
        asyncio.run(_load_main(db, float(rate), float(seconds), int(workers), int(seed)))
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.console")
    parser.add_argument("--json", action="store_true", help="only the JSON on stdout")
    parser.add_argument("--quick", action="store_true", help="5 s of load, a 100k-event database")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the sizes")
    opts = parser.parse_args(args)
    return asyncio.run(run_console_command(opts.quick, opts.json, opts.scale))


if __name__ == "__main__":
    raise SystemExit(main())
