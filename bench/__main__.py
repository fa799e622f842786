"""`python -m bench SUITE [--quick] [--json] [--db URL]`: run one benchmark suite.

What `agentdeck bench` runs, as a separate program, so product code never
imports benchmark code. Works from the repo root (or with `bench` installed):
the suite's JSON goes to stdout, progress to stderr. `python -m bench
pg-server [--stop]` starts (stops) a throwaway PostgreSQL and prints its URL,
for `python -m bench store --db URL`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from bench.runner import SUITES, bench_command


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("suite", choices=[*SUITES, "pg-server"])
    parser.add_argument("--json", action="store_true", help="JSON only (no progress lines)")
    parser.add_argument("--quick", action="store_true", help="a shorter run at smaller sizes")
    parser.add_argument(
        "--db", default=None, metavar="URL",
        help="store suite: a postgresql:// URL; the same figures on that server (it makes its"
        " own databases there) instead of SQLite",
    )
    parser.add_argument("--stop", action="store_true", help="pg-server: stop it")
    args = parser.parse_args(argv)
    if args.suite == "pg-server":
        from bench.pg_server import pg_server_command

        return pg_server_command(args.stop)
    if args.db is not None and not args.db.lower().startswith(("postgresql://", "postgres://")):
        parser.error("--db takes a postgresql:// URL (the SQLite figures need no --db)")
    try:
        return asyncio.run(bench_command(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
