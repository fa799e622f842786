"""Request validation shared by the engine and by forms that check before submitting.

Every size limit of a request is defined here and checked here, once: the
runtime calls these functions before it writes anything, and the console's
dialogs call the same functions to refuse inline before they submit.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain

from engine.errors import InvalidRequest
from engine.profiles import ProfileSet, UnknownProfile
from engine.results import CreateWorkerRequest
from engine.state import Profile
from store.models import Limits, RoleIntent, TaskIntent

KIB = 1024


@dataclass(frozen=True)
class RequestLimits:
    """Upper bounds of every field of a create-worker request, in UTF-8 bytes or items.

    Bytes, not characters, because what they bound is what the request costs:
    the spec is stored whole in the `worker.created` event and the workers
    projection, and read back with every worker record (a console lists them
    all). Unbounded fields let three 1 MB forms make an 8 MB database.

    With every field at its limit a whole request stays under 200 KiB, below
    one input's default limit (`Limits.max_input_bytes`, 256 KiB).
    """

    # Prose. An objective states a task, not its material: 16 KiB is about
    # 2,500 words (several pages); the material goes in as input afterwards.
    objective_bytes: int = 16 * KIB
    # A purpose is a sentence or a short paragraph.
    purpose_bytes: int = 4 * KIB
    # Names are identifiers an operator reads in a table column.
    name_bytes: int = 128
    # A bundle id may be a digest or a URI (`sha256:` + 64 hex is 71).
    config_bundle_bytes: int = 256
    # Why a capability is wanted: a sentence or two.
    reason_bytes: int = 512
    # Paths and URLs; long presigned URLs run to 1-2 KiB.
    reference_bytes: int = 2 * KIB
    # A worker asks for a handful of tools and mounts; dozens is already odd.
    capabilities: int = 32
    workspace_refs: int = 32
    mount_refs: int = 32


REQUEST_LIMITS = RequestLimits()


def _size(value: str) -> int:
    # surrogatepass: a lone surrogate (from a paste) must be measured, not crash the check.
    return len(value.encode("utf-8", "surrogatepass"))


def _amount(size: int) -> str:
    """`300 bytes`, `16 KiB (16384 bytes)`, `2.0 MiB (2097152 bytes)`: readable and exact."""
    if size < KIB:
        return f"{size} bytes"
    if size < KIB * KIB:
        kib = size / KIB
        rounded = f"{kib:.0f} KiB" if size % KIB == 0 else f"{kib:.1f} KiB"
    else:
        rounded = f"{size / (KIB * KIB):.1f} MiB"
    return f"{rounded} ({size} bytes)"


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused: the field at fault and a message an operator can act on.

    `field` is the request's own name for it (`intent.objective`, `profile`,
    `capabilities`, `workspace_refs`, ...), so a form can point at its input.
    """

    field: str
    message: str


def _too_big(field: str, label: str, value: str | None, limit: int, advice: str) -> Refusal | None:
    if value is None:
        return None
    size = _size(value)
    if size <= limit:
        return None
    return Refusal(
        field,
        f"{label} is {_amount(size)}, over the limit of {_amount(limit)}; {advice}",
    )


def _too_many(field: str, label: str, count: int, limit: int) -> Refusal | None:
    if count <= limit:
        return None
    return Refusal(field, f"{count} {label} requested, over the limit of {limit}; ask for fewer")


_LATER = "shorten it, and send the details as input once the worker exists"
_SHORT = "use a short name"


def _size_refusals(request: CreateWorkerRequest, limits: RequestLimits) -> Iterator[Refusal | None]:
    intent = request.intent
    if isinstance(intent, TaskIntent):
        yield _too_big(
            "intent.objective", "task objective", intent.objective, limits.objective_bytes, _LATER
        )
    else:
        if isinstance(intent, RoleIntent):
            yield _too_big("intent.role", "role name", intent.role, limits.name_bytes, _SHORT)
        yield _too_big("intent.purpose", "purpose", intent.purpose, limits.purpose_bytes, _LATER)
    yield _too_big("profile", "profile name", request.profile, limits.name_bytes, _SHORT)
    yield _too_big(
        "config_bundle",
        "config bundle id",
        request.config_bundle,
        limits.config_bundle_bytes,
        "use a shorter id",
    )
    caps = request.capabilities
    yield _too_many("capabilities", "capabilities", len(caps), limits.capabilities)
    for number, cap in enumerate(caps, 1):
        label = f"capability {number}"
        yield _too_big("capabilities", f"{label} name", cap.name, limits.name_bytes, _SHORT)
        yield _too_big(
            "capabilities", f"{label} reason", cap.reason, limits.reason_bytes, "say it briefly"
        )
    for field, what, refs, most in (
        ("workspace_refs", "workspace ref", request.workspace_refs, limits.workspace_refs),
        ("mount_refs", "mount ref", request.mount_refs, limits.mount_refs),
    ):
        yield _too_many(field, f"{what}s", len(refs), most)
        for number, ref in enumerate(refs, 1):
            label = f"{what} {number}"
            yield _too_big(field, f"{label} name", ref.name, limits.name_bytes, _SHORT)
            yield _too_big(
                field,
                f"{label} reference",
                ref.reference,
                limits.reference_bytes,
                "point at the data rather than include it",
            )


