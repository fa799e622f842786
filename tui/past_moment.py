"""A past moment as an operator names it: a position, or a time. No Textual here.

`agentdeck --at`, `agentdeck events --at` and the console's jump input all
take the same words:

- `12345` or `12,345`: a position in the log (0: before the first event);
- `2026-11-30T03:12:00Z` (ISO 8601; a time without a zone is UTC, like the
  filter language's dates): the last event committed at or before it;
- `03:12` or `03:12:07`: that time today, in the console's zone (the local
  one unless told otherwise), so an operator can type what the screen shows.

Everything that can be wrong (a negative or unparsable value, a position
beyond the log, a time in the future or before the first event) is a
`MomentError` whose text is one line for the operator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, tzinfo
from typing import Protocol

from store.filters import Filter
from store.models import Batch

_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
_POSITION = re.compile(r"^-?[\d,_]+$")


class MomentError(ValueError):
    """A moment that names nothing in the log; the text is one line for the operator."""


@dataclass(frozen=True)
class Moment:
    """A position, or a time (aware, UTC): what the operator asked for."""

    text: str
    position: int | None = None
    at: datetime | None = None


class MomentSource(Protocol):
    """What finding a moment in the log reads (any `EventLog`)."""

    async def last_position(self) -> int: ...

    async def position_at(self, at_us: int) -> int: ...

    async def read_after(self, position: int, limit: int, flt: Filter | None = None) -> Batch: ...


def parse_moment(text: str, *, tz: tzinfo | None = None, now: datetime | None = None) -> Moment:
    """`text` as a moment (raises MomentError). `tz`: the zone of a bare `HH:MM` (None:
    the local one); `now`: what "today" means (default: the system clock)."""
    words = text.strip()
    if not words:
        raise MomentError("give a position (12345) or a time (2026-11-30T03:12:00Z or 03:12)")
    if _POSITION.match(words):
        digits = words.replace(",", "").replace("_", "")
        if digits.lstrip("-") == "":
            raise MomentError(f"{words!r} is not a position")
        position = int(digits)
        if position < 0:
            raise MomentError(f"a position is 0 or more, not {words}")
        return Moment(words, position=position)
    clock = _CLOCK.match(words)
    if clock is not None:
        hour, minute, second = (int(g) if g else 0 for g in clock.groups())
        if hour > 23 or minute > 59 or second > 59:
            raise MomentError(f"{words!r} is not a time of day (HH:MM or HH:MM:SS)")
        today = (now or datetime.now(UTC)).astimezone(tz).date()
        local = datetime.combine(today, time(hour, minute, second))
        # `astimezone` on a naive time takes it as the system's local time; with a zone, attach it.
        aware = local.replace(tzinfo=tz) if tz is not None else local.astimezone()
        return Moment(words, at=aware.astimezone(UTC))
    try:
        at = datetime.fromisoformat(words.replace("z", "Z"))
    except ValueError:
        raise MomentError(
            f"{words!r} is neither a position (12345) nor a time "
            "(2026-11-30T03:12:00Z, or HH:MM[:SS] today)"
        ) from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return Moment(words, at=at.astimezone(UTC))


def _us(at: datetime) -> int:
    delta = at - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _shown(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _named(moment: Moment) -> str:
    """The moment as the operator gave it, with the UTC time it means when that differs."""
    assert moment.at is not None
    if _CLOCK.match(moment.text.strip()):
        return f"{moment.text.strip()} today ({_shown(moment.at)})"
    return _shown(moment.at)


async def find_moment(
    log: MomentSource, moment: Moment, *, now: datetime | None = None
) -> int:
    """The position `moment` names in `log` (raises MomentError when it names none)."""
    last = await log.last_position()
    if moment.position is not None:
        if moment.position > last:
            raise MomentError(
                f"position {moment.position:,} is beyond the log (its last position is {last:,})"
            )
        return moment.position
    assert moment.at is not None
    if moment.at > (now or datetime.now(UTC)):
        raise MomentError(f"{_named(moment)} is in the future")
    first = await log.read_after(0, 1)
    if not first.events:
        raise MomentError("the log is empty: there is no past to show")
    if moment.at < first.events[0].at:
        raise MomentError(
            f"{_named(moment)} is before the first event "
            f"({_shown(first.events[0].at)})"
        )
    return await log.position_at(_us(moment.at))
