"""The pictures' queries (store.pictures): the reader's `fleet_picture` and `worker_picture`.

A console calls these every second or two while the log grows at up to 10k
events/s, so every query is a bounded range of an index, whatever the age or
size of the database:

- the event rate and the errors per minute from the `activity` rollup (the
  fold keeps it in the append's transaction): at most RATE_WINDOW_S, or
  ERROR_WINDOW_MIN minutes of error rows (the `activity_errors` partial
  index), times the runtimes;
- the open runs by status from the `runs_open` partial index (its size is
  the backlog, not the history);
- the runs that ended in the last hour from `runs_by_end`, which covers the
  columns read, newest first and at most MAX_ENDED_RUNS of them. A fleet
  ending more runs than that in an hour (more than ~1.4 a second; a demo at
  10k events/s ends ~600 a second) gets `runs_ended` and the durations over
  its newest MAX_ENDED_RUNS runs, the last minutes of the hour: counting the
  whole hour would read up to millions of index entries every second (about
  0.3 µs each), and so would exact percentiles.

A worker's profile comes from its spec (`workers.spec`), which never changes
after `worker.created`: it is read once per worker and kept.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from store.codec import load_payload
from store.errors import LimitTooLarge, StoreError
from store.models import TERMINAL_RUN_STATUSES, RunStatus, WorkerRef, WorkerSpec
from store.pictures import (
    DURATION_WINDOW_S,
    ERROR_WINDOW_MIN,
    RATE_WINDOW_S,
    FleetPicture,
    LevelCounts,
    ProfileDurations,
    RunPoint,
    WorkerPicture,
)

MAX_ENDED_RUNS = 5_000
"""Most ended runs read per fleet picture (the newest of the hour): bounds its cost."""
MAX_WORKER_RUNS = 1_000
"""Most runs a worker picture may ask for."""
PROFILE_LOOKUP = 500  # worker ids per lookup of unknown profiles
DEFAULT_PROFILE = str(WorkerSpec.model_fields["profile"].default)
"""A spec that names no profile runs the default one (what the console shows for it)."""
ERROR_LEVEL = 2  # store.models.Severity.ERROR.rank
_US = 1_000_000
OPEN_STATUSES = tuple(s for s in RunStatus if not s.terminal)
ENDED_STATUSES = tuple(s for s in RunStatus if s.terminal)
_NOT_ENDED = "status NOT IN ('completed', 'failed', 'cancelled')"  # runs_open's own WHERE
assert {RunStatus(s) for s in ("completed", "failed", "cancelled")} == TERMINAL_RUN_STATUSES


def nearest_rank(ordered: Sequence[int], p: float) -> int:
    """The p-th percentile (0 < p <= 100) of `ordered` (sorted, not empty) by nearest
    rank: the smallest duration that at least p% of the runs took no longer than."""
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


class PictureReads:
    """`fleet_picture` and `worker_picture`, for a reader with `fetchall` (both back ends)."""

    _profiles: dict[tuple[str, str], str]  # set by the reader's __init__

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    async def _activity_table(self) -> bool:
        """Whether the database has reached the pictures' schema (`activity`, `ended_at`)."""
        raise NotImplementedError

    async def fleet_picture(self, now_us: int) -> FleetPicture:
        """Every runtime of the database at `now_us` (store.pictures.FleetPicture)."""
        now_s = now_us // _US
        runs_open = await self._runs_open()
        if not await self._activity_table():
            # An observer's look at a file an older agentdeck still writes: no rollup
            # and no end times yet, so only what the runs table says now.
            return FleetPicture(
                now_us=now_us,
                per_second=(LevelCounts(),) * RATE_WINDOW_S,
                errors_per_minute=(0,) * ERROR_WINDOW_MIN,
                runs_open=runs_open,
                runs_ended=dict.fromkeys(ENDED_STATUSES, 0),
                durations=(),
            )
        ended, durations, span = await self._ended_runs(now_us)
        return FleetPicture(
            now_us=now_us,
            per_second=await self._per_second(now_s),
            errors_per_minute=await self._errors_per_minute(now_s),
            runs_open=runs_open,
            runs_ended=ended,
            durations=durations,
            ended_span_s=span,
        )

    async def worker_picture(self, ref: WorkerRef, now_us: int, limit: int = 60) -> WorkerPicture:
        """The worker's last `limit` runs, oldest first (store.pictures.WorkerPicture)."""
        if limit < 1:
            raise StoreError(f"worker picture limit must be at least 1 (got {limit})")
        if limit > MAX_WORKER_RUNS:
            raise LimitTooLarge("worker picture", limit, MAX_WORKER_RUNS)
        ended = "ended_at" if await self._activity_table() else "NULL"
        # runs_by_worker (runtime_id, worker_id, created_at), newest first: `limit`
        # index entries and as many row lookups.
        rows = await self.fetchall(
            f"SELECT run_id, status, created_at, {ended} FROM runs"
            " WHERE runtime_id = ? AND worker_id = ? ORDER BY created_at DESC, run_id DESC LIMIT ?",
            (ref.runtime_id, ref.worker_id, limit),
        )
        runs = tuple(
            RunPoint(
                run_id=str(run_id), status=RunStatus(status), created_at_us=int(created),
                ended_at_us=None if end is None else int(end),
            )
            for run_id, status, created, end in reversed(rows)
        )
        return WorkerPicture(now_us=now_us, runs=runs)

    # -- the parts -------------------------------------------------------------

    async def _per_second(self, now_s: int) -> tuple[LevelCounts, ...]:
        first = now_s - RATE_WINDOW_S + 1
        # The primary key (second, runtime_id, level): one range of the window's rows.
        rows = await self.fetchall(
            "SELECT second, level, sum(events) FROM activity WHERE second >= ? AND second <= ?"
            " GROUP BY second, level",
            (first, now_s),
        )
        slots = [[0, 0, 0] for _ in range(RATE_WINDOW_S)]
        for second, level, events in rows:
            slots[int(second) - first][min(max(int(level), 0), ERROR_LEVEL)] += int(events)
        return tuple(LevelCounts(info=i, warning=w, error=e) for i, w, e in slots)

    async def _errors_per_minute(self, now_s: int) -> tuple[int, ...]:
        first_minute = now_s // 60 - ERROR_WINDOW_MIN + 1
        # The activity_errors partial index (second) WHERE level = 2: only the
        # seconds that had errors, not every second of the hour.
        rows = await self.fetchall(
            "SELECT second, events FROM activity WHERE level = 2 AND second >= ? AND second <= ?",
            (first_minute * 60, now_s),
        )
        slots = [0] * ERROR_WINDOW_MIN
        for second, events in rows:
            slots[int(second) // 60 - first_minute] += int(events)
        return tuple(slots)

    async def _runs_open(self) -> dict[RunStatus, int]:
        # The runs_open partial index: the same WHERE as its own, so the planner takes it.
        rows = await self.fetchall(f"SELECT status, count(*) FROM runs WHERE {_NOT_ENDED} GROUP BY status")
        counts = dict.fromkeys(OPEN_STATUSES, 0)
        for status, n in rows:
            counts[RunStatus(status)] = int(n)
        return counts

    async def _ended_runs(
        self, now_us: int
    ) -> tuple[dict[RunStatus, int], tuple[ProfileDurations, ...], int]:
        """Ended runs by status, durations per profile, and how many seconds back they
        reach (less than the window when the newest MAX_ENDED_RUNS ended within it)."""
        # runs_by_end (ended_at, status, worker_id, created_at, + the key) covers it:
        # one range of at most MAX_ENDED_RUNS index entries, newest first.
        rows = await self.fetchall(
            "SELECT runtime_id, worker_id, status, ended_at - created_at, ended_at FROM runs"
            " WHERE ended_at >= ? AND ended_at <= ? ORDER BY ended_at DESC LIMIT ?",
            (now_us - DURATION_WINDOW_S * _US, now_us, MAX_ENDED_RUNS),
        )
        span = DURATION_WINDOW_S
        if len(rows) == MAX_ENDED_RUNS:
            # Capped: say how far back the newest runs reach rather than call it an hour.
            span = max(1, (now_us - int(rows[-1][4])) // _US)
        # One tight pass (this runs every second or two over up to MAX_ENDED_RUNS
        # rows): durations and failures per worker, then per profile.
        statuses: dict[str, int] = {}
        took: dict[tuple[str, str], list[int]] = {}
        failed: dict[tuple[str, str], int] = {}
        for runtime_id, worker_id, status, micros, _ in rows:
            key = (runtime_id, worker_id)
            durations = took.get(key)
            if durations is None:
                durations = took[key] = []
            durations.append(micros)
            statuses[status] = statuses.get(status, 0) + 1
            if status != "completed":
                failed[key] = failed.get(key, 0) + 1
        counts = dict.fromkeys(ENDED_STATUSES, 0)
        for status, n in statuses.items():
            counts[RunStatus(status)] = n
        profiles = await self._profiles_of(took.keys())
        by_profile: dict[str, list[int]] = defaultdict(list)
        failed_by_profile: dict[str, int] = defaultdict(int)
        for key, durations in took.items():
            profile = profiles.get(key, DEFAULT_PROFILE)
            by_profile[profile] += durations
            failed_by_profile[profile] += failed.get(key, 0)
        out = []
        for profile in sorted(by_profile):
            ordered = sorted(by_profile[profile])
            out.append(ProfileDurations(
                profile=profile, runs=len(ordered),
                p50_s=max(0, nearest_rank(ordered, 50)) / _US,
                p95_s=max(0, nearest_rank(ordered, 95)) / _US,
                failed=failed_by_profile[profile],
            ))
        return counts, tuple(out), span

    async def _profiles_of(
        self, workers: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], str]:
        """The profile of each of `workers` ((runtime_id, worker_id)), looked up once each."""
        missing: dict[str, list[str]] = defaultdict(list)
        for runtime_id, worker_id in workers:
            if (runtime_id, worker_id) not in self._profiles:
                missing[runtime_id].append(worker_id)
        for runtime_id, ids in missing.items():
            for start in range(0, len(ids), PROFILE_LOOKUP):
                chunk = ids[start:start + PROFILE_LOOKUP]
                marks = ", ".join("?" * len(chunk))
                for worker_id, spec in await self.fetchall(
                    "SELECT worker_id, spec FROM workers WHERE runtime_id = ?"
                    f" AND worker_id IN ({marks})",
                    (runtime_id, *chunk),
                ):
                    self._profiles[(runtime_id, str(worker_id))] = _profile(spec)
        return self._profiles


def _profile(spec_json: str) -> str:
    try:
        profile = load_payload(spec_json).get("profile")
    except ValueError:
        return DEFAULT_PROFILE
    return profile if isinstance(profile, str) and profile else DEFAULT_PROFILE
