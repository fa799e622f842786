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


def make_app(scene: Scene, db: Path) -> AgentDeckApp:
    app = scene_app(db)
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
        for name, scene in SCENES.items():
            path = asyncio.run(_shoot(name, scene, out, Path(work)))
            print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
