"""The host's in-memory picture of its workers and runs.

This is a cache of what the host has submitted to the log, kept so operations
validate without a read. It is rebuilt from the store's projections when a
host starts, and re-read from them if an append ever fails, so it never
becomes a second source of truth.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from uuid import UUID

from engine.drivers.base import Driver
from engine.profiles import BuiltinProfile, CommandProfile
from store.models import RunStatus, WorkerSpec, WorkerStatus

Profile = BuiltinProfile | CommandProfile


@dataclass
class RunState:
    run_id: str
    worker_id: str
    prompt: str
    role: str
    status: RunStatus = RunStatus.CREATED
    run_seq: int = 0  # the last run_seq used
    task: asyncio.Task[None] | None = None

    def next_seq(self) -> int:
        self.run_seq += 1
        return self.run_seq


@dataclass
class WorkerState:
    worker_id: str
    status: WorkerStatus
    spec: WorkerSpec
    profile: Profile | None
    transcript_len: int = 0
    runs_made: int = 0
    terminal_event_id: UUID | None = None
    queue: deque[RunState] = field(default_factory=deque)
    current: RunState | None = None
    driver: Driver | None = None
    loop_task: asyncio.Task[None] | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def next_transcript_sequence(self) -> int:
        self.transcript_len += 1
        return self.transcript_len

    def next_run_id(self) -> str:
        self.runs_made += 1
        return f"{self.worker_id}.r{self.runs_made}"


def run_number(run_id: str) -> int:
    """The n of a run id `w-3.r<n>` (0 if it is not of that form)."""
    _, _, tail = run_id.rpartition(".r")
    return int(tail) if tail.isdigit() else 0
