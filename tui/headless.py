"""The headless reading commands: `events` and `verify`. No Textual here."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TextIO

from store.errors import StoreError
from store.event_store import EventStore
from store.filters import parse_filter
from store.models import Event, Lag

PAGE = 1000
EXIT_OK, EXIT_FAILED, EXIT_UNUSABLE = 0, 1, 2


def _printable(text: str) -> str:
    """One terminal-safe line: control characters and escapes shown, never executed."""
    out = []
    for ch in text:
        code = ord(ch)
        if ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif code < 0x20 or code == 0x7F or 0x80 <= code < 0xA0:
            out.append(f"\\x{code:02x}")
        else:
            out.append(ch)
    return "".join(out)


def format_event(event: Event) -> str:
    """The plain-text line of `agentdeck events` (without --json)."""
    who = " ".join(x for x in (event.worker_id, event.run_id) if x)
    at = event.at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return (
        f"{event.position:>8} {at} {event.runtime_id}#{event.seq} {event.level.value:<7} "
        f"{event.kind:<24} {who:<16} {_printable(event.message)}"
    )


class _Printer:
    def __init__(self, as_json: bool, out: TextIO) -> None:
        self._json = as_json
        self._out = out

    def event(self, event: Event) -> None:
        if self._json:
            line = json.dumps(event.to_json_dict(), ensure_ascii=False, separators=(",", ":"))
        else:
            line = format_event(event)
        self._out.write(line + "\n")

    def flush(self) -> None:
        self._out.flush()


async def events_command(args: argparse.Namespace) -> int:
    flt = parse_filter(args.filter)  # a bad filter is a usage error before any I/O
    store = await EventStore.open(args.db, read_only=True, watch=args.follow, index=False)
    printer = _Printer(args.json, sys.stdout)
    remaining = args.limit
    try:
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
            for event in batch.events:
                printer.event(event)
            if remaining is not None:
                remaining -= len(batch.events)
            position = batch.cursor.position
            if not batch.has_more:
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


async def verify_command(args: argparse.Namespace) -> int:
    store = await EventStore.open(args.db, read_only=True, watch=False, index=False)
    try:
        report = await store.verify()
    except StoreError:
        raise
    finally:
        await store.close()
    if report.ok:
        print(report.summary())
        return EXIT_OK
    print(report.summary())
    for problem in report.problems:
        print(f"  {problem}")
    return EXIT_FAILED
