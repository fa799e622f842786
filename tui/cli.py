"""The `agentdeck` command line.

The composition root: it builds the store, the backend (the runtime hosted here,
or only watching) and the console, or a headless command. Headless commands
(`events`, `verify`, `demo`, `bench`) never import Textual,
so they start fast and run where there is no terminal. Every way a command
can end is one line on stderr at most and an exit status: 0 success, 1 an
operation failed, 2 usage or an unusable database, 128 + N when signal N
stopped it (tui.shutdown). An unexpected error is one line too, naming the
file its details were written to (tui.crash_log). No traceback reaches an
operator.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from platformdirs import user_data_path

if TYPE_CHECKING:
    from engine.errors import StoreFault

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_UNUSABLE = 2


def default_db_path() -> Path:
    """`$XDG_DATA_HOME/agentdeck/agentdeck.db` (platformdirs honours XDG_DATA_HOME)."""
    return user_data_path("agentdeck", appauthor=False) / "agentdeck.db"


def default_config_path(folder: Path | None) -> Path:
    """The profiles file read when --config is not given: agentdeck.toml in `folder` (the
    SQLite database's), or beside the default SQLite database for one with no folder
    (PostgreSQL)."""
    return (folder if folder is not None else default_db_path().parent) / "agentdeck.toml"


MAX_INTEGER = 2**63 - 1  # positions and counts are SQLite integers


def _integer(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be at least {low} (got {value})")
    if value > MAX_INTEGER:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_INTEGER} (got {text})")
    return value


def _positive(text: str) -> int:
    return _integer(text, 1)


def _non_negative(text: str) -> int:
    return _integer(text, 0)


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number (got {text})")
    return value


def _fraction(text: str) -> float:
    value = _number(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (got {value})")
    return value


def _positive_float(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 (got {value})")
    return value


def _address(text: str) -> str | Path:
    """`--db`: a postgresql:// (or postgres://) URL as given, else a path."""
    from store.open import parse_address

    return parse_address(text)


AT_HELP = (
    "open the console as it was at a past moment: a position (12345), a UTC time "
    "(2026-11-30T03:12:00Z) or a time of day today in the local zone (03:12[:07])"
)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (what is wrong, where to read more)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_UNUSABLE, f"agentdeck: {clean_line(message)} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="agentdeck",
        description="A terminal console for operating AI-agent workers.",
    )
    db_help = (
        "database: a SQLite file, or a postgresql:// URL (default: $AGENTDECK_DB if set, "
        f"else {default_db_path()})"
    )
    parser.add_argument("--db", type=_address, default=None, help=db_help)
    parser.add_argument(
        "--config",
        type=Path,
        help="profiles file (default: agentdeck.toml beside the database; for a PostgreSQL "
        "database, beside the default SQLite file)",
    )
    parser.add_argument(
        "--read-only", action="store_true", help="watch only: open the database as an observer"
    )
    parser.add_argument(
        "--runtime", default="local", help="the runtime this console hosts (default: local)"
    )
    parser.add_argument(
        "--at", default=None, metavar="POSITION|TIME", help=AT_HELP + " (esc goes to live)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    events = sub.add_parser("events", help="print events (JSON lines with --json)")
    events.add_argument("--db", type=_address, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    events.add_argument(
        "--filter", default="", help='filter expression, e.g. "kind:run.* level:error"'
    )
    events.add_argument("--after", type=_non_negative, default=0, help="start after this position")
    events.add_argument("--limit", type=_positive, default=None, help="print at most N events")
    events.add_argument(
        "--follow", action="store_true", help="keep printing new events until Ctrl-C"
    )
    events.add_argument("--json", action="store_true", help="one JSON object a line")
    events.add_argument(
        "--at", default=argparse.SUPPRESS, metavar="POSITION|TIME",
        help="only the events up to this moment: " + AT_HELP.split(": ", 1)[1],
    )

    verify = sub.add_parser("verify", help="rebuild projections from the log and compare")
    verify.add_argument("--db", type=_address, default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    copy = sub.add_parser(
        "copy",
        help="copy every event of a database into a new, empty one (SQLite to PostgreSQL...)",
    )
    copy.add_argument(
        "--from", dest="source", type=_address, required=True,
        help="the database to copy: a SQLite file or a postgresql:// URL (only read)",
    )
    copy.add_argument(
        "--to", dest="target", type=_address, required=True,
        help="an empty database to copy into: a postgresql:// URL or a SQLite file",
    )

    demo = sub.add_parser("demo", help="host a runtime headless and drive demo workers")
    demo.add_argument("--db", type=_address, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    demo.add_argument("--config", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    demo.add_argument("--runtime", default="demo", help="runtime name (default: demo)")
    demo.add_argument("--workers", type=_positive, default=4)
    demo.add_argument("--rate", type=_positive_float, default=20.0, help="events per second in all")
    demo.add_argument(
        "--duration", type=_positive_float, default=None, help="seconds (default: until Ctrl-C)"
    )
    demo.add_argument("--fail-rate", type=_fraction, default=0.1)

    host = sub.add_parser(
        "host", help="host a runtime with no terminal (work that outlives any console)",
        epilog="This machine is recorded as $AGENTDECK_HOST_NAME when set, else as its host "
        "name: give each container its own when several share one. A host on another "
        "machine is taken over once its heartbeat is 10 s old; on this one, once its pid "
        "is gone.",
    )
    host.add_argument("--db", type=_address, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    host.add_argument("--config", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    host.add_argument(
        "--runtime", dest="runtimes", action="append", default=argparse.SUPPRESS,
        metavar="NAME", help="a runtime to host (default: local); give it more than once to "
        "host several, standing by for each one hosted elsewhere",
    )
    host.add_argument(
        "--standby", action="store_true",
        help="a runtime hosted elsewhere is stood by for and taken over when its host is "
        "gone, not refused (the default when --runtime is given more than once)",
    )
    host.add_argument(
        "--standby-for", dest="standby_for", action="append", default=None, metavar="NAME",
        help="a runtime only to stand by for (another machine's): taken over when its host "
        "is gone, never hosted before a host of it was seen",
    )
    # How long a holder's heartbeat may be silent before it is taken over (tests).
    host.add_argument("--stale-after", type=_positive_float, default=None, help=argparse.SUPPRESS)
    # Set by a console handing its runtime over (tui.handover): the token it passed
    # its lease on with, so this host takes over with no moment unhosted.
    host.add_argument("--lease-token", default=None, help=argparse.SUPPRESS)

    bench = sub.add_parser("bench", help="benchmarks, printed as JSON")
    bench.add_argument("suite", choices=["store", "engine", "console"])
    bench.add_argument("--json", action="store_true", help="JSON only (no progress lines)")
    bench.add_argument(
        "--quick", action="store_true", help="small sizes; finishes in about a minute"
    )
    bench.add_argument(
        "--db", dest="bench_db", default=None, metavar="URL",
        help="store: a postgresql:// URL, to measure the same figures on that server",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    sys.exit(_dispatch(args))


def _dispatch(args: argparse.Namespace) -> int:
    from engine.errors import EngineError, InvalidRequest
    from store.errors import FilterError, StoreError, UnusableDatabase
    from store.open import chosen_address, unusable_server_error
    from tui.shutdown import run_command

    args.db = chosen_address(getattr(args, "db", None), default_db_path())
    if getattr(args, "at", None) is not None and args.command not in (None, "events"):
        say(f"--at is for the console and `events`, not `{args.command}`")
        return EXIT_UNUSABLE
    if args.command == "events" and args.at is not None and args.follow:
        say("--at shows the past, which does not change: it cannot be combined with --follow")
        return EXIT_UNUSABLE
    try:
        if args.command == "events":
            from tui.headless import events_command

            return run_command(
                lambda stop: events_command(args), interrupt_ends=args.follow
            )
        if args.command == "verify":
            from tui.headless import verify_command

            return run_command(lambda stop: verify_command(args))
        if args.command == "copy":
            from tui.headless import copy_command

            return run_command(lambda stop: copy_command(args))
        if args.command == "demo":
            from tui.demo import demo_command

            return run_command(
                lambda stop: demo_command(args, stop), graceful=True, interrupt_ends=True
            )
        if args.command == "host":
            from tui.host import host_command

            return run_command(
                lambda stop: host_command(args, stop),
                graceful=True,
                interrupt_ends=True,
                terminate_ends=True,
            )
        if args.command == "bench":
            return _exec_bench(args)
        return console_command(args)
    except (UnusableDatabase, FilterError, InvalidRequest) as exc:
        say(str(exc))
        return EXIT_UNUSABLE
    except (StoreError, EngineError) as exc:
        say(str(exc))
        # A server that cannot be used at all (unreachable, login refused, no such
        # database, no permission) is an unusable database, like a bad SQLite file.
        return EXIT_UNUSABLE if unusable_server_error(exc) else EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_OK  # Ctrl-C before any handler was installed: nothing was started
    except Exception as exc:
        from tui.crash_log import crash_line

        say(crash_line(exc))
        return EXIT_FAILED


def _exec_bench(args: argparse.Namespace) -> int:
    """Become `python -m bench SUITE`: benchmarks are a separate program, never imported here."""
    import os

    argv = [sys.executable, "-m", "bench", args.suite]
    argv += ["--quick"] * bool(args.quick) + ["--json"] * bool(args.json)
    argv += ["--db", args.bench_db] if args.bench_db else []
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)  # the suite's exit status is agentdeck's


def console_command(args: argparse.Namespace) -> int:
    """`agentdeck` with no command: the console on a backend hosted in this process.

    A console that leaves while its runtime has work (quit -> keep running, or
    a hang-up) has handed that runtime over to a background `agentdeck host`
    (tui.handover): its pid and log file are the line said here.
    """
    from store.open import is_server_address

    # Refuse an unusable database with one line before the screen is taken over.
    if is_server_address(args.db):
        _check_server(args.db, args.read_only)
    else:
        from store.database import OpenOptions, prepare
        from store.errors import ReadOnlyDatabase

        try:
            prepare(args.db, OpenOptions(read_only=args.read_only))
        except ReadOnlyDatabase:
            prepare(args.db, OpenOptions(read_only=True))  # the console opens it as an observer
    at: int | None = None
    if args.at is not None:
        from tui.past_moment import MomentError

        try:
            at = past_position(args.db, args.at)
        except MomentError as exc:
            say(f"--at {args.at}: {exc}")
            return EXIT_UNUSABLE
    from tui.app import AgentDeckApp
    from tui.backend import HostedBackend, open_backend
    from tui.crash_log import crash_line
    from tui.settings import settings_path
    from tui.shutdown import signalled_status

    async def backend() -> HostedBackend:
        return await open_backend(
            args.db, runtime_id=args.runtime, config=args.config, read_only=args.read_only,
            background=True,
        )

    if at is not None:
        from tui.screens.past import PastApp

        app: AgentDeckApp = PastApp(backend, at, settings_file=settings_path())
    else:
        app = AgentDeckApp(backend, settings_file=settings_path())
    code = app.run()
    if app.handed_over is not None:
        say(app.handed_over.line())  # where the work went: the one thing to read after leaving
    if app.startup_error:
        say(app.startup_error)
        return EXIT_UNUSABLE
    if app.crash is not None:
        say(crash_line(app.crash))
        return EXIT_FAILED
    if app.stop_signal is not None:
        return signalled_status(app.stop_signal)
    return code or EXIT_OK


def past_position(db: str | Path, text: str) -> int:
    """The position `--at TEXT` names in the database `db` (raises MomentError: one line)."""
    import asyncio

    from store.open import open_store
    from tui.past_moment import find_moment, parse_moment

    moment = parse_moment(text)  # a bad value is refused before the database is opened

    async def find() -> int:
        store = await open_store(db, read_only=True, watch=False, index=False)
        try:
            return await find_moment(store, moment)
        finally:
            await store.close()

    return asyncio.run(find())


def _check_server(url: str, read_only: bool) -> None:
    """Connect to the PostgreSQL database at `url` once (and close): its StoreError if it
    cannot be used (unreachable, login refused, missing, foreign, newer schema)."""
    import asyncio

    from store.open import open_store

    async def check() -> None:
        store = await open_store(url, read_only=read_only, watch=False)
        await store.close()

    asyncio.run(check())


def say_fault(who: str, fault: StoreFault | None) -> None:
    """A headless host's line when its store stops taking writes, and when it takes them again."""
    if fault is not None:
        say(f"{who}: cannot write to the database ({fault.reason}); holding work until it can")
    else:
        say(f"{who}: the database takes writes again; carrying on")


def say(line: str) -> None:
    """`agentdeck: line` on stderr, as one safe line; a terminal that is gone (SIGHUP) just
    misses it. Every command's own lines go through here."""
    try:
        print(f"agentdeck: {clean_line(line)}", file=sys.stderr, flush=True)
    except OSError:
        pass


def clean_line(text: str) -> str:
    """`text` as one terminal-safe line (it may quote paths and names given by others)."""
    from tui.safe_text import clean

    return clean(text, newlines=False)


if __name__ == "__main__":  # `python -m tui.cli`: how a console starts a host for hand-over
    main()
