"""`ExportScreen`: where to write the filtered events, and in which format.

The path and the format selector follow each other: a path ending in
`.csv`, `.jsonl` or `.json` picks that format (typed, pasted or however it got
there), and picking a format rewrites such an extension. Any other extension
(`events.txt`) leaves the choice to the selector.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Select, Static

from tui.export import EXPORT_FORMATS
from tui.safe_text import clean, one_line

FORMATS = EXPORT_FORMATS
_NAMED = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}
"""The extensions that name a format; any other leaves it to the selector."""
_SUFFIXES = set(_NAMED)


def named_format(path_text: str) -> str | None:
    """The export format a path's extension names, or None for any other extension."""
    return _NAMED.get(Path(path_text.strip()).suffix.lower())


def format_of(path: Path) -> str:
    """The export format a path's extension suggests (JSON lines unless it says csv)."""
    return named_format(str(path)) or "jsonl"


def with_format(path_text: str, fmt: str) -> str:
    """`path_text` with an export extension swapped for `.fmt`; other paths unchanged."""
    if not path_text.strip():
        return path_text
    path = Path(path_text)
    if path.suffix.lower() in _SUFFIXES:
        return str(path.with_suffix(f".{fmt}"))
    return path_text


def check_export_path(path_text: str) -> Path | str:
    """The path to write, or a message saying why it cannot be used."""
    text = path_text.strip()
    if not text:
        return "give a file path to write to"
    path = Path(text).expanduser()
    if path.is_dir():
        return f"{clean(str(path))} is a folder; name a file in it"
    folder = path.parent
    if not folder.is_dir():
        return f"folder {clean(str(folder))} does not exist"
    return path


class ExportScreen(ModalScreen[tuple[Path, str] | None]):
    """Returns `(path, format)` on enter or ctrl+s, `None` on escape."""

    CSS_PATH = "screens.tcss"
    AUTO_FOCUS = "#ex-path"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "export", "Export"),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, default_path: Path, filter_text: str) -> None:
        super().__init__()
        self.default_path = default_path
        self.filter_text = filter_text
        # The format the path named at its last change: the selector follows an
        # edit that changes it, never an edit that leaves it alone (which would
        # undo a choice made in the selector since).
        self._path_named = named_format(str(default_path))

    def compose(self) -> ComposeResult:
        shown = (
            one_line(self.filter_text, 60)
            if self.filter_text.strip()
            else Text("(none: every event)", style=Style(italic=True))
        )
        with Vertical(id="ex-dialog", classes="dialog"):
            yield Static(Content("Export events"), classes="dialog-title")
            with Horizontal(classes="field"):
                yield Static(Content("Filter"), classes="field-label")
                yield Static(shown, id="ex-filter", classes="field-value")
            with Horizontal(classes="field"):
                yield Static(Content("Path"), classes="field-label")
                yield Input(str(self.default_path), id="ex-path", compact=True)
            with Horizontal(classes="field"):
                yield Static(Content("Format"), classes="field-label")
                yield Select(
                    [(Content(fmt), fmt) for fmt in FORMATS],
                    value=format_of(self.default_path),
                    allow_blank=False,
                    compact=True,
                    id="ex-format",
                )
            yield Static(id="ex-error", classes="form-error")
            with Horizontal(classes="dialog-buttons"):
                yield Static(Content("enter export · esc cancel"), classes="dialog-hint")
                yield Button(Content("Export"), variant="primary", id="ex-export")
                yield Button(Content("Cancel"), id="ex-cancel")

    def on_mount(self) -> None:
        self.query_one("#ex-error").display = False

    @property
    def chosen_format(self) -> str:
        value = self.query_one("#ex-format", Select).value
        return value if isinstance(value, str) else "jsonl"

    @on(Select.Changed, "#ex-format")
    def _format_changed(self, event: Select.Changed) -> None:
        path_input = self.query_one("#ex-path", Input)
        # Only a path naming the other format is rewritten: one that already
        # agrees (the selector followed it, `x.json` included) stays as typed.
        named = named_format(path_input.value)
        if named is not None and named != self.chosen_format:
            path_input.value = with_format(path_input.value, self.chosen_format)

    @on(Input.Changed, "#ex-path")
    def _path_edited(self, event: Input.Changed) -> None:
        self.query_one("#ex-error").display = False
        self.query_one("#ex-path").remove_class("-invalid")
        named, before = named_format(event.value), self._path_named
        self._path_named = named
        if named is not None and named != before and named != self.chosen_format:
            self.query_one("#ex-format", Select).value = named

    @on(Input.Submitted, "#ex-path")
    def _path_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_export()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "ex-export":
            self.action_export()
        else:
            self.action_cancel()

    def action_export(self) -> None:
        checked = check_export_path(self.query_one("#ex-path", Input).value)
        if isinstance(checked, str):
            error = self.query_one("#ex-error", Static)
            error.update(Text(f"✗ {checked}", style=Style(bold=True)))
            error.display = True
            path_input = self.query_one("#ex-path", Input)
            path_input.add_class("-invalid")
            path_input.focus()
            return
        # The extension decides even if the selector has not caught up yet
        # (a value set and submitted in one go).
        self.dismiss((checked, named_format(str(checked)) or self.chosen_format))

    def action_cancel(self) -> None:
        self.dismiss(None)
