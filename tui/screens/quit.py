"""`QuitScreen`: quitting a console that hosts work asks whether that work goes on without it."""

from __future__ import annotations

from typing import ClassVar, Literal

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from tui.safe_text import multi_line, one_line

QuitChoice = Literal["keep", "stop"]


def _count(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def quit_text(runtime_id: str, running: list[str], queued: int) -> tuple[str, str]:
    """The question and its body for a console hosting `running` runs and `queued` inputs."""
    n = len(running)
    shown = ", ".join(running[:5]) + (f" and {n - 5} more" if n > 5 else "")
    work = []
    if running:
        work.append(f"{_count(n, 'run', 'runs')} in progress ({shown})")
    if queued:
        work.append(_count(queued, "queued input", "queued inputs"))
    runs = "the run in progress" if n == 1 else f"the {n} runs in progress"
    fail = "fails" if n == 1 else "fail"
    keep = "Keep running (k): `agentdeck host` takes over hosting it in the background"
    keep += ", and runs the queued inputs in order." if queued else "."
    if running:
        program = "its program is a child" if n == 1 else "their programs are children"
        keep += (
            f" {runs.capitalize()} {fail} \"host closed\" now ({program} of this console"
            " and cannot move): send again what must run."
        )
    stop = "Stop (s):"
    if running:
        ends = "its program ends" if n == 1 else "their programs end"
        stop += f" {runs} {fail} \"host closed\" and {ends};"
    stop += " queued inputs wait for the next host." if queued else " nothing is queued."
    body = f"This console hosts runtime {runtime_id}: {' and '.join(work)}.\n\n{keep}\n\n{stop}"
    return f"Quit while runtime {runtime_id} has work?", body


class QuitScreen(ModalScreen[QuitChoice | None]):
    """Keep the work running elsewhere (`k`, the default), stop it (`s`), or stay (`esc`)."""

    CSS_PATH = "screens.tcss"
    AUTO_FOCUS = "#quit-keep"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("k", "answer('keep')", "Keep running"),
        Binding("s", "answer('stop')", "Stop work"),
        Binding("escape,n", "answer('')", "Back"),
        Binding("left,h", "app.focus_previous", "Previous button", show=False),
        Binding("right,l", "app.focus_next", "Next button", show=False),
    ]

    def __init__(self, runtime_id: str, running: list[str], queued: int) -> None:
        super().__init__()
        self.question, self.body = quit_text(runtime_id, running, queued)

    def compose(self) -> ComposeResult:
        with Vertical(id="quit-dialog", classes="dialog"):
            yield Static(one_line(self.question), id="quit-title", classes="dialog-title")
            with VerticalScroll(id="quit-body-scroll"):
                yield Static(multi_line(self.body), id="quit-body")
            with Horizontal(classes="dialog-buttons"):
                yield Button(Content("Keep running (k)"), variant="primary", id="quit-keep")
                yield Button(Content("Stop (s)"), variant="error", id="quit-stop")
                yield Button(Content("Back (esc)"), id="quit-back")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_answer({"quit-keep": "keep", "quit-stop": "stop"}.get(event.button.id or "", ""))

    def action_answer(self, choice: str) -> None:
        self.dismiss("keep" if choice == "keep" else "stop" if choice == "stop" else None)
