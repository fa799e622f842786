"""The runtimes pane: every runtime in the database, who hosts it, its workers.

The host column says what this console can do to each runtime: `here` (it
hosts it), `pid N@HOST` (it operates it through that process), `no live host`
(nothing would run a command: it can only be watched until a host starts), or,
dimmed, who hosts it when this console only watches (`--read-only`).

With hosts on several machines the host name is what tells them apart, so the
host column takes width from the runtime column when the runtime names are
short, and a host name too long for it is shown up to its first dot, then cut.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets import DataTable

from engine.hosting import STALE_AFTER_S
from store.models import HostLease, RuntimeStatus, WorkerStatus
from tui.backend import Access, AccessMode, RuntimeRow
from tui.widgets.table import FixedTable

STALE_AFTER = timedelta(seconds=STALE_AFTER_S)
RUNTIME_W, HOST_W, WORKERS_W = 12, 14, 9  # the pane's 41 columns, padding included
MIN_RUNTIME_W = 8  # "runtime" and a short name


def host_label(lease: HostLease, width: int) -> str:
    """`pid N@HOST` in at most `width` cells: the host name up to its first dot if that
    does not fit, then cut (the workers pane's title has it whole)."""
    label = f"pid {lease.pid}@{lease.host_name}"
    if len(label) <= width:
        return label
    label = f"pid {lease.pid}@{lease.host_name.split('.', 1)[0]}"
    return label if len(label) <= width else label[: max(width - 1, 0)] + "…"
RUNNING = Style(color="green")
STOPPED = Style(color="yellow")
DIM = Style(dim=True)


def host_text(
    lease: HostLease | None, access: Access, now: datetime, width: int = HOST_W
) -> Text:
    if access.mode is AccessMode.HOSTED:
        return Text("here", style=Style(color="green"))
    if access.mode is AccessMode.NO_HOST:
        return Text("no live host", style=STOPPED)
    watching = access.mode is AccessMode.READ_ONLY
    if lease is None:
        return Text("none", style=DIM)
    label = host_label(lease, width)
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
        self.add_column("runtime", key="runtime", width=RUNTIME_W)
        self.add_column("host", key="host", width=HOST_W)
        self.add_column("workers", key="workers", width=WORKERS_W)

    def _split(self, runtimes: list[RuntimeRow]) -> int:
        """The host column's width for these rows (the runtime column gets the rest)."""
        names = max((len(row.record.runtime_id) + 2 for row in runtimes), default=0)
        hosts = max(
            (
                len(f"pid {row.host.pid}@{row.host.host_name}")
                for row in runtimes
                if row.host and row.access.mode not in (AccessMode.HOSTED, AccessMode.NO_HOST)
            ),
            default=0,
        )
        spare = RUNTIME_W - max(names, MIN_RUNTIME_W)
        host_w = HOST_W + max(0, min(spare, hosts - HOST_W))
        columns = self.columns
        if columns and columns["host"].width != host_w:  # type: ignore[index]
            columns["runtime"].width = RUNTIME_W + HOST_W - host_w  # type: ignore[index]
            columns["host"].width = host_w  # type: ignore[index]
            self._rows.clear()  # every host cell is worded again for its new width
            self._clear_caches()
            self._require_update_dimensions = True
            self.refresh()
        return host_w

    @property
    def selected_runtime_id(self) -> str | None:
        if not self._rows or self.cursor_row < 0 or self.cursor_row >= self.row_count:
            return None
        row_key, _ = self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0))
        return str(row_key.value)

    def update(self, runtimes: list[RuntimeRow], now: datetime) -> None:
        """Apply fresh rows: new runtimes are added, changed cells rewritten in place."""
        host_w = self._split(runtimes)
        for summary in runtimes:
            record = summary.record
            rid = record.runtime_id
            c = summary.counts
            stopped = record.status is RuntimeStatus.STOPPED
            name = Text.assemble(("■ " if stopped else "● ", STOPPED if stopped else RUNNING), rid)
            row: tuple[Text | str, ...] = (
                name,
                host_text(summary.host, summary.access, now, host_w)
                if not stopped
                else Text("stopped", style=STOPPED),
                f"{c.get(WorkerStatus.RUNNING, 0)}● {c.get(WorkerStatus.STOPPED, 0)}■ {c.get(WorkerStatus.CANCELLED, 0)}✕",
            )
            old = self._rows.get(rid)
            if old is None and rid in self.rows:  # re-worded after a width change
                for key, new in zip(("runtime", "host", "workers"), row, strict=True):
                    self.update_cell(rid, key, new)
            elif old is None:
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
        if getattr(event.row_key, "value", None) is None:
            return  # an arrow key on an empty table highlights no row
        self.post_message(self.RuntimeSelected(str(event.row_key.value)))
