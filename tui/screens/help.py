"""`HelpScreen`: every key of the console and the filter language, from tui/help.md."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Markdown, Static

HELP_PATH = Path(__file__).resolve().parent.parent / "help.md"


@cache
def help_text() -> str:
    """The help page (read once; it ships with the package)."""
    return HELP_PATH.read_text(encoding="utf-8")


class HelpScreen(ModalScreen[None]):
    """The keys and the filter language; `esc`, `q`, `?` or F1 close it."""

    CSS_PATH = "screens.tcss"
    AUTO_FOCUS = "#help-scroll"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark,f1", "close", "Close"),
        Binding("j", "scroll('down')", "Down", show=False),
        Binding("k", "scroll('up')", "Up", show=False),
        Binding("g", "scroll('home')", "Top", show=False),
        Binding("G", "scroll('end')", "Bottom", show=False),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="help-dialog", classes="dialog"):
            yield Static(Content("Help: keys and the filter language"), classes="dialog-title")
            with VerticalScroll(id="help-scroll"):
                yield Markdown(help_text(), id="help-markdown", open_links=False)
            yield Static(
                Content("↑↓ j/k scroll · g/G top/bottom · esc/q/? close"), classes="dialog-hint"
            )

    def action_scroll(self, where: str) -> None:
        scroll = self.query_one("#help-scroll", VerticalScroll)
        if where == "down":
            scroll.scroll_down(animate=False)
        elif where == "up":
            scroll.scroll_up(animate=False)
        elif where == "home":
            scroll.scroll_home(animate=False)
        else:
            scroll.scroll_end(animate=False)

    def action_close(self) -> None:
        self.dismiss(None)
