"""The headless store commands: `events`, `verify` and `copy`. No Textual here.

Everything they print from the store (event text, ids, projection rows in a
verify report) was written by programs the operator does not control, so it
leaves through `tui.safe_text` like everything the console shows: plain lines
through `clean`, JSON through `json_dumps`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import TYPE_CHECKING, TextIO

from store.filters import parse_filter
from store.models import Event, Lag
from store.open import open_store
from tui.past_moment import MomentError, find_moment, parse_moment
from tui.safe_text import clean, json_dumps

if TYPE_CHECKING:
    from store.verify import VerifyReport

PAGE = 1000
EXIT_OK, EXIT_FAILED, EXIT_UNUSABLE = 0, 1, 2


def _one_line(text: str) -> str:
    """`text` safe for one terminal line: nothing executes, hides or breaks the line."""
    return clean(text, newlines=False)


def format_event(event: Event) -> str:
    """The plain-text line of `agentdeck events` (without --json)."""
    who = _one_line(" ".join(x for x in (event.worker_id, event.run_id) if x))
    at = event.at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return (
        f"{event.position:>8} {at} {_one_line(event.runtime_id)}#{event.seq} "
        f"{event.level.value:<7} {_one_line(event.kind):<24} {who:<16} "
        f"{_one_line(event.message)}"
    )


class _Printer:
    def __init__(self, as_json: bool, out: TextIO) -> None:
        self._json = as_json
        self._out = out

    def event(self, event: Event) -> None:
        line = json_dumps(event.to_json_dict(), compact=True) if self._json else format_event(event)
        self._out.write(line + "\n")

    def flush(self) -> None:
        self._out.flush()


async def events_command(args: argparse.Namespace) -> int:
    flt = parse_filter(args.filter)  # a bad filter is a usage error before any I/O
    at_text: str | None = getattr(args, "at", None)
    moment = None
    if at_text is not None:
        try:
            moment = parse_moment(at_text)  # also before any I/O
        except MomentError as exc:
            return _refuse_at(at_text, exc)
    store = await open_store(args.db, read_only=True, watch=args.follow, index=False)
    printer = _Printer(args.json, sys.stdout)
    remaining = args.limit
    try:
        upto: int | None = None  # --at: the last position printed
        if moment is not None:
            try:
                upto = await find_moment(store, moment)
            except MomentError as exc:
                return _refuse_at(at_text or "", exc)
        if args.follow:
            with store.subscribe(args.after, flt) as sub:
                async for item in sub:
                    if isinstance(item, Lag):
                        print(
                            f"agentdeck: fell behind by {item.dropped} events; catching up from the store",
                            file=sys.stderr,
                        )
                        continue
                    printer.event(item)
                    printer.flush()
                    if remaining is not None:
                        remaining -= 1
                        if remaining == 0:
                            break
            return EXIT_OK
        position = args.after
        while remaining is None or remaining > 0:
            size = PAGE if remaining is None else min(PAGE, remaining)
            batch = await store.read_after(position, size, flt)
            events = batch.events
            if upto is not None and events and events[-1].position > upto:
                events = [e for e in events if e.position <= upto]
                ended = True  # the log as it was then ends here
            else:
                ended = not batch.has_more
            for event in events:
                printer.event(event)
            if remaining is not None:
                remaining -= len(events)
            position = batch.cursor.position
            if ended or (upto is not None and position >= upto):
                break
        printer.flush()
        return EXIT_OK
    except BrokenPipeError:
        # The reader went away (`| head`): not an error. Point stdout at devnull so
        # the interpreter's final flush does not complain either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    finally:
        await store.close()


def _refuse_at(text: str, problem: MomentError) -> int:
    print(f"agentdeck: --at {_one_line(text)}: {_one_line(str(problem))}", file=sys.stderr)
    return EXIT_UNUSABLE


async def verify_command(args: argparse.Namespace) -> int:
    """Rebuild the projections of the database `args.db` (a SQLite file or a PostgreSQL
    URL) from its log and compare; print the report."""
    from store.verify import verify_address

    report = await asyncio.to_thread(verify_address, args.db)
    return print_report(report, report.summary())


def print_report(report: VerifyReport, summary: str) -> int:
    """Print `summary`, then a line for each problem of `report`; the exit status."""
    print(_one_line(summary))
    if report.ok:
        return EXIT_OK
    # A problem quotes projection rows, which hold worker-supplied text.
    for problem in report.problems:
        print(f"  {_one_line(problem)}")
    return EXIT_FAILED


PROGRESS_AFTER_S = 2.0  # a copy this quick says nothing until its summary
PROGRESS_EVERY_S = 2.0


async def copy_command(args: argparse.Namespace) -> int:
    """Copy every event of `args.source` into the empty database `args.target`, verify the
    target, and print one summary line (then the problems, if verify found any)."""
    from store.copy import copy_database

    started = time.monotonic()
    said = started

    def progress(copied: int, total: int) -> None:
        nonlocal said
        now = time.monotonic()
        if now - started < PROGRESS_AFTER_S or now - said < PROGRESS_EVERY_S:
            return
        said = now
        share = f" ({100 * copied // total}%)" if total else ""
        print(f"agentdeck: copied {copied} of {total} events{share}", file=sys.stderr, flush=True)

    report = await copy_database(args.source, args.target, progress)
    return print_report(report.verify, report.summary())
