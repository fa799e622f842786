"""Export the events matching a filter to a file: JSON lines or CSV. No Textual here.

The file is worker output, which may hold secrets a program printed, so it is
created owner-only (0600) like the database, and appears complete or not at
all (written beside the target as `NAME.part`, then renamed over it).

Its text came from programs the operator does not control, and a file is
read later by other programs, so it leaves through `tui.safe_text`:

- JSON lines are exact (decoding gives back the stored strings) with every
  unsafe character written as a `\\uXXXX` escape (`json_dumps`).
- CSV cells are cleaned like the screen shows them (`clean`: escape
  sequences, bidi and zero-width characters made visible), and a text cell
  a spreadsheet would take for a formula (starting with `=`, `+`, `-`, `@`,
  tab or carriage return, OWASP's list) gets a leading `'`, so opening the
  export runs nothing. The payload cell is the payload's exact JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import os
from pathlib import Path
from typing import IO, Literal, Protocol

from store.filters import Filter
from store.models import Batch, Event
from tui.safe_text import clean, json_dumps

__all__ = [
    "CSV_COLUMNS",
    "EXPORT_FORMATS",
    "ExportFormat",
    "ExportSource",
    "csv_cell",
    "export_events",
]

EXPORT_PAGE = 2_000
EXPORT_FORMATS = ("jsonl", "csv")
EXPORT_MODE = 0o600
CSV_COLUMNS = (
    "position",
    "at",
    "runtime_id",
    "seq",
    "level",
    "kind",
    "worker_id",
    "run_id",
    "run_seq",
    "message",
    "payload",
)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What makes a spreadsheet read a cell as a formula (OWASP, CSV injection)."""

ExportFormat = Literal["jsonl", "csv"]


class ExportSource(Protocol):
    """What an export reads (`store.event_store.EventStore` is one)."""

    async def last_position(self) -> int: ...

    async def read_after(self, position: int, limit: int, flt: Filter | None = None) -> Batch: ...


def csv_cell(text: str) -> str:
    """One CSV text cell: cleaned for display, and never a formula."""
    cleaned = clean(text)
    # Checked on the raw text too: `clean` turns a leading tab into spaces and
    # a lone CR into a picture, and some spreadsheets skip leading blanks.
    if text.startswith(FORMULA_STARTS) or cleaned.lstrip().startswith(FORMULA_STARTS):
        return "'" + cleaned
    return cleaned


def _csv_row(event: Event) -> list[str | int]:
    data = event.to_json_dict()
    return [
        event.position,
        csv_cell(data["at"]),
        csv_cell(event.runtime_id),
        event.seq,
        csv_cell(event.level.value),
        csv_cell(event.kind),
        csv_cell(event.worker_id or ""),
        csv_cell(event.run_id or ""),
        "" if event.run_seq is None else event.run_seq,
        csv_cell(event.message),
        csv_cell(json_dumps(data["payload"], sort_keys=True)),
    ]


def _write_page(handle: IO[str], fmt: ExportFormat, events: list[Event]) -> None:
    if fmt == "jsonl":
        handle.writelines(json_dumps(e.to_json_dict()) + "\n" for e in events)
    else:
        csv.writer(handle).writerows(_csv_row(e) for e in events)


def _open_export(path: Path, fmt: ExportFormat) -> IO[str]:
    """Create (or truncate) `path` owner-only and write the CSV header."""
    # O_NOFOLLOW: a symlink planted at the `.part` name must not redirect the write.
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, EXPORT_MODE)
    try:
        # The mode of os.open is cut by the umask and ignored for a file left
        # over by an interrupted export; set it outright.
        os.fchmod(fd, EXPORT_MODE)
        handle = os.fdopen(fd, "w", encoding="utf-8", newline="")
    except BaseException:
        os.close(fd)
        raise
    if fmt == "csv":
        csv.writer(handle).writerow(CSV_COLUMNS)
    return handle


def _finish(handle: IO[str]) -> None:
    """Flush to disk before the rename, so the renamed file is never an empty shell."""
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()


async def export_events(
    store: ExportSource, flt: Filter | None, path: Path, fmt: ExportFormat
) -> int:
    """Write every stored event matching `flt`, up to the last commit now, to `path`.

    Pages through the store (never more than one page in memory) and does the
    file work in a thread; the file appears complete or not at all, mode 0600
    (a file it replaces included). Raises ValueError for an unknown format
    and OSError/StoreError as they come.
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
    upto = await store.last_position()  # a live stream must not make the export endless
    partial = path.with_name(path.name + ".part")
    handle = await asyncio.to_thread(_open_export, partial, fmt)
    count = 0
    try:
        position = 0
        while position < upto:
            batch = await store.read_after(position, EXPORT_PAGE, flt)
            page = [e for e in batch.events if e.position <= upto]
            if page:
                await asyncio.to_thread(_write_page, handle, fmt, page)
                count += len(page)
            if not batch.has_more or len(page) < len(batch.events):
                break
            position = batch.cursor.position
        await asyncio.to_thread(_finish, handle)
        await asyncio.to_thread(partial.replace, path)
    except BaseException:
        handle.close()
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
    return count
