"""What a pane shows, read from the screen's compositor (what the terminal would get)."""

from __future__ import annotations

from typing import Any

from textual.app import App
from textual.widget import Widget


def pane_rows(app: App[Any], widget: Widget) -> list[str]:
    """The rows inside `widget`'s border as drawn on the active screen, right-stripped."""
    strips = app.screen._compositor.render_strips()
    region = widget.scrollable_content_region
    return [
        strips[y].crop(region.x, region.right).text.rstrip()
        for y in range(region.y, region.bottom)
    ]


def pane_border(app: App[Any], widget: Widget, *, bottom: bool = True) -> str:
    """The top or bottom border row of `widget` as drawn (titles and subtitles live there)."""
    strips = app.screen._compositor.render_strips()
    region = widget.region
    y = region.bottom - 1 if bottom else region.y
    return strips[y].crop(region.x, region.right).text


def content_rows(rows: list[str]) -> list[str]:
    """`rows` without the blank ones at the end."""
    out = list(rows)
    while out and not out[-1].strip():
        out.pop()
    return out
