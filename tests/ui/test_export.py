"""Exported files: private like the database, and in the format the path names.

The export code writes real files from a real store file; the dialog is
driven with Textual's Pilot, in the real console (the `E` key) and alone.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import Input, Select

from store.event_store import EventStore
from store.filters import parse_filter
from tests.store.support import new_event
from tests.ui.waits import until
from tui.app import AgentDeckApp
from tui.backend import open_backend
from tui.export import CSV_COLUMNS, export_events
from tui.screens.export import ExportScreen

PRIVATE = 0o600


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """A umask that lets everyone read new files: the export must not rely on the operator's."""
    old = os.umask(0o000)
    try:
        yield
    finally:
        os.umask(old)


async def _seed(path: Path, count: int = 5) -> None:
    async with await EventStore.open(path, watch=False) as store:
        await store.append(
            "ci", 0, [new_event(message=f"secret {i}") for i in range(count)]
        )


async def _export(db: Path, out: Path, fmt: str) -> int:
    async with await EventStore.open(db, read_only=True, watch=False, index=False) as store:
        return await export_events(store, parse_filter(""), out, fmt)  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_file_is_owner_only(tmp_path: Path, loose_umask: None, fmt: str) -> None:
    """Issue 7 item 12: a new export file is created 0600, whatever the umask."""
    db = tmp_path / "a.db"
    asyncio.run(_seed(db))
    out = tmp_path / f"events.{fmt}"
    assert asyncio.run(_export(db, out, fmt)) == 5
    assert mode(out) == PRIVATE
    assert not list(tmp_path.glob("*.part"))


def test_export_replacing_a_readable_file_leaves_it_private(
    tmp_path: Path, loose_umask: None
) -> None:
    """Issue 7 item 12: an existing target (0644) and a leftover `.part` (0666) end up 0600."""
    db = tmp_path / "a.db"
    asyncio.run(_seed(db))
    out = tmp_path / "events.jsonl"
    out.write_text("old\n")
    out.chmod(0o644)
    leftover = tmp_path / "events.jsonl.part"
    leftover.write_text("half an export from a crash\n")
    leftover.chmod(0o666)
    assert asyncio.run(_export(db, out, "jsonl")) == 5
    assert mode(out) == PRIVATE
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["message"] for line in lines] == [f"secret {i}" for i in range(5)]
    assert not leftover.exists()


def test_export_refuses_a_symlink_planted_at_the_part_name(tmp_path: Path) -> None:
    """Issue 7 item 12: the temporary file is never written through a link to another file."""
    db = tmp_path / "a.db"
    asyncio.run(_seed(db))
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched\n")
    out = tmp_path / "events.csv"
    (tmp_path / "events.csv.part").symlink_to(victim)
    with pytest.raises(OSError):
        asyncio.run(_export(db, out, "csv"))
    assert victim.read_text() == "untouched\n"
    assert not out.exists()


# -- the dialog -------------------------------------------------------------------------



async def retype(pilot: Pilot[Any], path: Path) -> None:
    """Replace the focused input with `path`: its folder at once, its name key by key."""
    path_input = pilot.app.focused
    assert isinstance(path_input, Input)
    path_input.value = f"{path.parent}{os.sep}"
    await pilot.press("end", *path.name)
    await pilot.pause()


async def test_typing_a_csv_path_in_the_console_writes_a_private_csv(tmp_path: Path) -> None:
    """Issue 7 item 12: E, type `….csv`, enter: the file is CSV (not JSONL) and mode 0600."""
    db = tmp_path / "a.db"
    target = tmp_path / "typed.csv"
    said: list[str] = []
    app = AgentDeckApp(lambda: open_backend(db, watch=True), settings_file=None)
    async with app.run_test(size=(120, 40)) as pilot:
        original = app.notify

        def record(message: str, *args: Any, **kwargs: Any) -> None:
            said.append(str(message))
            original(message, *args, **kwargs)

        app.notify = record  # type: ignore[method-assign]
        await until(pilot, lambda: app.main_screen is not None and bool(app.main.event_log.window))
        await pilot.press("E")
        await until(pilot, lambda: isinstance(app.screen, ExportScreen))
        screen = app.screen
        path_input = screen.query_one("#ex-path", Input)
        assert path_input.has_focus and path_input.value.endswith(".jsonl")
        assert screen.query_one("#ex-format", Select).value == "jsonl"
        await retype(pilot, target)
        assert path_input.value == str(target)  # typed as is, not rewritten
        assert screen.query_one("#ex-format", Select).value == "csv"  # the selector followed
        await pilot.press("enter")
        await until(pilot, lambda: any("exported" in s for s in said))
    with target.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) > 1 and rows[1][CSV_COLUMNS.index("kind")] == "runtime.started"
    assert mode(target) == PRIVATE


class Host(App[None]):
    """The export dialog alone; records what it is dismissed with."""

    def __init__(self, default: Path) -> None:
        super().__init__()
        self.default = default
        self.results: list[Any] = []

    def on_mount(self) -> None:
        self.push_screen(ExportScreen(self.default, ""), self.results.append)


async def test_path_extension_and_selector_follow_each_other(tmp_path: Path) -> None:
    """Issue 7 item 12: .csv/.jsonl/.json in the path pick the format; other extensions do not."""
    app = Host(tmp_path / "events.jsonl")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.screen
        path_input = screen.query_one("#ex-path", Input)
        select = screen.query_one("#ex-format", Select)

        select.value = "csv"  # the selector rewrites a known extension...
        await pilot.pause()
        assert path_input.value == str(tmp_path / "events.csv")

        path_input.focus()
        await retype(pilot, tmp_path / "out.json")  # ...and follows one typed
        assert select.value == "jsonl"
        assert path_input.value == str(tmp_path / "out.json")  # not turned into .jsonl

        select.value = "csv"
        await pilot.pause()
        assert path_input.value == str(tmp_path / "out.csv")

        path_input.focus()
        await retype(pilot, tmp_path / "out.txt")  # another extension: the selector decides
        assert select.value == "csv" and path_input.value == str(tmp_path / "out.txt")
        select.value = "jsonl"
        await pilot.pause()
        assert path_input.value == str(tmp_path / "out.txt")
        path_input.focus()
        await pilot.press("enter")
        await pilot.pause()
    assert app.results == [(tmp_path / "out.txt", "jsonl")]


async def test_submitting_at_once_uses_the_path_extension(tmp_path: Path) -> None:
    """Issue 7 item 12: a .csv path set and submitted in one go is exported as CSV."""
    app = Host(tmp_path / "events.jsonl")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ExportScreen)
        screen.query_one("#ex-path", Input).value = str(tmp_path / "pasted.CSV")
        screen.action_export()  # before the selector has seen the change
        await pilot.pause()
    assert app.results == [(tmp_path / "pasted.CSV", "csv")]
