"""`SendInputScreen`: multi-line input for a worker, with its role.

The dialog refuses inline and keeps the text: it checks the input with the
engine's own validator before submitting and, given a `send` callback,
performs the send itself and closes only once the engine has accepted it.
An operator never loses what they typed or pasted to a refusal.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Select, Static, TextArea

from engine.errors import InvalidRequest
from engine.validation import validate_input
from store.models import Limits
from tui.safe_text import multi_line, one_line

ROLES = ("user", "system")

SendInput = Callable[[str, str], Awaitable[str | None]]
"""`send(role, content)`: performs the send; returns why it failed, or None once accepted."""

# Soft wrap re-wraps a whole logical line on every edit: measured here, 2 MiB
# of prose without newlines took 5.2 s to paste and 3.7 s per key press with
# wrap on, 0.3 s and 0.2 s with it off (256 KiB: 0.55 s / 0.48 s against
# 0.13 s / 0.09 s; 64 KiB: 0.16 s / 0.13 s). Above this many characters the
# text is shown unwrapped; wrap comes back below half of it, so editing near
# the threshold does not flip it (and pay a re-wrap) on every key.
UNWRAP_ABOVE_CHARS = 64 * 1024
REWRAP_BELOW_CHARS = UNWRAP_ABOVE_CHARS // 2
UNWRAPPED_NOTE = "long input: lines not wrapped"


class InputArea(TextArea):
    """The dialog's text area: unwraps before a large paste lands, not after."""

    def on_paste(self, event: events.Paste) -> None:
        # Runs before TextArea's own paste handler (the subclass comes first in
        # the MRO), so the paste is inserted without paying for a wrap at all.
        if len(self.text) + len(event.text) > UNWRAP_ABOVE_CHARS:
            self.fit_wrap(unwrap=True)

    def load_text(self, text: str) -> None:
        # Same for text set from code (`.text = ...`): unwrap before, not after.
        # (Wrapping back on is left to the Changed handler, once the text is small.)
        if self.soft_wrap and len(text) > UNWRAP_ABOVE_CHARS:
            self.fit_wrap(unwrap=True)
        super().load_text(text)

    def fit_wrap(self, unwrap: bool | None = None) -> None:
        """Wrap small text, not large text (see UNWRAP_ABOVE_CHARS)."""
        if unwrap is None:
            size = len(self.text)
            if self.soft_wrap and size > UNWRAP_ABOVE_CHARS:
                unwrap = True
            elif not self.soft_wrap and size < REWRAP_BELOW_CHARS:
                unwrap = False
            else:
                return
        self.soft_wrap = not unwrap
        self.border_subtitle = UNWRAPPED_NOTE if unwrap else ""


class SendInputScreen(ModalScreen[tuple[str, str] | None]):
    """Returns `(role, content)` once sent, `None` on escape; a refusal is shown inline.

    Without `send` the dialog returns the checked input for the caller to send
    (and the caller's refusals are then the caller's to show).
    """

    CSS_PATH = "screens.tcss"
    AUTO_FOCUS = "#si-content"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "send", "Send"),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(
        self,
        worker_label: str,
        limits: Limits | None = None,
        send: SendInput | None = None,
    ) -> None:
        super().__init__()
        self.worker_label = worker_label
        # The runtime's limits when the caller knows them; the engine checks
        # again with its own on the real call, so a default here is only early.
        self.limits = limits or Limits()
        self._send = send
        self.sending = False

    def compose(self) -> ComposeResult:
        title = Text("Send input to ", end="")
        title.append_text(one_line(self.worker_label, 60))
        with Vertical(id="si-dialog", classes="dialog"):
            yield Static(title, classes="dialog-title")
            yield InputArea(
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

    @property
    def content(self) -> str:
        """The text as typed (or pasted); kept through every refusal."""
        return self.query_one("#si-content", TextArea).text

    @property
    def error(self) -> str | None:
        """The refusal shown inline, if one is."""
        error = self.query_one("#si-error", Static)
        return str(error.visual) if error.display else None

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        self.query_one("#si-error").display = False
        self.query_one("#si-content", InputArea).fit_wrap()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "si-send":
            self.action_send()
        else:
            self.action_cancel()

    def _show_error(self, message: str) -> None:
        error = self.query_one("#si-error", Static)
        text = Text("✗ ", style=Style(bold=True), end="")
        # Engine messages can quote worker-supplied names: literal text only.
        text.append_text(multi_line(message))
        error.update(text)
        error.display = True
        self.query_one("#si-content").focus()

    def _set_sending(self, sending: bool) -> None:
        self.sending = sending
        button = self.query_one("#si-send", Button)
        button.disabled = sending
        button.label = Content("Sending…" if sending else "Send")
        # Read-only while in flight: on success the dialog closes with what was
        # sent, so an edit made meanwhile would silently vanish.
        self.query_one("#si-content", TextArea).read_only = sending

    def action_send(self) -> None:
        if self.sending:
            return
        content = self.content
        role = self.query_one("#si-role", Select).value
        role = role if isinstance(role, str) else "user"
        try:
            validate_input(content, role, self.limits)
        except InvalidRequest as exc:
            self._show_error(str(exc))
            return
        if self._send is None:
            self.dismiss((role, content))
            return
        self._set_sending(True)
        self._deliver(role, content)

    @work(exclusive=True, group="send-input")
    async def _deliver(self, role: str, content: str) -> None:
        assert self._send is not None
        try:
            problem = await self._send(role, content)
        except Exception as exc:  # a failed send must not take the dialog (and the text) down
            problem = str(exc) or type(exc).__name__
        self._set_sending(False)
        if problem:
            self._show_error(problem)
            return
        self.dismiss((role, content))

    def action_cancel(self) -> None:
        # Not while a send is in flight: leaving would cancel the call halfway,
        # and the input could still be committed without the operator knowing.
        if self.sending:
            return
        self.dismiss(None)
