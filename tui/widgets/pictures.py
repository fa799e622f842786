"""`PicturesStrip`: the fleet at a glance, four rows under the header (`v` shows or hides it).

Left, events per second over the last five minutes, one sparkline per level
stacked (info, warnings, errors); middle, runs open right now by status, runs
that ended in the last hour by outcome, and errors per minute over the last
hour; right, how long runs took per profile over the last hour (p50 / p95).

Beside each sparkline, "now" (the mean over the last NOW_S full seconds, or
this minute's errors) and "peak" (the busiest second, or minute, of the
window). A cell of the sparkline is the mean rate of the seconds it covers
(five minutes on 40 cells: 8 s a cell), so the newest cell is always whole.

Drawn from the store (`ConsoleBackend.fleet_picture`, one query set per
refresh), so a console opened on an hour-old database shows that hour at once;
never from the events that happened to arrive live.

Why a custom render and not Textual's `Sparkline` (or a plotting widget):
- Each level gets its own row, scaled to its own peak: on a common scale a
  1% error rate is a flat line, and "is the error rate climbing?" is the
  question. Its figures are printed beside each row, so the scale is never hidden.
- One widget, one `render` of four short lines per refresh: three to five
  `Sparkline` widgets (each its own layout, styles and gradient) cost more for
  the same cells, and cannot share one row with the labels and figures.
- Nothing here needs axes, zoom or legends, which is what textual-plotext
  would bring (with plotext's own renderer on every refresh): not worth a
  dependency on a strip of four rows.
- No state is told by colour alone: every row has a word, runs have the
  console's status marks (tui.widgets.labels), failures a ✗.

Cheap under load: the widget reads on a timer (`REFRESH_S`) in a worker, only
while it is shown and its screen says it is live (not paused, not covered:
`active`), never twice at once, and draws what it read in one `refresh`.
Measured on a log a 10k events/s load filled for 30 s: a read takes ~18 ms in
the reader's thread and ~3 ms of the UI thread; drawing the strip ~0.3 ms.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import ClassVar, Generic, TypeVar

from rich.style import Style
from rich.text import Text
from textual import work
from textual.widget import Widget

from store.models import RunStatus
from store.pictures import RATE_WINDOW_S, FleetPicture, ProfileDurations

P = TypeVar("P")

REFRESH_S = 1.5
"""How often the strip re-reads the store while it is shown and live."""
BLOCKS = " ▁▂▃▄▅▆▇█"
"""Sparkline cells: blank for nothing, then eighths (any non-zero value shows)."""
NOW_S = 10
"""The "now" rate is the mean over this many full seconds (the current one is partial)."""
SEP = " │ "

OPEN_ORDER = (RunStatus.EXECUTING, RunStatus.PLANNING, RunStatus.VERIFYING, RunStatus.CREATED)
ENDED_ORDER = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)
SHORT = {
    RunStatus.CREATED: "queued",
    RunStatus.PLANNING: "plan",
    RunStatus.EXECUTING: "exec",
    RunStatus.VERIFYING: "verify",
    RunStatus.COMPLETED: "ok",
    RunStatus.FAILED: "failed",
    RunStatus.CANCELLED: "cancel",
}
MARK = {
    RunStatus.CREATED: ("…", "queued"),
    RunStatus.PLANNING: ("◔", "planning"),
    RunStatus.EXECUTING: ("◑", "executing"),
    RunStatus.VERIFYING: ("◕", "verifying"),
    RunStatus.COMPLETED: ("✓", "completed"),
    RunStatus.FAILED: ("✗", "failed"),
    RunStatus.CANCELLED: ("⊘", "cancelled"),
}
"""The marks and words of tui.widgets.labels, here without their colours (the strip's
own component classes colour them, so themes apply)."""

Styles = dict[str, Style]
"""Rich styles by name: label, dim, info, warning, error, ok, open, sep."""
PLAIN: Styles = {}
NULL = Style.null()


# -- small pieces, shared with the worker view's picture ---------------------------


def spark(values: Sequence[float], top: float | None = None) -> str:
    """One row of block characters, scaled to `top` (default: the largest value)."""
    peak = max(values, default=0.0) if top is None else top
    if peak <= 0:
        return " " * len(values)
    out = []
    for value in values:
        if value <= 0:
            out.append(" ")
        else:
            out.append(BLOCKS[max(1, min(8, math.ceil(value / peak * 8)))])
    return "".join(out)


def bucket(values: Sequence[float], columns: int) -> list[float]:
    """`values` squeezed into at most `columns` cells, newest (last) kept whole.

    Each cell is the mean of the slots it covers, so a cell of five seconds
    still reads in events per second.
    """
    if columns <= 0 or not values:
        return []
    per = max(1, math.ceil(len(values) / columns))
    cells: list[float] = []
    end = len(values)
    while end > 0 and len(cells) < columns:
        start = max(0, end - per)
        chunk = values[start:end]
        cells.append(sum(chunk) / len(chunk))
        end = start
    cells.reverse()
    return cells


def rate(value: float) -> str:
    """A count or rate in at most five characters: 0, 7.5, 980, 9.8k, 12k, 1.2M."""
    if value <= 0:
        return "0"
    if value < 10 and value != int(value):
        return f"{value:.1f}"
    if value < 999.5:
        return f"{value:.0f}"
    if value < 9_950:
        return f"{value / 1_000:.1f}k"
    if value < 999_500:
        return f"{value / 1_000:.0f}k"
    return f"{value / 1_000_000:.1f}M"


def seconds(value: float) -> str:
    """A duration in at most five characters: 0.4s, 12s, 3.5m, 12m, 1.5h."""
    if value < 10:
        return f"{value:.1f}s"
    if value < 60:
        return f"{value:.0f}s"
    if value < 600:
        return f"{value / 60:.1f}m"
    if value < 3600:
        return f"{value / 60:.0f}m"
    return f"{value / 3600:.1f}h"


def span_text(span_s: int) -> str:
    """How far back ended runs reach, as the strip names it: `1h`, or `12m` when the
    picture covers only the newest runs of a busy hour (store.pictures.ended_span_s)."""
    if span_s >= 3600 and span_s % 3600 == 0:
        return f"{span_s // 3600}h"
    if span_s >= 60:
        return f"{span_s // 60}m"
    return f"{span_s}s"


def fit(text: str, width: int) -> str:
    """`text` cut to `width` cells with an ellipsis, or padded to it."""
    if width <= 0:
        return ""
    if len(text) > width:
        return text[: width - 1] + "…"
    return text.ljust(width)


def cut(line: Text, width: int) -> Text:
    """`line` cut or padded to exactly `width` cells."""
    if width <= 0:
        return Text(end="")
    line.truncate(width, overflow="ellipsis", pad=True)
    return line


# -- the strip ---------------------------------------------------------------------

HEIGHT = 4
"""Rows of the strip: a title row, then three rows of pictures."""


def layout(width: int) -> tuple[int, int, int]:
    """Widths of the three blocks (rates, runs, durations) in `width` cells."""
    room = max(0, width - 2 * len(SEP))
    rates = max(24, room * 40 // 100)
    durations = max(20, room * 30 // 100)
    return rates, max(0, room - rates - durations), durations


def _title(left: str | Sequence[str], right: str, width: int, styles: Styles) -> Text:
    """`left` (the first of its choices that fits) and `right`, right-aligned."""
    room = max(0, width - len(right))
    choices = [left] if isinstance(left, str) else list(left)
    chosen = next((c for c in choices if len(c) <= room), choices[-1])
    line = Text(no_wrap=True, end="")
    line.append(fit(chosen, room), styles.get("label", NULL))
    line.append(right, styles.get("label", NULL))
    return cut(line, width)


def rate_rows(picture: FleetPicture, width: int, styles: Styles) -> list[Text]:
    """Events per second over RATE_WINDOW_S, one sparkline per level, each with its figures."""
    full = picture.per_second[:-1]  # the current second is still filling
    label_w, figure_w = 6, 13
    columns = max(1, width - label_w - figure_w)
    minutes = RATE_WINDOW_S // 60
    titles = (f"events/s · {minutes} min", f"ev/s · {minutes} min", "ev/s")
    rows = [_title(titles, "   now  peak ", width, styles)]
    for name, title in (("info", "info"), ("warning", "warn"), ("error", "error")):
        values = [float(getattr(slot, name)) for slot in full]
        cells = bucket(values, columns)
        peak = max(values, default=0.0)  # the busiest full second, whatever a cell averages
        recent = values[-NOW_S:]
        now = sum(recent) / len(recent) if recent else 0.0
        line = Text(no_wrap=True, end="")
        line.append(fit(title, label_w), styles.get("label", NULL))
        line.append(spark(cells).rjust(columns), styles.get(name, NULL))
        line.append(f" {rate(now):>5} {rate(peak):>5} ", styles.get("dim", NULL))
        rows.append(cut(line, width))
    return rows


def _status_counts(
    counts: dict[RunStatus, int], order: Sequence[RunStatus], words: int, styles: Styles
) -> Text:
    """`◑12 executing · ◔3 planning` (words 2), `◑12 exec ◔3 plan` (1), `◑12 ◔3` (0)."""
    out = Text(no_wrap=True, end="")
    shown = [s for s in order if counts.get(s, 0)] or list(order[:1])
    for index, status in enumerate(shown):
        mark, word = MARK[status]
        if index:
            out.append(" · " if words == 2 else " ")
        style = styles.get(status.value, NULL)
        out.append(f"{mark}{counts.get(status, 0)}", style)
        if words:
            out.append(f" {word if words == 2 else SHORT[status]}", style)
    return out


def run_rows(picture: FleetPicture, width: int, styles: Styles) -> list[Text]:
    """Runs open by status, runs ended in the last hour by outcome, errors per minute."""
    label_w = 6
    hours = span_text(picture.ended_span_s)
    titles = (f"runs now · ended {hours} · errors/min", f"runs · {hours} · err/min", "runs")
    rows = [_title(titles, "", width, styles)]
    for title, counts, order in (
        ("now", picture.runs_open, OPEN_ORDER),
        (hours, picture.runs_ended, ENDED_ORDER),
    ):
        for words in (2, 1, 0):
            body = _status_counts(counts, order, words, styles)
            if body.cell_len <= width - label_w:
                break
        line = Text(fit(title, label_w), styles.get("label", NULL), no_wrap=True, end="")
        line.append_text(body)
        rows.append(cut(line, width))
    errors = [float(n) for n in picture.errors_per_minute]
    figure_w = 10
    columns = max(1, width - label_w - figure_w)
    cells = bucket(errors, columns)
    line = Text(fit("err/m", label_w), styles.get("label", NULL), no_wrap=True, end="")
    line.append(spark(cells).rjust(columns), styles.get("error", NULL))
    now = errors[-1] if errors else 0
    line.append(f" {rate(now):>4} {rate(max(errors, default=0)):>4}", styles.get("dim", NULL))
    rows.append(cut(line, width))
    return rows


def duration_rows(picture: FleetPicture, width: int, styles: Styles) -> list[Text]:
    """p50 / p95 per profile over runs that ended in the last hour, busiest profiles first."""
    fails = width >= 30  # a column of failures when there is room for names beside it
    figures = "   p50   p95" + ("    ✗" if fails else "")
    name_w = max(4, width - len(figures))
    hours = span_text(picture.ended_span_s)
    rows = [_title((f"run time {hours}", f"time {hours}", hours), figures, width, styles)]
    busiest: list[ProfileDurations] = sorted(picture.durations, key=lambda d: (-d.runs, d.profile))
    room = HEIGHT - 1
    shown = busiest if len(busiest) <= room else busiest[: room - 1]
    for item in shown:
        line = Text(fit(item.profile, name_w), no_wrap=True, end="")
        line.append(f" {seconds(item.p50_s):>5} {seconds(item.p95_s):>5}", styles.get("ok", NULL))
        if fails and item.failed:
            line.append(f" {rate(item.failed):>4}", styles.get("error", NULL))
        rows.append(cut(line, width))
    if len(shown) < len(busiest):
        rest = len(busiest) - len(shown)
        rows.append(cut(Text(f"+{rest} more profile{'s' if rest > 1 else ''}",
                              styles.get("dim", NULL), end=""), width))
    if not busiest:
        rows.append(cut(Text(f"no run ended in {hours}", styles.get("dim", NULL), end=""), width))
    while len(rows) < HEIGHT:
        rows.append(cut(Text(end=""), width))
    return rows


def strip_lines(picture: FleetPicture | None, width: int, styles: Styles = PLAIN) -> list[Text]:
    """The strip's HEIGHT lines for `picture` at `width` cells."""
    if picture is None:
        lines = [Text("reading the store…", styles.get("dim", NULL), end="")]
        return [cut(line, width) for line in lines + [Text(end="") for _ in range(HEIGHT - 1)]]
    rates_w, runs_w, durations_w = layout(width)
    blocks = (
        rate_rows(picture, rates_w, styles),
        run_rows(picture, runs_w, styles),
        duration_rows(picture, durations_w, styles),
    )
    lines = []
    for row in range(HEIGHT):
        line = Text(no_wrap=True, end="")
        for index, block in enumerate(blocks):
            if index:
                line.append(SEP, styles.get("sep", NULL))
            line.append_text(block[row])
        lines.append(cut(line, width))
    return lines


