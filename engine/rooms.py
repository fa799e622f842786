"""Rooms: fan-out keys for live subscriptions, as filters over the one feed.

A room is not a second bus: it compiles to a store filter, so a room's
subscription has the store's replay, seam and lag guarantees. Rooms route;
they do not authorize.
"""

from __future__ import annotations

from dataclasses import dataclass

from store.filters import Filter, parse_filter


@dataclass(frozen=True)
class Room:
    runtime_id: str
    worker_id: str | None = None
    run_id: str | None = None

    def filter(self) -> Filter:
        terms = [f"runtime:{self.runtime_id}"]
        if self.worker_id is not None:
            terms.append(f"worker:{self.worker_id}")
        if self.run_id is not None:
            terms.append(f"run:{self.run_id}")
        return parse_filter(" ".join(terms))

    def __str__(self) -> str:
        if self.run_id is not None:
            return f"run:{self.run_id}"
        if self.worker_id is not None:
            return f"worker:{self.runtime_id}/{self.worker_id}"
        return f"runtime:{self.runtime_id}"
