"""`agentdeck` with no command: the console, on the embedded default database."""

from __future__ import annotations

import argparse

from store.database import OpenOptions, prepare
from store.errors import ReadOnlyDatabase
from tui.backend import open_backend
from tui.cli import say
from tui.crash_log import crash_line
from tui.settings import settings_path
from tui.shutdown import signalled_status


def console_command(args: argparse.Namespace) -> int:
    # Refuse an unusable database with one line before the screen is taken over.
    try:
        prepare(args.db, OpenOptions(read_only=args.read_only))
    except ReadOnlyDatabase:
        prepare(args.db, OpenOptions(read_only=True))  # the console opens it as an observer
    from tui.app import AgentDeckApp

    app = AgentDeckApp(
        lambda: open_backend(
            args.db, runtime_id=args.runtime, config=args.config, read_only=args.read_only
        ),
        settings_file=settings_path(),
    )
    code = app.run()
    if app.startup_error:
        say(app.startup_error)
        return 2
    if app.crash is not None:
        say(crash_line(app.crash))
        return 1
    if app.stop_signal is not None:
        return signalled_status(app.stop_signal)
    return code or 0