def _micros(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000)


class Polled(Widget, Generic[P]):
    """A picture re-read from the store every `refresh_s` while it is shown and live.

    `read(now_us)` is the one query set of a refresh; it runs in a worker, never
    twice at once, and not at all while the widget is hidden or `active()` says
    nobody would see it (a paused console, a covered screen).
    """

    refresh_s: ClassVar[float] = REFRESH_S

    def __init__(
        self,
        read: Callable[[int], Awaitable[P]],
        now: Callable[[], datetime],
        active: Callable[[], bool] = lambda: True,
        *,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self._read = read
        self._now = now
        self._active = active
        self.picture: P | None = None
        self.reads = 0
        """Pictures read so far (tests wait on it)."""
        self._reading = False

    def on_mount(self) -> None:
        self.set_interval(self.refresh_s, self.poll)
        self.poll()

    @property
    def live(self) -> bool:
        """Whether a read now would be seen: shown, on a live screen, not paused."""
        return self.is_attached and self.display and self._active()

    def poll(self) -> None:
        """Read again now, unless nobody would see it or a read is under way."""
        if self.live and not self._reading:
            self._reading = True
            self._load()

    @work(group="picture", exit_on_error=False)
    async def _load(self) -> None:
        try:
            picture = await self._read(_micros(self._now()))
        except Exception:  # a closed or damaged store: keep the last picture, try again later
            return
        finally:
            self._reading = False
        self.picture = picture
        self.reads += 1
        self.refresh()


class PicturesStrip(Polled[FleetPicture]):
    """The fleet's pictures (every runtime of the database), four rows."""

    DEFAULT_CSS = Path(__file__).with_suffix(".tcss").read_text(encoding="utf-8")

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "pictures--label",
        "pictures--dim",
        "pictures--sep",
        "pictures--info",
        "pictures--warning",
        "pictures--error",
        "pictures--ok",
        "pictures--open",
        "pictures--cancelled",
    }

    def _styles(self) -> Styles:
        def style(name: str) -> Style:
            return self.get_component_rich_style(f"pictures--{name}", partial=True)

        styles = {name: style(name) for name in
                  ("label", "dim", "sep", "info", "warning", "error", "ok", "open")}
        styles[RunStatus.COMPLETED.value] = styles["ok"]
        styles[RunStatus.FAILED.value] = styles["error"]
        styles[RunStatus.CANCELLED.value] = style("cancelled")
        for status in OPEN_ORDER:
            styles[status.value] = styles["open"]
        return styles

    def render(self) -> Text:
        lines = strip_lines(self.picture, self.content_size.width, self._styles())
        return Text("\n", end="").join(lines)