# PostgreSQL's text cannot hold a NUL (SQLite's can): refused on both back ends
# alike, before anything is written, rather than by one store's append.
_NUL = "\x00"
_NUL_ADVICE = "holds a NUL character (\\0), which cannot be stored; remove it"


def _nul_fields(value: object, field: str) -> Iterator[str]:
    """The dotted names of the strings in `value` (a request's model dump) holding a NUL."""
    if isinstance(value, str):
        if _NUL in value:
            yield field
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _nul_fields(item, f"{field}.{key}" if field else str(key))
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _nul_fields(item, field)


def _shape_refusals(request: CreateWorkerRequest) -> Iterator[Refusal | None]:
    for field in _nul_fields(request.model_dump(), ""):
        yield Refusal(field, f"{field} {_NUL_ADVICE}")
    intent = request.intent
    if isinstance(intent, TaskIntent) and not intent.objective.strip():
        yield Refusal("intent.objective", "task objective must not be empty")
    if isinstance(intent, RoleIntent) and not intent.role.strip():
        yield Refusal("intent.role", "role name must not be empty")
    if any(not cap.name.strip() for cap in request.capabilities):
        yield Refusal("capabilities", "capability name must not be empty")
    for field, refs in (
        ("workspace_refs", request.workspace_refs),
        ("mount_refs", request.mount_refs),
    ):
        if any(not ref.name.strip() or not ref.reference.strip() for ref in refs):
            yield Refusal(field, "workspace and mount refs need a name and a reference")
    if request.config_bundle is not None and not request.config_bundle.strip():
        yield Refusal("config_bundle", "config bundle id must not be blank (leave it out for none)")


def worker_request_refusal(
    request: CreateWorkerRequest, limits: RequestLimits = REQUEST_LIMITS
) -> Refusal | None:
    """The first thing wrong with `request` (the profile aside), or None if nothing is."""
    # Sizes first: the other checks read the values whole, and a message must
    # not come from (or quote) a megabyte the operator did not mean to send.
    checks = chain(_size_refusals(request, limits), _shape_refusals(request))
    return next((refusal for refusal in checks if refusal is not None), None)


def worker_spec_refusal(
    request: CreateWorkerRequest,
    profiles: ProfileSet,
    limits: RequestLimits = REQUEST_LIMITS,
) -> Refusal | None:
    """Everything a create request is checked for, as the first field at fault (or None).

    The one validation of a worker spec: the console's form shows its refusal
    inline, and `validate_worker_request` raises it.
    """
    checked = _checked(request, profiles, limits)
    return checked if isinstance(checked, Refusal) else None


def validate_worker_request(
    request: CreateWorkerRequest,
    profiles: ProfileSet,
    limits: RequestLimits = REQUEST_LIMITS,
) -> Profile:
    """Check a create request; return the profile it resolves to or raise InvalidRequest."""
    checked = _checked(request, profiles, limits)
    if isinstance(checked, Refusal):
        raise InvalidRequest(checked.message)
    return checked


def _checked(
    request: CreateWorkerRequest, profiles: ProfileSet, limits: RequestLimits
) -> Profile | Refusal:
    """The profile `request` resolves to, or the first thing wrong with it."""
    refusal = worker_request_refusal(request, limits)
    if refusal is not None:
        return refusal
    try:
        return profiles.resolve(None if request.profile == "default" else request.profile)
    except UnknownProfile as exc:
        return Refusal("profile", str(exc))


def validate_input(content: str, role: str, limits: Limits) -> None:
    """Check one input for a worker (role, non-blank, size); raise InvalidRequest."""
    if role not in ("user", "system"):
        # Engine callers may pass any string: cut it so the refusal stays one line.
        raise InvalidRequest(f"input role must be user or system, not {role[:40]!r}")
    if not content.strip():
        raise InvalidRequest("worker input content must not be empty")
    if _NUL in content:
        raise InvalidRequest(f"input {_NUL_ADVICE}")
    size = _size(content)
    if size > limits.max_input_bytes:
        raise InvalidRequest(
            f"input is {_amount(size)}, over the limit of {_amount(limits.max_input_bytes)};"
            " send it in parts"
        )
