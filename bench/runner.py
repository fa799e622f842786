"""One benchmark suite by name; each suite is a program printing JSON (`python -m bench`)."""

from __future__ import annotations

import argparse

SUITES = ("store", "engine", "console")


async def bench_command(args: argparse.Namespace) -> int:
    """Run suite `args.suite`; its JSON goes to stdout, progress to stderr (not with --json).

    `args.db` (a postgresql:// URL, store suite only) runs the store's figures on that server.
    """
    quick, json_only = bool(args.quick), bool(args.json)
    db = getattr(args, "db", None)
    if db is not None and args.suite != "store":
        raise SystemExit(f"--db is for the store suite only, not {args.suite}")
    if args.suite == "store":
        from bench.store import run_store_bench

        return await run_store_bench(quick=quick, json_only=json_only, db=db)
    if args.suite == "engine":
        from bench.engine import run_engine_command

        return await run_engine_command(quick=quick, json_only=json_only)
    from bench.console import run_console_command

    return await run_console_command(quick=quick, json_only=json_only)
