"""`LiveScreen`: a screen the console feed hands its batches to."""

from __future__ import annotations

from collections.abc import Iterable

from textual.app import SystemCommand
from textual.screen import Screen

from tui.feed import FeedBatch


class LiveScreen(Screen[None]):
    """A screen that shows live state: the app hands it every batch of the console feed."""

    def apply_batch(self, batch: FeedBatch) -> None:
        """New events (or a hole: re-read what is shown). Called for covered screens too."""

    def selected_text(self) -> str | None:
        """What `y` copies on this screen."""
        return None

    def commands(self) -> Iterable[SystemCommand]:
        """This screen's entries in the command palette."""
        return ()
