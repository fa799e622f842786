"""The pictures: the strip on the main screen (`v`) and the worker view's picture of its runs.

Drawing is checked on hand-made records (store.pictures); the console on a
real seeded database, SQLite and PostgreSQL (tests.ui.scenes.fleet_history:
an hour of a fleet, seen at a fixed now), must show what that history says,
read back from the store, not from what arrived live.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

from store.catalog import CATALOG, level_of
from store.models import RunStatus, Severity, WorkerRef
from store.pictures import (
    ERROR_WINDOW_MIN,
    RATE_WINDOW_S,
    FleetPicture,
    LevelCounts,
    ProfileDurations,
    RunPoint,
    WorkerPicture,
)
from tests.ui.fake_backend import FakeBackend
from tests.ui.rendered import pane_rows
from tests.ui.scenes import FLEET, PICTURES_NOW, fleet_history, pictures_app
from tests.ui.waits import until
from tui.app import AgentDeckApp
from tui.screens.help import HelpScreen
from tui.screens.worker import WorkerScreen
from tui.widgets.pictures import (
    HEIGHT,
    PicturesStrip,
    bucket,
    rate,
    seconds,
    span_text,
    spark,
    strip_lines,
)
from tui.widgets.worker_picture import RunsPicture, bars, picture_lines

SEEN_AT = PICTURES_NOW + timedelta(seconds=2)  # the scene console's clock


def _picture(**changes: object) -> FleetPicture:
    base: dict[str, object] = {
        "now_us": 0,
        "per_second": tuple(
            LevelCounts(info=100 + i, warning=i % 30 == 0, error=5 * (i > 290))
            for i in range(RATE_WINDOW_S)
        ),
        "errors_per_minute": tuple(i // 10 for i in range(ERROR_WINDOW_MIN)),
        "runs_open": {RunStatus.EXECUTING: 12, RunStatus.CREATED: 40},
        "runs_ended": {RunStatus.COMPLETED: 1340, RunStatus.FAILED: 12},
        "durations": (
            ProfileDurations("builtin:demo", 1200, 1.25, 3.4, 10),
            ProfileDurations("reviewer", 20, 0.4, 0.9, 2),
        ),
    }
    base.update(changes)
    return FleetPicture(**base)  # type: ignore[arg-type]


# -- drawing, from hand-made records -------------------------------------------------


def test_sparkline_cells_scale_to_the_peak_and_show_any_non_zero_value() -> None:
    assert spark([0, 1, 4, 8]) == " ▁▄█"
    assert spark([0, 0]) == "  "
    assert spark([1, 1000]) == "▁█"  # one error among thousands still shows


def test_buckets_keep_the_newest_slot_whole_and_read_per_slot() -> None:
    assert bucket([1, 2, 3, 4, 5, 6], 3) == [1.5, 3.5, 5.5]
    assert bucket([1, 2, 3, 4, 5], 2) == [1.5, 4.0]  # the oldest cell takes what is left
    assert bucket([7.0] * 300, 1000) == [7.0] * 300


def test_figures_fit_five_cells() -> None:
    assert [rate(v) for v in (0, 7.5, 980, 9_840, 9_990, 12_300, 1_234_000)] == [
        "0", "7.5", "980", "9.8k", "10k", "12k", "1.2M",
    ]
    assert [seconds(v) for v in (0.42, 12.4, 210, 1500, 5400)] == [
        "0.4s", "12s", "3.5m", "25m", "1.5h",
    ]


def test_the_strip_fits_its_width_at_80_and_120_columns() -> None:
    for width in (78, 118):
        lines = [line.plain for line in strip_lines(_picture(), width)]
        assert len(lines) == HEIGHT
        assert {len(line) for line in lines} == {width}
        text = "\n".join(lines)
        assert "◑12" in text and "…40" in text  # open runs, with the console's marks
        assert "✓1340" in text and "✗12" in text  # ended in the last hour
        assert "builtin:" in text and "reviewer" in text and "1.2s" in text and "3.4s" in text


def test_a_picture_of_only_the_newest_runs_says_how_far_back_it_reaches() -> None:
    whole = "\n".join(line.plain for line in strip_lines(_picture(), 118))
    assert "ended 1h" in whole and "run time 1h" in whole
    capped = "\n".join(line.plain for line in strip_lines(_picture(ended_span_s=754), 118))
    assert "ended 12m" in capped and "run time 12m" in capped and "1h" not in capped
    assert [span_text(s) for s in (3600, 7200, 3599, 60, 59)] == ["1h", "2h", "59m", "1m", "59s"]


def test_every_line_is_exactly_as_wide_as_the_widget_at_any_width() -> None:
    s = 1_000_000
    runs = WorkerPicture(now_us=5 * s, runs=(RunPoint("r", RunStatus.EXECUTING, s, None),))
    for width in (0, 1, 10, 40, 300):
        for fleet in (_picture(), None):
            assert [len(line.plain) for line in strip_lines(fleet, width)] == [width] * HEIGHT
        for worker in (runs, None, WorkerPicture(now_us=0, runs=())):
            assert {len(line.plain) for line in picture_lines(worker, width, {})} == {width}


def test_each_level_has_its_own_row_and_figures() -> None:
    info, warning, error = (line.plain for line in strip_lines(_picture(), 118)[1:])
    assert info.startswith("info") and warning.startswith("warn") and error.startswith("error")
    # Errors only in the last ten seconds: the row is blank but for its right end.
    spark_part = error.split("│")[0]
    assert spark_part[6:-20].strip() == ""
    assert "█" in spark_part[-20:]
    # "now" is the mean over the last ten full seconds (the current one is partial).
    assert " 394 " in info  # (100 + 289 ... 100 + 298) / 10 = 393.5


def test_an_empty_store_draws_empty_pictures() -> None:
    empty = _picture(
        per_second=(LevelCounts(),) * RATE_WINDOW_S,
        errors_per_minute=(0,) * ERROR_WINDOW_MIN,
        runs_open={},
        runs_ended={},
        durations=(),
    )
    text = "\n".join(line.plain for line in strip_lines(empty, 118))
    assert "no run ended in 1h" in text
    assert "◑0" in text and "✓0" in text
    assert strip_lines(None, 60)[0].plain.startswith("reading the store")


def test_run_bars_are_as_tall_as_the_runs_took() -> None:
    assert bars([1, 2, 4], 1) == ["▂▄█"]
    top, bottom = bars([1, 4], 2)
    assert (top, bottom) == (" █", "▄█")  # 1/4 of 16 eighths: half the bottom cell


def test_the_worker_picture_counts_outcomes_and_draws_open_runs_so_far() -> None:
    s = 1_000_000
    runs = (
        RunPoint("w-1.r1", RunStatus.COMPLETED, 0, 2 * s),
        RunPoint("w-1.r2", RunStatus.FAILED, 3 * s, 9 * s),
        RunPoint("w-1.r3", RunStatus.COMPLETED, 10 * s, 14 * s),
        RunPoint("w-1.r4", RunStatus.EXECUTING, 15 * s, None),
    )
    lines = [line.plain for line in picture_lines(WorkerPicture(now_us=25 * s, runs=runs), 40, {})]
    assert lines[0].startswith("4 runs  ✓2 ✗1 ◑1")
    # 2, 6, 4 and 10 s (so far) on 24 eighths: 5, 15, 10 and 24, bottom row up.
    assert [line[:4] for line in lines[1:4]] == ["   █", " ▇▂█", "▅███"]
    assert "p50 4.0s" in lines[4] and "max 10s" in lines[4]
    assert {len(line) for line in lines} == {40}
    assert picture_lines(WorkerPicture(now_us=0, runs=()), 30, {})[0].plain.startswith("no runs")


# -- `v`, remembered ------------------------------------------------------------------


def _fake_app(settings: Path) -> tuple[AgentDeckApp, FakeBackend]:
    backend = FakeBackend()

    async def factory() -> FakeBackend:
        return backend

    return AgentDeckApp(factory, settings_file=settings), backend


def shown(strip: PicturesStrip) -> bool:
    """Whether the strip is shown (read afresh: a key changes it between two looks)."""
    return bool(strip.display)


async def test_v_shows_and_hides_the_strip_and_the_choice_outlives_the_console(
    tmp_path: Path,
) -> None:
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"theme": "textual-dark"}))
    app, _backend = _fake_app(settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.main_screen is not None)
        strip = app.main.query_one(PicturesStrip)
        assert not shown(strip)  # hidden until asked for
        await pilot.press("v")
        await until(pilot, lambda: strip.reads >= 1)
        assert shown(strip) and strip.region.height == HEIGHT
        assert pane_rows(app, strip)[0].startswith("events/s · 5 min")
        assert json.loads(settings.read_text()) == {"theme": "textual-dark", "pictures": True}
    app, _backend = _fake_app(settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.main_screen is not None)
        strip = app.main.query_one(PicturesStrip)
        assert shown(strip)
        await pilot.press("v")
        assert not shown(strip)
        assert json.loads(settings.read_text())["pictures"] is False


async def test_the_strip_reads_nothing_while_hidden_paused_or_covered(tmp_path: Path) -> None:
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"pictures": True}))
    app, _backend = _fake_app(settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.main_screen is not None)
        strip = app.main.query_one(PicturesStrip)
        await until(pilot, lambda: strip.reads >= 1)
        await pilot.pause(0.1)

        def reads_after_poll() -> int:
            before = strip.reads
            strip.poll()
            return strip.reads - before

        app.main.action_toggle_pause()
        await pilot.pause(0.1)
        assert not strip.live and reads_after_poll() == 0
        app.main.action_toggle_pause()
        await until(pilot, lambda: strip.live)
        app.push_screen(HelpScreen())
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert not strip.live and reads_after_poll() == 0
        app.pop_screen()
        await until(pilot, lambda: strip.live)
        before = strip.reads
        await until(pilot, lambda: strip.reads > before)  # caught up on coming back
        await pilot.press("v")
        assert not strip.live and reads_after_poll() == 0


# -- the console on an hour-old database ------------------------------------------------


def _expected(now: datetime) -> tuple[Counter[RunStatus], Counter[RunStatus], Counter[str]]:
    """From the history itself: runs open by status at `now`, runs ended in the hour before
    by outcome, and runs per profile that ended in that hour."""
    status: dict[str, RunStatus] = {}
    ended_at: dict[str, datetime] = {}
    profile_of: dict[str, str] = {}
    for event in fleet_history():
        if event.kind == "worker.created":
            profile_of[event.worker_id or ""] = str(event.payload["spec"]["profile"])
        run_status = CATALOG[event.kind].run_status
        if event.run_id is not None and run_status is not None:
            status[event.run_id] = run_status
            if run_status.terminal:
                ended_at[event.run_id] = event.at
    hour_ago = now - timedelta(hours=1)
    open_runs = Counter(s for s in status.values() if not s.terminal)
    ended = Counter(status[r] for r, at in ended_at.items() if at > hour_ago)
    per_profile = Counter(
        profile_of[r.partition(".")[0]] for r, at in ended_at.items() if at > hour_ago
    )
    return open_runs, ended, per_profile


async def test_the_strip_shows_the_last_hour_of_the_database_at_once(
    db_address: str | Path, tmp_path: Path
) -> None:
    app = pictures_app(db_address, folder=tmp_path / "scene")
    open_runs, ended, per_profile = _expected(SEEN_AT)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.main_screen is not None)
        strip = app.main.query_one(PicturesStrip)
        await until(pilot, lambda: strip.reads >= 1 and strip.picture is not None)
        await pilot.pause(0.1)
        text = "\n".join(pane_rows(app, strip))
        assert strip.picture is not None
        for status, count in open_runs.items():
            assert strip.picture.runs_open.get(status) == count
        for status, count in ended.items():
            assert strip.picture.runs_ended.get(status) == count
            assert f"{count}" in text
        assert {d.profile: d.runs for d in strip.picture.durations} == dict(per_profile)
        assert "builtin:demo" in text and "reviewer" in text and "coder" in text
        # The errors of the last five minutes (the run failures and the api.quota cluster).
        errors = sum(slot.error for slot in strip.picture.per_second)
        history = [e for e in fleet_history() if e.at > SEEN_AT - timedelta(seconds=RATE_WINDOW_S)]
        assert errors == sum(1 for e in history if level_of(e.kind, e.payload) is Severity.ERROR)
        error_row = pane_rows(app, strip)[3]
        assert error_row.startswith("error") and any(c in error_row for c in "▁▂▃▄▅▆▇█")


async def test_the_worker_view_draws_its_runs(tmp_path: Path) -> None:
    app = pictures_app(tmp_path / "scene" / "scene.db", shown=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.main_screen is not None)
        main = app.main
        await until(pilot, lambda: main.runtimes_pane.row_count >= 2)
        main.runtimes_pane.select_runtime(FLEET)
        await until(pilot, lambda: main.workers_table.runtime_id == FLEET
                    and main.workers_table.row_count == 6)
        main.workers_table.focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, WorkerScreen))
        screen = app.screen
        assert isinstance(screen, WorkerScreen) and screen.ref == WorkerRef(
            runtime_id=FLEET, worker_id="w-1"
        )
        picture = screen.query_one(RunsPicture)
        await until(pilot, lambda: picture.picture is not None)
        await pilot.pause(0.1)
        assert picture.picture is not None
        runs = picture.picture.runs
        assert runs and all(run.run_id.startswith("w-1.") for run in runs)
        assert [r.created_at_us for r in runs] == sorted(r.created_at_us for r in runs)
        rows = pane_rows(app, picture)
        shown = runs[-(picture.content_size.width):]
        done = sum(1 for r in shown if r.status is RunStatus.COMPLETED)
        assert rows[0].startswith(f"{len(shown)} runs") and f"✓{done}" in rows[0]
        assert rows[-1].lstrip().startswith("p50 ")


async def test_with_the_strip_shown_every_pane_keeps_rows_at_80x24(tmp_path: Path) -> None:
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"pictures": True}))
    app, _backend = _fake_app(settings)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.main_screen is not None)
        main = app.main
        await until(pilot, lambda: main.pictures.reads >= 1)
        await pilot.pause(0.1)
        assert main.pictures.region.height == HEIGHT
        assert {len(row) <= 78 for row in pane_rows(app, main.pictures)} == {True}
        assert main.workers_table.scrollable_content_region.height >= 3  # header + 2 workers
        assert main.transcript.scrollable_content_region.height >= 3
        assert main.event_log.scrollable_content_region.height >= 3
        footer_y = app.screen.size.height - 1
        assert main.event_log.region.bottom <= footer_y  # nothing pushed under the footer
