"""Time and identity, injectable so tests and snapshots are deterministic."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

import uuid6


class Clock(Protocol):
    def now(self) -> datetime: ...


class IdSource(Protocol):
    def event_id(self) -> uuid.UUID: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class Uuid7Ids:
    """Time-ordered UUIDv7 event ids (the dedupe key of every event)."""

    def event_id(self) -> uuid.UUID:
        return uuid.UUID(bytes=uuid6.uuid7().bytes)


@dataclass
class SteppingClock:
    """A clock for tests: starts at `start` and moves `step` per reading."""

    start: datetime = field(default_factory=lambda: datetime(2026, 1, 1, 9, 0, tzinfo=UTC))
    step: timedelta = timedelta(milliseconds=10)

    def __post_init__(self) -> None:
        self._now = self.start

    def now(self) -> datetime:
        current = self._now
        self._now += self.step
        return current

    def advance(self, delta: timedelta) -> None:
        self._now += delta


@dataclass
class CountingIds:
    """Deterministic version-7-shaped ids for tests and seeded scenes."""

    prefix: int = 0x0192_0000_0000
    _n: int = 0

    def event_id(self) -> uuid.UUID:
        self._n += 1
        # 48-bit timestamp field, version 7, variant bits, then the counter.
        value = (self.prefix << 80) | (0x7 << 76) | (0b10 << 62) | self._n
        return uuid.UUID(int=value)
