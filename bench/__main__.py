"""`python -m bench SUITE [--quick] [--json]`: run one benchmark suite.

What `agentdeck bench` runs, as a separate program, so product code never
imports benchmark code. Works from the repo root (or with `bench` installed):
the suite's JSON goes to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from bench.runner import SUITES, bench_command


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("suite", choices=SUITES)
    parser.add_argument("--json", action="store_true", help="JSON only (no progress lines)")
    parser.add_argument("--quick", action="store_true", help="a shorter run at smaller sizes")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(bench_command(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
