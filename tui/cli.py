"""The `agentdeck` command line.

Headless commands (`events`, `verify`, `demo`, `bench`) never import Textual,
so they start fast and run where there is no terminal. Every failure an
operator can cause ends in one line on stderr and an exit status: 1 when an
operation failed, 2 for usage or an unusable database.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from platformdirs import user_data_path

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_UNUSABLE = 2


def default_db_path() -> Path:
    """`$XDG_DATA_HOME/agentdeck/agentdeck.db` (platformdirs honours XDG_DATA_HOME)."""
    return user_data_path("agentdeck", appauthor=False) / "agentdeck.db"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more (got {value})")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (got {value})")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 (got {value})")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentdeck",
        description="A terminal console for operating AI-agent workers.",
    )
    db_help = "database file (default: %(default)s)"
    parser.add_argument("--db", type=Path, default=default_db_path(), help=db_help)
    parser.add_argument(
        "--config", type=Path, help="profiles file (default: agentdeck.toml beside the database)"
    )
    parser.add_argument(
        "--read-only", action="store_true", help="watch only: open the database as an observer"
    )
    parser.add_argument(
        "--runtime", default="local", help="the runtime this console hosts (default: local)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    events = sub.add_parser("events", help="print events (JSON lines with --json)")
    events.add_argument("--db", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    events.add_argument(
        "--filter", default="", help='filter expression, e.g. "kind:run.* level:error"'
    )
    events.add_argument("--after", type=_non_negative, default=0, help="start after this position")
    events.add_argument("--limit", type=_positive, default=None, help="print at most N events")
    events.add_argument(
        "--follow", action="store_true", help="keep printing new events until Ctrl-C"
    )
    events.add_argument("--json", action="store_true", help="one JSON object a line")

    verify = sub.add_parser("verify", help="rebuild projections from the log and compare")
    verify.add_argument("--db", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    demo = sub.add_parser("demo", help="host a runtime headless and drive demo workers")
    demo.add_argument("--db", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    demo.add_argument("--config", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    demo.add_argument("--runtime", default="demo", help="runtime name (default: demo)")
    demo.add_argument("--workers", type=_positive, default=4)
    demo.add_argument("--rate", type=_positive_float, default=20.0, help="events per second in all")
    demo.add_argument(
        "--duration", type=_positive_float, default=None, help="seconds (default: until Ctrl-C)"
    )
    demo.add_argument("--fail-rate", type=_fraction, default=0.1)

    bench = sub.add_parser("bench", help="benchmarks, printed as JSON")
    bench.add_argument("suite", choices=["store", "engine", "console"])
    bench.add_argument("--json", action="store_true", help="JSON only (no progress lines)")
    bench.add_argument(
        "--quick", action="store_true", help="small sizes; finishes in about a minute"
    )
    return parser


def _run(coro_fn: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run an async command; Ctrl-C is a normal way to stop (exit 0, no traceback)."""
    try:
        return asyncio.run(coro_fn())
    except KeyboardInterrupt:
        return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = _dispatch(args)
    except KeyboardInterrupt:
        code = EXIT_OK
    sys.exit(code)


def _dispatch(args: argparse.Namespace) -> int:
    from store.errors import FilterError, StoreError, UnusableDatabase

    try:
        if args.command == "events":
            from tui.headless import events_command

            return _run(lambda: events_command(args))
        if args.command == "verify":
            from tui.headless import verify_command

            return _run(lambda: verify_command(args))
        if args.command == "demo":
            from tui.demo import demo_command

            return _run(lambda: demo_command(args))
        if args.command == "bench":
            from bench.runner import bench_command

            return _run(lambda: bench_command(args))
        from tui.console import console_command

        return console_command(args)
    except (UnusableDatabase, FilterError) as exc:
        print(f"agentdeck: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    except StoreError as exc:
        print(f"agentdeck: {exc}", file=sys.stderr)
        return EXIT_FAILED
