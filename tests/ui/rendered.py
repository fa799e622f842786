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


def scrollbar_thumb_rows(app: App[Any], widget: Widget) -> list[int]:
    """The rows (0 = the top of the track) where `widget`'s vertical scrollbar draws its
    thumb, as drawn on the active screen (the thumb is the track's reversed cells)."""
    strips = app.screen._compositor.render_strips()
    region = widget.vertical_scrollbar.region
    return [
        y - region.y
        for y in range(region.y, region.bottom)
        if any(s.style is not None and s.style.reverse for s in strips[y].crop(region.x, region.right))
    ]
