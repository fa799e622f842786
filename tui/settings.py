"""The console's own remembered settings (the theme), in the user's config folder."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from platformdirs import user_config_path


def settings_path() -> Path:
    return user_config_path("agentdeck", appauthor=False) / "settings.json"


def load_settings(path: Path | None) -> dict[str, Any]:
    """What was saved, or nothing: a missing or damaged file never stops the console."""
    if path is None:
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def save_setting(path: Path | None, key: str, value: Any) -> None:
    """Write one setting atomically (temp file + rename); failures are ignored."""
    if path is None:
        return
    settings = load_settings(path)
    settings[key] = value
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(settings, indent=2), encoding="utf-8")
        tmp.replace(path)
