"""`python -m bench pg-server [--stop]`: a throwaway PostgreSQL for `bench store --db`.

Starts (or finds running) a server from the `pgserver` package's PostgreSQL 16
binaries, data in /tmp/agentdeck-bench-pg, reached through a unix socket only,
and prints its URL; it keeps running until `python -m bench pg-server --stop`.
As root, pgserver runs it as a system user `pgserver` (see tests/pg.py).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote

PGDATA = Path("/tmp/agentdeck-bench-pg/pgdata")


def _server(cleanup_mode: str | None) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset
        from pgserver.postgres_server import get_server
    PGDATA.parent.mkdir(parents=True, exist_ok=True)
    return get_server(PGDATA, cleanup_mode=cleanup_mode)


def pg_server_command(stop: bool) -> int:
    """Print the running (or just started) server's URL; or stop it."""
    if stop:
        if not (PGDATA / "postmaster.pid").exists():
            print(f"no server running in {PGDATA}")
            return 0
        _server("stop").cleanup()  # pg_ctl stop, as the last handle
        print(f"stopped the server in {PGDATA}")
        return 0
    info = _server(None).get_postmaster_info()  # None: left running when this exits
    host = quote(str(info.socket_dir), safe="/")
    print(f"postgresql://postgres@/postgres?host={host}&port={info.port or 5432}")
    return 0
