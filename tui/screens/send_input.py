"""`SendInputScreen`: multi-line input for a worker, with its role."""

from __future__ import annotations

from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Select, Static, TextArea

from tui.safe_text import one_line

ROLES = ("user", "system")


class SendInputScreen(ModalScreen[tuple[str, str] | None]):
    """Returns `(role, content)` on ctrl+s, `None` on escape; blank content is refused inline."""

    CSS_PATH = "screens.tcss"
    AUTO_FOCUS = "#si-content"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "send", "Send"),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, worker_label: str) -> None:
        super().__init__()
        self.worker_label = worker_label

    def compose(self) -> ComposeResult:
        title = Text("Send input to ", end="")
        title.append_text(one_line(self.worker_label, 60))
        with Vertical(id="si-dialog", classes="dialog"):
            yield Static(title, classes="dialog-title")
            yield TextArea(
                id="si-content",
                soft_wrap=True,
                tab_behavior="focus",
                placeholder="What should the worker do? (enter: new line)",
            )
            with Horizontal(classes="field"):
                yield Static(Content("Role"), classes="field-label")
                yield Select(
                    [(Content(role), role) for role in ROLES],
                    value="user",
                    allow_blank=False,
                    compact=True,
                    id="si-role",
                )
            yield Static(id="si-error", classes="form-error")
            with Horizontal(classes="dialog-buttons"):
                yield Static(
                    Content("ctrl+s send · enter new line · esc cancel"), classes="dialog-hint"
                )
                yield Button(Content("Send"), variant="primary", id="si-send")
                yield Button(Content("Cancel"), id="si-cancel")

    def on_mount(self) -> None:
        self.query_one("#si-error").display = False

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        self.query_one("#si-error").display = False

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "si-send":
            self.action_send()
        else:
            self.action_cancel()

    def action_send(self) -> None:
        content = self.query_one("#si-content", TextArea).text
        if not content.strip():
            error = self.query_one("#si-error", Static)
            error.update(Text("✗ Nothing to send: the input is blank", style=Style(bold=True)))
            error.display = True
            self.query_one("#si-content").focus()
            return
        role = self.query_one("#si-role", Select).value
        self.dismiss((role if isinstance(role, str) else "user", content))

    def action_cancel(self) -> None:
        self.dismiss(None)
