"""Status words with a symbol, so no state is told by colour alone."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text

from store.models import Role, RunStatus, WorkerStatus

_WORKER = {
    WorkerStatus.RUNNING: ("●", "running", Style(color="green")),
    WorkerStatus.STOPPED: ("■", "stopped", Style(color="yellow")),
    WorkerStatus.CANCELLED: ("✕", "cancelled", Style(color="red")),
}
_RUN = {
    RunStatus.CREATED: ("…", "queued", Style(dim=True)),
    RunStatus.PLANNING: ("◔", "planning", Style(color="cyan")),
    RunStatus.EXECUTING: ("◑", "executing", Style(color="cyan", bold=True)),
    RunStatus.VERIFYING: ("◕", "verifying", Style(color="cyan")),
    RunStatus.COMPLETED: ("✓", "completed", Style(color="green")),
    RunStatus.FAILED: ("✗", "failed", Style(color="red", bold=True)),
    RunStatus.CANCELLED: ("⊘", "cancelled", Style(color="yellow")),
}

ROLE_STYLE = {
    Role.USER: Style(color="cyan", bold=True),
    Role.SYSTEM: Style(color="magenta", bold=True),
    Role.ASSISTANT: Style(color="green", bold=True),
    Role.TOOL: Style(color="yellow"),
}


def worker_status(status: WorkerStatus) -> Text:
    symbol, word, style = _WORKER[status]
    return Text(f"{symbol} {word}", style=style)


def run_status(status: RunStatus | None, run_id: str | None = None) -> Text:
    if status is None:
        return Text("idle", style=Style(dim=True))
    symbol, word, style = _RUN[status]
    text = Text(f"{symbol} {word}", style=style)
    if run_id:
        text.append(f" {run_id.rpartition('.')[2]}", style=Style(dim=True))
    return text

