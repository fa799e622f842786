"""The console's screens as SVG files: `make screenshots` (python -m tests.ui.screenshots DIR).

Each scene is the seeded scene database plus the keys that bring a screen
up. The snapshot tests (tests/ui/test_snapshots.py) run the same scenes, so
what the README shows is what the tests pin.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Select

from tests.ui.scenes import scene_app
from tui.app import AgentDeckApp

Steps = Callable[[Pilot[int]], Awaitable[None]]


async def settled(pilot: Pilot[int], timeout: float = 15.0) -> None:
    """Wait until the scene is seeded and every pane has drawn it."""
    app = pilot.app
    assert isinstance(app, AgentDeckApp)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        main = app.main_screen
        if (
            main is not None
            and main.workers_table.row_count == 5
            and main.runtimes_pane.row_count == 2
            and main.transcript.entries
            and main.event_log.loaded
            and len(main.event_log.window) >= 49
        ):
            break
        await pilot.pause(0.05)
    else:
        raise TimeoutError("the scene did not settle")
    await pilot.pause(0.3)
    await pilot.wait_for_scheduled_animations()


async def steady(pilot: Pilot[int], timeout: float = 8.0) -> None:
    """Wait until three looks in a row, 0.15 s apart, show the same screen."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last, same = "", 0
    while same < 3 and loop.time() < deadline:
        await pilot.pause(0.15)
        now = pilot.app.export_screenshot()
        same = same + 1 if now == last else 0
        last = now


def _still(pilot: Pilot[int]) -> None:
    """Stop cursors blinking, so a picture does not depend on the moment it is taken."""
    for widget in pilot.app.screen.query("Input, TextArea"):
        widget.cursor_blink = False  # type: ignore[attr-defined]


async def _main(pilot: Pilot[int]) -> None:
    await settled(pilot)
    await pilot.press("down", "down")  # w-3: the worker that printed untrusted text
    await steady(pilot)


async def _worker_view(pilot: Pilot[int]) -> None:
    await settled(pilot)
    await pilot.press("enter")
    await steady(pilot)


async def _create_form_error(pilot: Pilot[int]) -> None:
    await settled(pilot)
    await pilot.press("n")
    await pilot.pause(0.3)
    pilot.app.screen.query_one("#cw-intent", Select).value = "task"
    await pilot.pause(0.1)
    await pilot.press("ctrl+s")
    _still(pilot)
    await steady(pilot)


async def _confirm(pilot: Pilot[int]) -> None:
    await settled(pilot)
    await pilot.press("c")
    await steady(pilot)


async def _filter_error(pilot: Pilot[int]) -> None:
    await settled(pilot)
    _still(pilot)
    await pilot.press("slash")
    await pilot.press(*"level:loud kind:run.*")
    await pilot.press("enter")
    await steady(pilot)


async def _help(pilot: Pilot[int]) -> None:
    await settled(pilot)
    await pilot.press("question_mark")
    await steady(pilot)


async def _diagnostics(pilot: Pilot[int]) -> None:
    await settled(pilot)
    await pilot.press("d")
    await steady(pilot)


@dataclass(frozen=True)
class Scene:
    size: tuple[int, int]
    steps: Steps
    theme: str | None = None
    app: Callable[[Path], AgentDeckApp] | None = None  # None: the seeded scene (scene_app)


SCENES: dict[str, Scene] = {
    "main": Scene((120, 40), _main),
    "main-80x24": Scene((80, 24), _main),
    "main-light": Scene((120, 40), _main, theme="textual-light"),
    "worker-view": Scene((120, 40), _worker_view),
    "create-form-error": Scene((100, 32), _create_form_error),
    "confirm": Scene((100, 32), _confirm),
    "filter-error": Scene((120, 40), _filter_error),
    "help": Scene((100, 32), _help),
    "diagnostics": Scene((120, 32), _diagnostics),
}


# -- the pictures (issue 11): an hour of a fleet's history at a fixed now (tests.ui.scenes) --


async def pictures_settled(pilot: Pilot[int], timeout: float = 15.0) -> None:
    """Wait until the main screen has drawn the pictures scene, the strip included."""
    from tui.widgets.pictures import PicturesStrip

    app = pilot.app
    assert isinstance(app, AgentDeckApp)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        main = app.main_screen
        strips = main.query(PicturesStrip) if main is not None else None
        if (
            main is not None
            and main.runtimes_pane.row_count == 2
            and main.event_log.loaded
            and main.workers_table.runtime_id is not None
            and (not strips or not strips.first().display or strips.first().reads >= 1)
        ):
            break
        await pilot.pause(0.05)
    else:
        raise TimeoutError("the pictures scene did not settle")
    await pilot.pause(0.3)


