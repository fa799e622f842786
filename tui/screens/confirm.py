"""`ConfirmScreen`: a yes/no question before a destructive action, safe by default."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from tui.safe_text import multi_line, one_line


class ConfirmScreen(ModalScreen[bool]):
    """Ask before acting: focus starts on "No", `y` confirms, `n`/`escape` cancel.

    The body may quote worker-provided text (an objective, a run's prompt), so
    it is rendered as literal text, never as markup.
    """

    CSS_PATH = "screens.tcss"
    AUTO_FOCUS = "#confirm-no"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "Cancel"),
        Binding("left,h", "app.focus_previous", "Previous button", show=False),
        Binding("right,l", "app.focus_next", "Next button", show=False),
    ]

    def __init__(self, title: str, body: str, confirm_label: str = "Yes") -> None:
        super().__init__()
        self.question = title
        self.body = body
        self.confirm_label = confirm_label

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog", classes="dialog"):
            yield Static(one_line(self.question), id="confirm-title", classes="dialog-title")
            with VerticalScroll(id="confirm-body-scroll"):
                yield Static(multi_line(self.body), id="confirm-body")
            with Horizontal(classes="dialog-buttons"):
                yield Static(Content("y yes · n/esc no"), classes="dialog-hint")
                yield Button(
                    Content(f"{self.confirm_label} (y)"), variant="error", id="confirm-yes"
                )
                yield Button(Content("No (n)"), variant="primary", id="confirm-no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm-yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
