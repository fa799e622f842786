"""`DiagnosticsScreen`: the runtime's diagnostics in a table, loaded off the UI path."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from store.models import Diagnostic, Severity
from tui.safe_text import multi_line, one_line

SEVERITY_LABELS: dict[Severity, tuple[str, Style]] = {
    Severity.INFO: ("INFO", Style(color="blue", bold=True)),
    Severity.WARNING: ("WARN", Style(color="yellow", bold=True)),
    Severity.ERROR: ("ERROR", Style(color="red", bold=True, reverse=True)),
}
COLUMNS = ("Time", "Level", "Code", "Worker", "Message")
CODE_WIDTH = 32


def severity_label(severity: Severity) -> Text:
    """INFO / WARN / ERROR as a word (colour only repeats it)."""
    word, style = SEVERITY_LABELS[severity]
    return Text(word, style=style, end="")


def short_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%m-%d %H:%M:%S")


class DiagnosticsTable(DataTable[Text]):
    """The diagnostics table, with vi-style keys beside the arrows."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "scroll_top", "Top", show=False),
        Binding("G", "scroll_bottom", "Bottom", show=False),
    ]


class DiagnosticsScreen(Screen[None]):
    """Diagnostics of one runtime: time, level, code, worker, message; `r` reloads."""

    CSS_PATH = "screens.tcss"
    AUTO_FOCUS = "#diag-table"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("r", "reload", "Reload"),
    ]

    def __init__(self, runtime_id: str, load: Callable[[], Awaitable[list[Diagnostic]]]) -> None:
        super().__init__()
        self.runtime_id = runtime_id
        self._load = load
        self.diagnostics: list[Diagnostic] = []
        self.loaded = False

    def compose(self) -> ComposeResult:
        yield Header()
        table = DiagnosticsTable(id="diag-table", cursor_type="row", zebra_stripes=True)
        table.border_title = "Diagnostics"
        yield table
        yield Static(Content("loading diagnostics…"), id="diag-empty")
        yield Static(id="diag-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "Diagnostics"
        self.sub_title = f"runtime {self.runtime_id}"
        table = self.query_one(DiagnosticsTable)
        for label in COLUMNS:
            table.add_column(label, key=label.lower())
        self.query_one("#diag-detail").display = False
        self.action_reload()

    def action_reload(self) -> None:
        self._reload()

    @work(exclusive=True, group="diagnostics")
    async def _reload(self) -> None:
        empty = self.query_one("#diag-empty", Static)
        try:
            found = await self._load()
        except Exception as exc:  # shown, never raised into the app
            empty.update(one_line(f"could not load diagnostics: {exc}"))
            empty.display = True
            return
        self.diagnostics = found
        self.loaded = True
        self._fill()

    def _message_width(self) -> int:
        """The message column's width: what the other columns leave (cut, full text below)."""
        code = min(CODE_WIDTH, max((len(d.code) for d in self.diagnostics), default=4))
        fixed = 14 + 5 + code + 6  # time, level, code, worker ("Worker" is the widest)
        # 2 cells of padding per column (5 columns), 2 for the border, 1 for the scrollbar.
        return max(12, self.size.width - fixed - 5 * 2 - 3)

    def _fill(self) -> None:
        table = self.query_one(DiagnosticsTable)
        highlighted = table.cursor_row
        table.clear()
        width = self._message_width()
        for diag in self.diagnostics:
            table.add_row(
                Text(short_time(diag.at), end=""),
                severity_label(diag.severity),
                one_line(diag.code, CODE_WIDTH),
                Text(diag.worker_id or "–", end=""),
                one_line(diag.message, width),
                key=str(diag.id),
            )
        empty = self.query_one("#diag-empty", Static)
        empty.update(Content(f"no diagnostics for runtime {self.runtime_id}"))
        empty.display = not self.diagnostics
        table.display = bool(self.diagnostics)
        self.sub_title = f"runtime {self.runtime_id} · {len(self.diagnostics)} diagnostics"
        if self.diagnostics:
            table.move_cursor(row=min(highlighted, len(self.diagnostics) - 1))
        self._show_detail()

    def on_resize(self) -> None:
        if self.loaded:
            self._fill()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        detail = self.query_one("#diag-detail", Static)
        table = self.query_one(DiagnosticsTable)
        if not self.diagnostics or not 0 <= table.cursor_row < len(self.diagnostics):
            detail.display = False
            return
        diag = self.diagnostics[table.cursor_row]
        text = Text(end="")
        text.append_text(severity_label(diag.severity))
        text.append(" ")
        text.append_text(one_line(diag.code))
        if diag.worker_id:
            text.append(f" · {diag.worker_id}")
        text.append(f" · {diag.at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC\n")
        text.append_text(multi_line(diag.message))
        detail.update(text)
        detail.display = True

    def action_back(self) -> None:
        self.dismiss(None)
