"""Where an unexpected error's details go, so the operator gets one line, not a traceback.

The traceback is written to a file under the user's log folder
(`$XDG_STATE_HOME/agentdeck/log`, usually `~/.local/state/agentdeck/log`),
created owner-only because a traceback can quote worker text. The one line
names the error and the file.
"""

from __future__ import annotations

import os
import traceback
from datetime import UTC, datetime
from pathlib import Path

from platformdirs import user_log_path

from tui.safe_text import clean


def crash_folder() -> Path:
    return user_log_path("agentdeck", appauthor=False)


def write_crash_log(exc: BaseException, folder: Path | None = None) -> Path | None:
    """Write `exc`'s traceback to a new file; its path, or None if it could not be written."""
    folder = folder or crash_folder()
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    path = folder / f"crash-{stamp}-{os.getpid()}.log"
    text = "".join(traceback.format_exception(exc))
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", errors="replace") as handle:
            handle.write(text)
    except OSError:
        return None
    return path


def crash_line(exc: BaseException, folder: Path | None = None) -> str:
    """The one line an operator reads about an unexpected error (details saved to a file)."""
    what = clean(f"{type(exc).__name__}: {exc}", newlines=False)
    if len(what) > 200:
        what = what[:199] + "…"
    saved = write_crash_log(exc, folder)
    where = f"details in {saved}" if saved else "its details could not be saved"
    return f"unexpected error ({what}); {where}; please report it"
