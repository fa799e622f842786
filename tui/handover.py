"""Hand-over: a console that leaves while its runtime has work starts `agentdeck host` for it.

The console closes its runtime first (in-flight runs fail "host closed" and
their process groups end, because their programs are this process's children
and their output pipes end here; queued runs stay in the log) and passes its
lease on to a fresh token instead of releasing it, then starts `agentdeck
host --lease-token TOKEN` for the same database, runtime and profiles file in
a session of its own (so the terminal's hang-up does not reach it), with no
terminal: stdin from /dev/null, stdout and stderr appended to
`host-<runtime>.log` in the user's log folder. The new host claims the lease
with that token and resumes the queue. Until it does, the lease still names
the console (alive, heartbeat fresh), so no other console takes the runtime
over and commands issued meanwhile wait for the new host. No Textual here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from platformdirs import user_log_path

from store.open import ENV_VAR, address_label, has_password
from tui.safe_text import clean


def host_log_path(runtime_id: str, folder: Path | None = None) -> Path:
    """Where a handed-over host writes its lines (`~/.local/state/agentdeck/log/host-NAME.log`)."""
    folder = folder or user_log_path("agentdeck", appauthor=False)
    return folder / f"host-{runtime_id}.log"


def host_argv(
    db: str | Path, runtime_id: str, config: Path | None, lease_token: str
) -> list[str]:
    """`agentdeck host ...` run by this very interpreter (the same venv, the same code),
    claiming the lease this console passed on with `lease_token`.

    A PostgreSQL URL with a password is not in the arguments (`ps` shows those): the child
    reads it from $AGENTDECK_DB (`host_env`)."""
    argv = [sys.executable, "-m", "tui.cli"]
    if not has_password(db):
        argv += ["--db", str(db) if isinstance(db, str) else str(db.absolute())]
    argv += ["host"]
    argv += ["--runtime", runtime_id, "--lease-token", lease_token]
    if config is not None:
        argv += ["--config", str(config.absolute())]
    return argv


@dataclass(frozen=True)
class HandOver:
    """What happened to the runtime this console hosted when it left with work."""

    runtime_id: str
    pid: int | None  # the new host's, None when it could not be started
    log: Path | None
    failed_runs: int  # runs in progress here, failed "host closed"
    queued: int  # inputs that the new host runs
    hosting: bool = True  # False: started, but not seen hosting yet (or it exited)
    problem: str | None = None  # why there is no new host

    def line(self) -> str:
        """The one line the operator reads on the terminal once the console has exited."""
        failed = (
            f"; {_runs(self.failed_runs)} in progress failed \"host closed\" (send again "
            "what must run)"
            if self.failed_runs
            else ""
        )
        if self.pid is None:
            return (
                f"could not hand runtime {self.runtime_id} over: {self.problem}; "
                f"{_inputs(self.queued)} {'stays' if self.queued == 1 else 'stay'} queued for "
                f"the next host{failed}"
            )
        if not self.hosting:
            return (
                f"started `agentdeck host` (pid {self.pid}) for runtime {self.runtime_id}, "
                f"but it is not hosting it yet: {self.problem}; see {self.log}{failed}"
            )
        runs = f" and runs its {_inputs(self.queued)}" if self.queued else ""
        return (
            f"runtime {self.runtime_id} keeps running in the background: `agentdeck host` "
            f"pid {self.pid} hosts it{runs}{failed}; log: {self.log}; "
            f"stop it with `kill {self.pid}`"
        )


def host_env(db: str | Path) -> dict[str, str]:
    """The environment of a handed-over host: this one's, unbuffered, and the database's
    URL in $AGENTDECK_DB when it holds a password (so it is not in argv)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if has_password(db):
        env[ENV_VAR] = str(db)
    return env


def spawn_host(
    db: str | Path, runtime_id: str, config: Path | None, lease_token: str, *, log: Path | None = None
) -> tuple[subprocess.Popen[bytes], Path]:
    """Start a detached `agentdeck host` for `runtime_id`; the process and its log file.

    Raises OSError when the log cannot be opened or the program not started.
    """
    log = log or host_log_path(runtime_id)
    log.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(log, os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as out:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        # One line from the console, so each hand-over is easy to find in the log.
        out.write(
            clean(
                f"agentdeck: {stamp}: console pid {os.getpid()} hands runtime {runtime_id} "
                f"on {address_label(db)} over to a host of its own",
                newlines=False,
            )
            + "\n"
        )
        out.flush()
        child = subprocess.Popen(
            host_argv(db, runtime_id, config, lease_token),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,  # the terminal's hang-up and Ctrl-C stay with the console
            close_fds=True,
            env=host_env(db),
        )
    # Not waited for: it outlives this process (then init reaps it). Kept, so its
    # Popen is not collected (with a warning) while this process lives.
    _DETACHED.append(child)
    return child, log


_DETACHED: list[subprocess.Popen[bytes]] = []


def _runs(count: int) -> str:
    return f"{count} run{'s' if count != 1 else ''}"


def _inputs(count: int) -> str:
    return f"{count} queued input{'s' if count != 1 else ''}"
