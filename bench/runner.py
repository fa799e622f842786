"""`agentdeck bench SUITE`: picks the suite; each suite is a program printing JSON."""

from __future__ import annotations

import argparse
import sys

EXIT_NOT_BUILT = 2


async def bench_command(args: argparse.Namespace) -> int:
    """Run one benchmark suite; its JSON goes to stdout, progress to stderr."""
    suite: str = args.suite
    if suite == "store":
        from bench.store import run_store_bench

        return await run_store_bench(quick=bool(args.quick), json_only=bool(args.json))
    if suite == "engine":
        from bench.engine import run_engine_command

        return await run_engine_command(quick=bool(args.quick), json_only=bool(args.json))
    if suite == "console":
        from bench.console import run_console_command

        return await run_console_command(quick=bool(args.quick), json_only=bool(args.json))
    print(f"agentdeck: the {suite} benchmarks are not built yet", file=sys.stderr)
    return EXIT_NOT_BUILT
