"""The one-line texts events carry in their `message` (payloads carry the facts)."""

from __future__ import annotations

from engine.results import CreateWorkerRequest


def one_line(text: str, limit: int = 120) -> str:
    """A short single-line preview for an event message."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def intent_text(spec: CreateWorkerRequest) -> str:
    """What a worker was made for, as `worker.created` says it."""
    intent = spec.intent
    if intent.type == "task":
        return f"task: {one_line(intent.objective, 60)}"
    if intent.type == "role":
        return f"role: {intent.role}"
    return "assistant" + (f": {one_line(intent.purpose, 60)}" if intent.purpose else "")
