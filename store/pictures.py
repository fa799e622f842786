"""Pictures of the fleet: what the console's strip and the worker view draw.

Drawn from the store, so a console opened on an hour-old database shows the
last hour at once: the event rate from the `activity` rollup (events per
runtime, second and level, kept by the fold in the append's transaction),
runs from the `runs` projection (`ended_at` says when a run ended).

CONTRACT (issue 11): the records below are fixed; the queries that fill them
live in the store's reader (`fleet_picture`, `worker_picture`).
"""

from __future__ import annotations

from dataclasses import dataclass

from store.models import RunStatus

RATE_WINDOW_S = 300
"""Events per second are drawn over the last five minutes."""
ERROR_WINDOW_MIN = 60
"""Errors per minute over the last hour."""
DURATION_WINDOW_S = 3600
"""Run durations per profile over runs that ended in the last hour."""


@dataclass(frozen=True)
class LevelCounts:
    """Events in one time slot, by level."""

    info: int = 0
    warning: int = 0
    error: int = 0

    @property
    def total(self) -> int:
        return self.info + self.warning + self.error


@dataclass(frozen=True)
class ProfileDurations:
    """How long the runs of one profile took, over runs that ended in the window."""

    profile: str
    runs: int
    p50_s: float
    p95_s: float
    failed: int  # of `runs`, how many failed or were cancelled


@dataclass(frozen=True)
class FleetPicture:
    """Every runtime of the database, at `now_us`."""

    now_us: int
    per_second: tuple[LevelCounts, ...]
    """RATE_WINDOW_S slots, oldest first; the last is the second holding `now_us`."""
    errors_per_minute: tuple[int, ...]
    """ERROR_WINDOW_MIN slots, oldest first; the last is the minute holding `now_us`."""
    runs_open: dict[RunStatus, int]
    """Runs not yet ended, by status (created, planning, executing, verifying), right now."""
    runs_ended: dict[RunStatus, int]
    """Runs that ended in the last DURATION_WINDOW_S, by status (completed, failed, cancelled)."""
    durations: tuple[ProfileDurations, ...]
    """Per profile (sorted by name), over runs that ended in the last DURATION_WINDOW_S."""
    ended_span_s: int = DURATION_WINDOW_S
    """How far back `runs_ended` and `durations` reach: DURATION_WINDOW_S, or less when
    more runs ended in it than a picture reads (the newest only; store.picture_reads)."""


@dataclass(frozen=True)
class RunPoint:
    """One run of a worker, for the worker view's picture."""

    run_id: str
    status: RunStatus
    created_at_us: int
    ended_at_us: int | None  # None while the run is open

    def duration_s(self, now_us: int) -> float:
        """How long it took, or has taken so far."""
        end = self.ended_at_us if self.ended_at_us is not None else now_us
        return max(0, end - self.created_at_us) / 1_000_000


@dataclass(frozen=True)
class WorkerPicture:
    """A worker's most recent runs, oldest first."""

    now_us: int
    runs: tuple[RunPoint, ...]
