"""`copy`: every event of one agentdeck database into a new, empty one, then verify it.

Any address to any address (a SQLite file, a PostgreSQL URL), through the
store's own interface on both sides, so nothing here knows SQL:

- The source is opened read-only and read by position (`read_after`), a
  window at a time, up to the last position it had when the copy began:
  events committed after that are left out (and counted, so the caller can
  say so). Memory stays bounded by the windows in flight, whatever the size
  of the log.
- The target is opened as a writer (created, or migrated if it is an empty
  database) and must hold no event. Each run of consecutive events of one
  runtime becomes one `submit` to the target's group-commit writer, with the
  runtime sequence it must follow (so every `seq` comes out as it was, or the
  copy stops with SequenceConflict). The writer assigns positions in queue
  order, which is source order; it folds the projections in the same
  transactions as the events, with the same code as any append, so the
  target is consistent at every commit. Event ids, kinds, messages, payloads
  and times are the source's.
- The target is then checked with `verify` (store.verify.verify_address).

Host leases are not copied: they are the live state of the processes
hosting the source's runtimes, not facts of the log.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from store.errors import (
    AppendRejected,
    DuplicateEvent,
    SequenceConflict,
    StoreError,
    UnusableDatabase,
)
from store.models import Event, NewEvent
from store.open import address_label, is_server_address, open_store
from store.schema import PROJECTIONS
from store.verify import VerifyReport, verify_address

if TYPE_CHECKING:
    from store.open import AnyStore

WINDOW = 5000  # events read from the source, and queued on the target, at a time
IN_FLIGHT = 2  # windows queued on the target at once: the next read overlaps a commit
ANALYZE_FIRST = WINDOW  # events copied before a PostgreSQL target's first ANALYZE (then at x2, x4...)

Progress = Callable[[int, int], None]
"""Called after each window the target committed: (events copied, events to copy)."""


class SameDatabase(UnusableDatabase):
    def __init__(self, label: str) -> None:
        super().__init__(
            label,
            "is both the source and the target of the copy",
            "copy into another, empty database",
        )


class TargetNotEmpty(UnusableDatabase):
    def __init__(self, label: str, events: int) -> None:
        super().__init__(
            label,
            f"already holds {events} events; a copy goes only into an empty database",
            "create a new database (createdb, or a new file) and copy into it",
        )


class CopyIncomplete(StoreError):
    """The target refused an event of the source: the copy stopped part way."""

    def __init__(self, target: str, copied: int, total: int, cause: Exception) -> None:
        self.cause = cause
        super().__init__(
            f"the copy stopped after {copied} of {total} events ({cause}); {target} holds "
            "those: empty it (or make a new database) before copying again, and check the "
            "source with `agentdeck verify`"
        )


@dataclass(frozen=True)
class CopyReport:
    source: str  # labels: no password
    target: str
    events: int
    runtimes: int
    seconds: float
    last_position: int  # the source's last position when the copy began
    left_out: int  # events the source gained while it was copied (not copied)
    verify: VerifyReport

    @property
    def ok(self) -> bool:
        return self.verify.ok

    def summary(self) -> str:
        rate = self.events / self.seconds if self.seconds > 0 else 0.0
        line = (
            f"copied {self.events} events of {self.runtimes} runtimes from {self.source} "
            f"to {self.target} in {self.seconds:.1f}s ({rate:.0f} events/s)"
        )
        if self.left_out:
            line += (
                f"; the source was being written to: copied up to position "
                f"{self.last_position}, its {self.left_out} newer events were not copied"
            )
        if self.verify.ok:
            return line + "; verified: the target's projections match its log"
        return line + f"; verify found {len(self.verify.problems)} problem(s) in the target"


def same_address(a: str | Path, b: str | Path) -> bool:
    """Whether `a` and `b` name one database (as far as the addresses tell)."""
    if is_server_address(a) != is_server_address(b):
        return False
    if is_server_address(a):
        return _server_key(str(a)) == _server_key(str(b))
    pa, pb = Path(a).expanduser().absolute(), Path(b).expanduser().absolute()
    try:
        return pa.samefile(pb)
    except OSError:
        return pa.resolve() == pb.resolve()


def _server_key(url: str) -> tuple[Any, ...]:
    from psycopg.conninfo import conninfo_to_dict

    try:
        info = conninfo_to_dict(url)
    except Exception:  # not a URL libpq reads: the connection will say why
        return (url,)
    env = os.environ
    return (
        info.get("host") or env.get("PGHOST", ""),
        str(info.get("port") or env.get("PGPORT", "5432")),
        info.get("dbname") or env.get("PGDATABASE") or info.get("user") or env.get("USER", ""),
    )


async def copy_database(
    source: str | Path, target: str | Path, progress: Progress | None = None
) -> CopyReport:
    """Copy every event of `source` into the empty database `target` and verify it.

    Raises the back ends' typed StoreErrors (the source or the target cannot
    be used), SameDatabase, TargetNotEmpty, or CopyIncomplete.
    """
    if same_address(source, target):
        raise SameDatabase(address_label(target))
    started = time.monotonic()
    src = await open_store(source, read_only=True, watch=False, index=False)
    try:
        # The target second: a source that cannot be read leaves no new target file.
        dst = await open_store(target, watch=False, index=False)
        try:
            held = await dst.last_position()
            if held:
                raise TargetNotEmpty(dst.label, held)
            end = await src.last_position()
            copied, runtimes = await _copy(src, dst, end, progress)
        finally:
            await dst.close()
        left_out = await src.last_position() - end
    finally:
        await src.close()
    seconds = time.monotonic() - started
    report = await asyncio.to_thread(verify_address, target)
    return CopyReport(
        source=address_label(source), target=address_label(target), events=copied,
        runtimes=len(runtimes), seconds=seconds, last_position=end, left_out=left_out,
        verify=report,
    )


async def _copy(
    src: AnyStore, dst: AnyStore, end: int, progress: Progress | None
) -> tuple[int, set[str]]:
    """Copy the source's events up to position `end`; (events copied, their runtimes).

    `end` is also the count to copy: positions run 1, 2, ... with no hole
    (what `verify` checks), so a progress figure needs no count(*) of a big log.
    """
    runtimes: set[str] = set()
    analyze_at = ANALYZE_FIRST if is_server_address(dst.address) else None
    in_flight: deque[tuple[int, list[asyncio.Future[list[Event]]]]] = deque()
    copied = 0
    after = 0
    try:
        while after < end or in_flight:
            if after < end:
                batch = await src.read_after(after, WINDOW)
                events = [e for e in batch.events if e.position <= end]
                after = events[-1].position if events else end
                futures: list[asyncio.Future[list[Event]]] = []
                in_flight.append((len(events), futures))
                for runtime_id, first_seq, group in _appends(events):
                    futures.append(dst.submit(runtime_id, first_seq - 1, group))
                runtimes.update(e.runtime_id for e in events)
            if len(in_flight) >= IN_FLIGHT or after >= end:
                size, done = in_flight.popleft()
                await _settled(done)
                copied += size
                if analyze_at is not None and copied >= analyze_at:
                    await dst.run_job(_analyze)
                    analyze_at *= 2
                if progress is not None:
                    progress(copied, end)
    except BaseException as exc:
        # Every append already queued ends before this does (none may fail unheard),
        # unless the copy itself was cancelled.
        pending = [f for _, futures in in_flight for f in futures]
        if isinstance(exc, Exception):
            await asyncio.gather(*pending, return_exceptions=True)
        else:
            for future in pending:
                future.cancel()
        if isinstance(exc, AppendRejected | SequenceConflict | DuplicateEvent):
            raise CopyIncomplete(dst.label, copied, end, exc) from None
        raise
    return copied, runtimes


def _analyze(conn: Any) -> None:
    # A new PostgreSQL database has no statistics, and the writer's prepared statements
    # keep plans made for empty tables (sequential scans): a fold's every lookup then
    # reads the whole table, and a big copy slows to a crawl. ANALYZE (as the
    # server's autovacuum would, later) lets those plans be made again.
    # Only agentdeck's tables (a user may analyze only tables it owns).
    conn.execute(f"ANALYZE events, {', '.join(PROJECTIONS)}")


async def _settled(futures: list[asyncio.Future[list[Event]]]) -> None:
    """Wait for all of `futures`; raise the first one's error, after all are done."""
    results = await asyncio.gather(*futures, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


def _appends(events: list[Event]) -> list[tuple[str, int, list[NewEvent]]]:
    """`events` (in log order) as appends: each run of one runtime's events, with its
    first seq, as the events a producer would submit."""
    out: list[tuple[str, int, list[NewEvent]]] = []
    for event in events:
        new = _new_event(event)
        if out and out[-1][0] == event.runtime_id:
            out[-1][2].append(new)
        else:
            out.append((event.runtime_id, event.seq, [new]))
    return out


def _new_event(event: Event) -> NewEvent:
    try:
        return NewEvent(
            event_id=event.event_id, kind=event.kind, worker_id=event.worker_id,
            run_id=event.run_id, run_seq=event.run_seq, message=event.message,
            payload=event.payload, at=event.at,
        )
    except ValueError as exc:
        raise AppendRejected(
            f"event {event.position} (runtime {event.runtime_id} seq {event.seq}) of the source "
            f"cannot be copied: {_first_line(exc)}"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
