"""`FixedTable`: a `DataTable` whose columns all have a fixed width and rows one line.

Textual's `DataTable` measures every cell of every new row, and of every
updated cell, to size auto-width columns (and re-measures a whole column when
an updated cell got narrower). With fixed widths and one-line rows those
measures change nothing: for 1,000 workers they were most of the console's
first paint, and under load every cell update paid for its whole column. This
table skips them and only keeps its scrollable size right.

Its render caches are sized to a screen, not to 10,000 cells: their keys hold
the table's update count, so under load every redraw adds a screenful of new
entries, and the stock sizes kept growing the heap for a minute.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Generic, TypeVar

from textual.geometry import Size
from textual.widgets import DataTable
from textual.widgets._data_table import CellKey, RowKey

CellType = TypeVar("CellType")
CACHED_ROWS = 200
"""Rows (and lines) of rendering kept: a tall screen's worth, twice."""
CACHED_CELLS = 2_000
"""Cells of rendering kept (about ten columns of those rows)."""


class FixedTable(DataTable[CellType], Generic[CellType]):
    """Columns added with a width, rows with height 1 and no label (else plain `DataTable`)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._row_render_cache.maxsize = CACHED_ROWS
        self._cell_render_cache.maxsize = CACHED_CELLS
        self._row_renderable_cache.maxsize = CACHED_ROWS
        self._line_cache.maxsize = CACHED_ROWS

    def _fixed(self) -> bool:
        return not self._labelled_row_exists and all(
            not column.auto_width for column in self.columns.values()
        )

    def _update_column_widths(self, updated_cells: set[CellKey]) -> None:
        if not self._fixed():
            super()._update_column_widths(updated_cells)
            return
        self._require_update_dimensions = True

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        rows = list(new_rows)
        if not self._fixed() or any(
            (row := self.rows.get(key)) is not None and (row.auto_height or row.label is not None)
            for key in rows
        ):
            super()._update_dimensions(rows)
            return
        width = sum(column.get_render_width(self) for column in self.columns.values())
        header = self.header_height if self.show_header else 0
        self.virtual_size = Size(width + self._row_label_column_width, self._total_row_height + header)
