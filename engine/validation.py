"""Request validation shared by the engine and by forms that check before submitting."""

from __future__ import annotations

from engine.errors import InvalidRequest
from engine.profiles import ProfileSet, UnknownProfile
from engine.results import CreateWorkerRequest
from engine.state import Profile
from store.models import Limits


def validate_worker_request(request: CreateWorkerRequest, profiles: ProfileSet) -> Profile:
    """Check a create request; return the profile it resolves to or raise InvalidRequest."""
    intent = request.intent
    if intent.type == "task" and not intent.objective.strip():
        raise InvalidRequest("task objective must not be empty")
    if intent.type == "role" and not intent.role.strip():
        raise InvalidRequest("role name must not be empty")
    for cap in request.capabilities:
        if not cap.name.strip():
            raise InvalidRequest("capability name must not be empty")
    for ref in (*request.workspace_refs, *request.mount_refs):
        if not ref.name.strip() or not ref.reference.strip():
            raise InvalidRequest("workspace and mount refs need a name and a reference")
    if request.config_bundle is not None and not request.config_bundle.strip():
        raise InvalidRequest("config bundle id must not be blank (leave it out for none)")
    try:
        return profiles.resolve(None if request.profile == "default" else request.profile)
    except UnknownProfile as exc:
        raise InvalidRequest(str(exc)) from None


def validate_input(content: str, role: str, limits: Limits) -> None:
    """Check one input for a worker (role, non-blank, size); raise InvalidRequest."""
    if role not in ("user", "system"):
        raise InvalidRequest(f"input role must be user or system, not {role!r}")
    if not content.strip():
        raise InvalidRequest("worker input content must not be empty")
    size = len(content.encode("utf-8", "surrogatepass"))
    if size > limits.max_input_bytes:
        raise InvalidRequest(
            f"input is {size} bytes, over the limit of {limits.max_input_bytes}; send it in parts"
        )
