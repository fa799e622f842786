"""Snapshots of the pictures: the strip on an hour of a fleet's history (at 120x40 and 80x24)
and the worker view's picture of its runs; the same scenes as `make screenshots`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.ui.screenshots import PICTURE_SCENES, make_app


@pytest.mark.parametrize("name", sorted(PICTURE_SCENES))
def test_pictures_scene(name: str, snap_compare: Any, tmp_path: Path) -> None:
    scene = PICTURE_SCENES[name]
    app = make_app(scene, tmp_path / "scene" / "scene.db")
    assert snap_compare(app, terminal_size=scene.size, run_before=scene.steps)
