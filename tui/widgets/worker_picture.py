"""`RunsPicture`: the worker view's picture of its worker's recent runs.

One bar per run, oldest left, as tall as the run took (an open run: as long
as it has taken so far), coloured by outcome and counted by outcome with the
console's status marks above, so no outcome is told by colour alone. Below:
the median, the 95th percentile and the longest, over the runs shown.

Read from the store (`ConsoleBackend.worker_picture`, one query per refresh)
by `tui.widgets.pictures.Polled`: on a timer, only while the worker view is
on top. Drawn by hand for the reasons the strip is (tui.widgets.pictures):
a bar per run coloured by its own outcome is one `render` of a few lines.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from rich.style import Style
from rich.text import Text

from store.models import RunStatus
from store.pictures import RunPoint, WorkerPicture
from tui.widgets.pictures import BLOCKS, MARK, NULL, Polled, Styles, cut, seconds

BAR_ROWS = 3
"""Rows of bars (24 steps of height)."""
ORDER = (
    RunStatus.COMPLETED,
    RunStatus.FAILED,
    RunStatus.CANCELLED,
    RunStatus.EXECUTING,
    RunStatus.PLANNING,
    RunStatus.VERIFYING,
    RunStatus.CREATED,
)


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ranked = sorted(values)
    return ranked[max(0, math.ceil(pct / 100 * len(ranked)) - 1)]


def bars(durations: Sequence[float], rows: int) -> list[str]:
    """Columns of block characters, `rows` high, scaled to the longest duration; top row first."""
    top = max(durations, default=0.0)
    steps = [
        0 if top <= 0 or d <= 0 else max(1, min(rows * 8, math.ceil(d / top * rows * 8)))
        for d in durations
    ]
    return [
        "".join(BLOCKS[max(0, min(8, step - 8 * (rows - 1 - row)))] for step in steps)
        for row in range(rows)
    ]


def picture_lines(picture: WorkerPicture | None, width: int, styles: Styles) -> list[Text]:
    """The picture's lines (a count line, BAR_ROWS of bars, a figures line) at `width`."""
    height = BAR_ROWS + 2
    runs: Sequence[RunPoint] = picture.runs[-max(1, width):] if picture is not None else ()
    if picture is None or not runs:
        note = "reading the store…" if picture is None else "no runs yet"
        lines = [Text(note, styles.get("dim", NULL), end="")]
        return [cut(line, width) for line in lines + [Text(end="") for _ in range(height - 1)]]
    counts = Text(no_wrap=True, end="")
    counts.append(f"{len(runs)} run{'s' if len(runs) > 1 else ''} ", styles.get("label", NULL))
    for status in ORDER:
        n = sum(1 for run in runs if run.status is status)
        if n:
            counts.append(f" {MARK[status][0]}{n}", styles.get(status.value, NULL))
    durations = [run.duration_s(picture.now_us) for run in runs]
    lines = [counts]
    for row in bars(durations, BAR_ROWS):
        line = Text(no_wrap=True, end="")
        for run, cell in zip(runs, row, strict=True):
            line.append(cell, styles.get(run.status.value, NULL))
        lines.append(line)
    ended = [d for run, d in zip(runs, durations, strict=True) if run.ended_at_us is not None]
    figures = (
        f"p50 {seconds(percentile(ended, 50))}  p95 {seconds(percentile(ended, 95))}"
        f"  max {seconds(max(durations))}"
    )
    lines.append(Text(figures, styles.get("dim", NULL), end=""))
    return [cut(line, width) for line in lines]


class RunsPicture(Polled[WorkerPicture]):
    """How long the worker's recent runs took, and how they ended."""

    DEFAULT_CSS = Path(__file__).with_suffix(".tcss").read_text(encoding="utf-8")
    refresh_s: ClassVar[float] = 2.0

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "runs-picture--label",
        "runs-picture--dim",
        "runs-picture--ok",
        "runs-picture--failed",
        "runs-picture--cancelled",
        "runs-picture--open",
    }

    def _styles(self) -> Styles:
        def style(name: str) -> Style:
            return self.get_component_rich_style(f"runs-picture--{name}", partial=True)

        styles = {"label": style("label"), "dim": style("dim")}
        styles[RunStatus.COMPLETED.value] = style("ok")
        styles[RunStatus.FAILED.value] = style("failed")
        styles[RunStatus.CANCELLED.value] = style("cancelled")
        for status in (
            RunStatus.CREATED, RunStatus.PLANNING, RunStatus.EXECUTING, RunStatus.VERIFYING
        ):
            styles[status.value] = style("open")
        return styles

    def render(self) -> Text:
        lines = picture_lines(self.picture, self.content_size.width, self._styles())
        return Text("\n", end="").join(lines)
