"""The runtimes pane: every runtime in the database, who hosts it, its workers.

The host column says what this console can do to each runtime: `here` (it
hosts it), `pid N@HOST` (it operates it through that process), `no live host`
(nothing would run a command: it can only be watched until a host starts), or,
dimmed, who hosts it when this console only watches (`--read-only`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets import DataTable

from store.models import HostLease, RuntimeStatus, WorkerStatus
from tui.backend import Access, AccessMode, RuntimeRow
from tui.widgets.table import FixedTable

STALE_AFTER = timedelta(seconds=10)
RUNNING = Style(color="green")
STOPPED = Style(color="yellow")
DIM = Style(dim=True)


def host_text(lease: HostLease | None, access: Access, now: datetime) -> Text:
    if access.mode is AccessMode.HOSTED:
        return Text("here", style=Style(color="green"))
    if access.mode is AccessMode.NO_HOST:
        return Text("no live host", style=STOPPED)
    watching = access.mode is AccessMode.READ_ONLY
    if lease is None:
        return Text("none", style=DIM)
    label = f"pid {lease.pid}@{lease.host_name}"
    if now - lease.heartbeat_at > STALE_AFTER:
        return Text(f"{label} (stale)", style=STOPPED)
    return Text(label, style=DIM if watching else Style())


class RuntimesPane(FixedTable[Text | str]):
    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
    ]

    class RuntimeSelected(Message):
        def __init__(self, runtime_id: str) -> None:
            super().__init__()
            self.runtime_id = runtime_id

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(cursor_type="row", id=id)
        self._rows: dict[str, tuple[Text | str, ...]] = {}

    def on_mount(self) -> None:
        self.add_column("runtime", key="runtime", width=12)
        self.add_column("host", key="host", width=14)
        self.add_column("workers", key="workers", width=9)

    @property
    def selected_runtime_id(self) -> str | None:
        if not self._rows or self.cursor_row < 0 or self.cursor_row >= self.row_count:
            return None
        row_key, _ = self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0))
        return str(row_key.value)

    def update(self, runtimes: list[RuntimeRow], now: datetime) -> None:
        """Apply fresh rows: new runtimes are added, changed cells rewritten in place."""
        for summary in runtimes:
            record = summary.record
            rid = record.runtime_id
            c = summary.counts
            stopped = record.status is RuntimeStatus.STOPPED
            name = Text.assemble(("■ " if stopped else "● ", STOPPED if stopped else RUNNING), rid)
            row: tuple[Text | str, ...] = (
                name,
                host_text(summary.host, summary.access, now)
                if not stopped
                else Text("stopped", style=STOPPED),
                f"{c.get(WorkerStatus.RUNNING, 0)}● {c.get(WorkerStatus.STOPPED, 0)}■ {c.get(WorkerStatus.CANCELLED, 0)}✕",
            )
            old = self._rows.get(rid)
            if old is None:
                self.add_row(*row, key=rid)
            elif old != row:
                for key, new, before in zip(
                    ("runtime", "host", "workers"), row, old, strict=True
                ):
                    if new != before:
                        self.update_cell(rid, key, new)
            self._rows[rid] = row

    def select_runtime(self, runtime_id: str) -> None:
        if runtime_id in self._rows:
            self.move_cursor(row=self.get_row_index(runtime_id))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self.post_message(self.RuntimeSelected(str(event.row_key.value)))
