"""The one clock every time on screen goes through: local time, the zone named once.

Stored times are UTC; the console shows them in one zone (the local one unless
a test or a scene injects another), so the event log, the transcript, the
workers table and the worker view show the same event at the same time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, tzinfo


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ConsoleClock:
    """Formats stored times for display; `now` feeds relative filters and host staleness."""

    def __init__(
        self, tz: tzinfo | None = None, now: Callable[[], datetime] | None = None
    ) -> None:
        self.tz = tz  # None: the local zone, as the operating system says now
        self.now: Callable[[], datetime] = now or _utc_now

    def local(self, at: datetime) -> datetime:
        return at.astimezone(self.tz)

    def time(self, at: datetime) -> str:
        """`HH:MM:SS`."""
        return self.local(at).strftime("%H:%M:%S")

    def time_ms(self, at: datetime) -> str:
        """`HH:MM:SS.mmm` (the event log)."""
        local = self.local(at)
        return local.strftime("%H:%M:%S.") + f"{local.microsecond // 1000:03d}"

    def date_time(self, at: datetime) -> str:
        """`YYYY-MM-DD HH:MM:SS`."""
        return self.local(at).strftime("%Y-%m-%d %H:%M:%S")

    @property
    def zone(self) -> str:
        """The zone's name as shown once per screen (`UTC`, `CET`, ...)."""
        return self.local(self.now()).tzname() or "local time"
