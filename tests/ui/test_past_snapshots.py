"""Snapshots of a past moment: the console a minute back from the end of the past scene
(at 120x40 and 80x24), and the worker view as it was; the same scenes as `make screenshots`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.ui.screenshots import PAST_SCENES, make_app


@pytest.mark.parametrize("name", sorted(PAST_SCENES))
def test_past_scene(name: str, snap_compare: Any, tmp_path: Path) -> None:
    scene = PAST_SCENES[name]
    app = make_app(scene, tmp_path / "scene" / "past.db")
    assert snap_compare(app, terminal_size=scene.size, run_before=scene.steps)
