"""The event filter bar: type a filter, enter applies it, escape puts it back.

The bar checks the expression itself (with the store's parser) before it
posts `Applied`, so a bad filter is shown inline, naming the bad term, and
never reaches the event log: the previous filter simply stays active. The
app binds `/` to `focus_input`; presets are for the command palette.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input, Label, Static

from store.errors import FilterError
from store.filters import parse_filter
from tui.safe_text import one_line

__all__ = ["PRESETS", "FilterBar", "Preset"]


class Preset(NamedTuple):
    """A ready-made filter for the command palette."""

    text: str
    title: str


PRESETS: tuple[Preset, ...] = (
    Preset("level:warning", "Warnings and errors"),
    Preset("level:error", "Errors only"),
    Preset("kind:run.*", "Run lifecycle"),
    Preset("kind:exec.*", "Command execution"),
    Preset("kind:worker.*", "Worker lifecycle and output"),
    Preset("", "All events (clear the filter)"),
)

PLACEHOLDER = 'kind:run.* worker:w-3 level:error after:-10m words "a phrase" -term'


class FilterBar(Widget):
    """One row: the filter input; a second row with the error when the filter is bad."""

    DEFAULT_CSS = """
    FilterBar {
        height: auto;
        layout: vertical;
    }
    FilterBar > Horizontal {
        height: 1;
    }
    FilterBar #filter-label {
        width: auto;
        padding: 0 1;
        color: $text-muted;
    }
    FilterBar:focus-within #filter-label {
        color: $text-accent;
        text-style: bold;
    }
    FilterBar #filter-input {
        width: 1fr;
    }
    FilterBar #filter-error {
        display: none;
        height: auto;
        padding: 0 1;
        color: $text-error;
    }
    FilterBar.-error #filter-error {
        display: block;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", show=False),
    ]

    class Applied(Message):
        """A valid filter was entered ("" clears it)."""

        def __init__(self, filter_bar: FilterBar, text: str) -> None:
            self.filter_bar = filter_bar
            self.text = text
            super().__init__()

        @property
        def control(self) -> FilterBar:
            return self.filter_bar

    class Cancelled(Message):
        """Editing was abandoned; the active filter is unchanged."""

        def __init__(self, filter_bar: FilterBar) -> None:
            self.filter_bar = filter_bar
            super().__init__()

        @property
        def control(self) -> FilterBar:
            return self.filter_bar

    def __init__(
        self,
        active: str = "",
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._active = active
        self._error: str | None = None
        self._return_focus: Widget | None = None

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Label("/ filter", id="filter-label")
            yield Input(
                self._active,
                placeholder=PLACEHOLDER,
                id="filter-input",
                compact=True,
                select_on_focus=False,
            )
        yield Static(id="filter-error")

    @property
    def input(self) -> Input:
        return self.query_one("#filter-input", Input)

    @property
    def active(self) -> str:
        """The filter the event log is using."""
        return self._active

    @property
    def error(self) -> str | None:
        """The error shown inline, if the last entered filter was bad."""
        return self._error

    def set_active(self, text: str) -> None:
        """Show `text` as the active filter (the app calls this after applying one, e.g. a preset)."""
        self._active = text
        self.input.value = text
        self.clear_error()

    def show_error(self, error: FilterError | str) -> None:
        """Show why a filter was refused, under the input."""
        self._error = str(error)
        message = Text("✗ ", style=Style(bold=True), end="")
        message.append_text(one_line(self._error))
        self.query_one("#filter-error", Static).update(message)
        self.add_class("-error")

    def clear_error(self) -> None:
        self._error = None
        self.query_one("#filter-error", Static).update("")
        self.remove_class("-error")

    def focus_input(self) -> None:
        """Start editing; escape or enter gives focus back to where it was."""
        focused = self.app.focused
        if focused is not None and self not in focused.ancestors_with_self:
            self._return_focus = focused
        self.input.focus()
        self.input.cursor_position = len(self.input.value)

    def _give_back_focus(self) -> None:
        target, self._return_focus = self._return_focus, None
        if target is not None and target.is_mounted and target.focusable:
            target.focus()
        else:
            self.screen.set_focus(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        try:
            parse_filter(text)
        except FilterError as exc:
            self.show_error(exc)
            return
        self._active = text
        self.input.value = text
        self.clear_error()
        self.post_message(self.Applied(self, text))
        self._give_back_focus()

    def action_cancel(self) -> None:
        """Put the active filter back in the input and leave it."""
        self.input.value = self._active
        self.clear_error()
        self.post_message(self.Cancelled(self))
        self._give_back_focus()