async def _on_fleet(pilot: Pilot[int]) -> None:
    """The pictures scene with runtime `fleet` selected and its workers listed."""
    from tests.ui.scenes import FLEET

    await pictures_settled(pilot)
    app = pilot.app
    assert isinstance(app, AgentDeckApp)
    main = app.main
    main.runtimes_pane.select_runtime(FLEET)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while not (
        main.workers_table.runtime_id == FLEET
        and main.workers_table.row_count == 6
        and main.transcript.entries
    ):
        if loop.time() > deadline:
            raise TimeoutError("the fleet's workers did not show")
        await pilot.pause(0.05)
    main.workers_table.focus()


async def _pictures(pilot: Pilot[int]) -> None:
    await _on_fleet(pilot)
    await steady(pilot)


async def _pictures_worker(pilot: Pilot[int]) -> None:
    from tui.widgets.worker_picture import RunsPicture

    await _on_fleet(pilot)
    app = pilot.app
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    await pilot.press("enter")
    while not (app.screen.query(RunsPicture) and app.screen.query_one(RunsPicture).reads >= 1):
        if loop.time() > deadline:
            raise TimeoutError("the worker view's picture did not show")
        await pilot.pause(0.05)
    # The runs table sizes its last column before or after its scrollbar appears,
    # depending on timing (one cell of trailing blanks): a resize settles it, the same
    # every run.
    width, height = app.size
    await pilot.resize_terminal(width + 1, height)
    await pilot.pause(0.1)
    await pilot.resize_terminal(width, height)
    await steady(pilot)


def _pictures_app(db: Path) -> AgentDeckApp:
    from tests.ui.scenes import pictures_app

    return pictures_app(db)


PICTURE_SCENES: dict[str, Scene] = {
    "pictures": Scene((120, 40), _pictures, app=_pictures_app),
    "pictures-80x24": Scene((80, 24), _pictures, app=_pictures_app),
    "pictures-worker": Scene((120, 40), _pictures_worker, app=_pictures_app),
}
"""Written by `make screenshots` with SCENES; pinned by tests/ui/test_pictures_snapshots.py."""


# -- the past (issue 11): the console as it was, a minute before the end (tests.ui.scenes) --


async def past_shown(pilot: Pilot[int], position: int, timeout: float = 15.0) -> None:
    """Wait until the past screen on top shows `position` in every pane."""
    from tui.screens.past import PastScreen

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        screen = pilot.app.screen
        if (
            isinstance(screen, PastScreen)
            and screen.shown_position == position
            and screen.transcript.loaded
            and screen.event_log.loaded
            and not screen.event_log.busy
        ):
            break
        if loop.time() > deadline:
            raise TimeoutError(f"the past did not show position {position}")
        await pilot.pause(0.05)


async def _past(pilot: Pilot[int]) -> None:
    """The past scene one minute back from the end: position 31, 09:02, w-1 still running."""
    app = pilot.app
    assert isinstance(app, AgentDeckApp)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while not (
        app.main_screen is not None
        and app.main_screen.workers_table.row_count == 3
        and len(app.main_screen.event_log.window) == 42
        and app.main_screen.transcript.loaded
    ):
        if loop.time() > deadline:
            raise TimeoutError("the past scene did not settle")
        await pilot.pause(0.05)
    await pilot.press("T")
    await past_shown(pilot, 42)
    await pilot.press("less_than_sign")
    await past_shown(pilot, 31)
    await steady(pilot)


async def _past_worker(pilot: Pilot[int]) -> None:
    from tui.screens.past import PastWorkerScreen

    await _past(pilot)
    await pilot.press("enter")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while not (isinstance(pilot.app.screen, PastWorkerScreen) and pilot.app.screen.loaded):
        if loop.time() > deadline:
            raise TimeoutError("the worker view of the past did not show")
        await pilot.pause(0.05)
    await steady(pilot)


def _past_app(db: Path) -> AgentDeckApp:
    from tests.ui.scenes import past_scene_app

    return past_scene_app(db)


PAST_SCENES: dict[str, Scene] = {
    "past": Scene((120, 40), _past, app=_past_app),
    "past-80x24": Scene((80, 24), _past, app=_past_app),
    "past-worker": Scene((120, 40), _past_worker, app=_past_app),
}
"""Written by `make screenshots` with SCENES; pinned by tests/ui/test_past_snapshots.py."""


def make_app(scene: Scene, db: Path) -> AgentDeckApp:
    app = (scene.app or scene_app)(db)
    if scene.theme:
        app.theme = scene.theme
    return app


async def _shoot(name: str, scene: Scene, out: Path, work: Path) -> Path:
    app = make_app(scene, work / name / "scene.db")
    target = out / f"{name}.svg"
    async with app.run_test(size=scene.size) as pilot:
        await scene.steps(pilot)
        app.save_screenshot(filename=target.name, path=str(out))
    return target


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0] if args else "screenshots")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        for name, scene in {**SCENES, **PICTURE_SCENES, **PAST_SCENES}.items():
            path = asyncio.run(_shoot(name, scene, out, Path(work)))
            print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
