"""The severity of an event, derived from its kind (and a diagnostic's payload).

Events carry no level field: the level is a pure function of what the event
is, so the store keeps it in an indexed column and the live filter computes
the same answer from the same function.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from store.models import Severity

_ERROR_KINDS = frozenset({"exec.command.timeout"})
_WARNING_KINDS = frozenset({"worker.restarting", "worker.restart.backoff"})


def level_of(kind: str, payload: Mapping[str, Any]) -> Severity:
    if kind == "diagnostic.raised":
        try:
            return Severity(payload.get("severity", "info"))
        except ValueError:
            return Severity.INFO
    if kind in _ERROR_KINDS or kind.endswith(".failed"):
        return Severity.ERROR
    if kind in _WARNING_KINDS:
        return Severity.WARNING
    return Severity.INFO
