"""Snapshots of the whole console on the seeded scene (the same scenes as `make screenshots`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.ui.screenshots import SCENES, make_app


@pytest.mark.parametrize("name", sorted(SCENES))
def test_scene(name: str, snap_compare: Any, tmp_path: Path) -> None:
    scene = SCENES[name]
    app = make_app(scene, tmp_path / "scene.db")
    assert snap_compare(app, terminal_size=scene.size, run_before=scene.steps)
