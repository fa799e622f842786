"""The workers pane: one row per worker, cells updated in place.

Rows are keyed by worker id and only the cells whose text changed are
written (`DataTable.remove_row` is O(rows), and a full rebuild per event
would be quadratic), so a burst of events touching a few workers costs a few
cell updates. A runtime with many workers shows its first screenfuls at once
and the rest right after that paint, a chunk per refresh.
"""

from __future__ import annotations

import itertools

from rich.text import Text
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets import DataTable

from store.models import WorkerRecord, WorkerSpec
from tui.clock import ConsoleClock
from tui.safe_text import one_line
from tui.widgets.labels import run_status, worker_status
from tui.widgets.table import FixedTable

FIRST_ROWS = 100
"""Rows added before the first paint of a runtime; the rest follow it."""
CHUNK_ROWS = 250
"""Rows added per refresh after that."""

# Most telling first: on a narrow screen the table scrolls sideways for the rest.
COLUMNS = (
    ("id", "id", 4),
    ("status", "status", 11),
    ("run", "run", 13),
    ("intent", "intent", 26),
    ("profile", "profile", 13),
    ("queue", "queue", 5),
    ("transcript", "msgs", 5),
    ("activity", "last", 8),
)


def intent_text(spec: WorkerSpec) -> str:
    intent = spec.intent
    if intent.type == "task":
        return f"task: {intent.objective}"
    if intent.type == "role":
        return f"role: {intent.role}" + (f" — {intent.purpose}" if intent.purpose else "")
    return "assistant" + (f": {intent.purpose}" if intent.purpose else "")


def _cells(record: WorkerRecord, clock: ConsoleClock) -> dict[str, Text | str]:
    return {
        "id": record.worker_id,
        "status": worker_status(record.status),
        "run": run_status(record.current_run_status, record.current_run_id),
        "intent": one_line(intent_text(record.spec), 26),
        "profile": one_line(record.spec.profile, 13),
        "queue": str(record.queued),
        "transcript": str(record.transcript_len),
        "activity": clock.time(record.updated_at),
    }


class WorkersTable(FixedTable[Text | str]):
    """Workers of the selected runtime."""

    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "scroll_top", "Top", show=False),
        Binding("G", "scroll_bottom", "Bottom", show=False),
    ]

    class WorkerHighlighted(Message):
        def __init__(self, worker_id: str | None) -> None:
            super().__init__()
            self.worker_id = worker_id

    def __init__(self, clock: ConsoleClock | None = None, *, id: str | None = None) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, id=id)
        self.clock = clock or ConsoleClock()
        self._shown: dict[str, dict[str, Text | str]] = {}
        self._later: dict[str, WorkerRecord] = {}  # rows not added yet, in order
        self.runtime_id: str | None = None

    def on_mount(self) -> None:
        for key, label, width in COLUMNS:
            self.add_column(label, key=key, width=width)

    @property
    def selected_worker_id(self) -> str | None:
        if not self._shown or self.cursor_row < 0 or self.cursor_row >= self.row_count:
            return None
        row_key, _ = self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0))
        return str(row_key.value)

    def show(self, runtime_id: str, records: list[WorkerRecord]) -> None:
        """Show another runtime's workers (a rebuild: only on switching runtime)."""
        self.runtime_id = runtime_id
        self.clear()
        self._shown.clear()
        self._later = {r.worker_id: r for r in records[FIRST_ROWS:]}
        self._add(records[:FIRST_ROWS])
        if self._later:
            self.call_after_refresh(self._add_later)

    @property
    def complete(self) -> bool:
        """Whether every worker of the runtime has its row."""
        return not self._later

    def _add_later(self) -> None:
        if not self._later:
            return
        keys = list(itertools.islice(self._later, CHUNK_ROWS))
        self._add([self._later.pop(k) for k in keys])
        if self._later:
            self.call_after_refresh(self._add_later)

    def update(self, records: list[WorkerRecord]) -> None:
        """Apply fresh records: new workers are added, changed cells rewritten in place."""
        if self._later:
            # Rows still to come keep their order: a fresher record just takes their place.
            now = [r for r in records if r.worker_id not in self._later]
            for r in records:
                if r.worker_id in self._later:
                    self._later[r.worker_id] = r
            records = [r for r in now if r.worker_id in self._shown]
            self._later.update({r.worker_id: r for r in now if r.worker_id not in self._shown})
        self._add(records)

    def _add(self, records: list[WorkerRecord]) -> None:
        for record in records:
            cells = _cells(record, self.clock)
            shown = self._shown.get(record.worker_id)
            if shown is None:
                self.add_row(*cells.values(), key=record.worker_id)
                self._shown[record.worker_id] = cells
                if self.row_count == 1:
                    self.post_message(self.WorkerHighlighted(record.worker_id))
                continue
            for column, value in cells.items():
                if shown[column] != value:
                    self.update_cell(record.worker_id, column, value)
            self._shown[record.worker_id] = cells

    def select_worker(self, worker_id: str) -> None:
        while worker_id in self._later:
            self._add_later()
        if worker_id in self._shown:
            self.move_cursor(row=self.get_row_index(worker_id))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if getattr(event.row_key, "value", None) is None:
            return  # an arrow key on an empty table highlights no row
        self.post_message(self.WorkerHighlighted(str(event.row_key.value)))
