"""Request limits: every field of a create request and every input is bounded, once, in the engine."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from engine.errors import InvalidRequest
from engine.profiles import BuiltinProfile, ProfileSet
from engine.results import CreateWorkerRequest
from engine.validation import (
    REQUEST_LIMITS,
    RequestLimits,
    validate_input,
    validate_worker_request,
    worker_request_refusal,
)
from store.models import (
    AssistantIntent,
    Capability,
    Limits,
    NamedRef,
    RoleIntent,
    TaskIntent,
)
from tests.engine.conftest import HostFactory
from tests.store.support import query

MIB = 1024 * 1024
L = REQUEST_LIMITS
PROFILES = ProfileSet()

# One request per field, built with a value of the given size (in bytes).
# (request field, how the message names it, limit, build)
FieldCase = tuple[str, str, int, Callable[[str], CreateWorkerRequest]]
FIELDS: list[FieldCase] = [
    (
        "intent.objective",
        "task objective",
        L.objective_bytes,
        lambda v: CreateWorkerRequest(intent=TaskIntent(objective=v)),
    ),
    (
        "intent.purpose",
        "purpose",
        L.purpose_bytes,
        lambda v: CreateWorkerRequest(intent=AssistantIntent(purpose=v)),
    ),
    (
        "intent.purpose",
        "purpose",
        L.purpose_bytes,
        lambda v: CreateWorkerRequest(intent=RoleIntent(role="reviewer", purpose=v)),
    ),
    (
        "intent.role",
        "role name",
        L.name_bytes,
        lambda v: CreateWorkerRequest(intent=RoleIntent(role=v)),
    ),
    ("profile", "profile name", L.name_bytes, lambda v: CreateWorkerRequest(profile=v)),
    (
        "config_bundle",
        "config bundle id",
        L.config_bundle_bytes,
        lambda v: CreateWorkerRequest(config_bundle=v),
    ),
    (
        "capabilities",
        "capability 2 name",
        L.name_bytes,
        lambda v: CreateWorkerRequest(capabilities=[Capability(name="git"), Capability(name=v)]),
    ),
    (
        "capabilities",
        "capability 1 reason",
        L.reason_bytes,
        lambda v: CreateWorkerRequest(capabilities=[Capability(name="web", reason=v)]),
    ),
    (
        "workspace_refs",
        "workspace ref 1 name",
        L.name_bytes,
        lambda v: CreateWorkerRequest(workspace_refs=[NamedRef(name=v, reference="/src")]),
    ),
    (
        "workspace_refs",
        "workspace ref 1 reference",
        L.reference_bytes,
        lambda v: CreateWorkerRequest(workspace_refs=[NamedRef(name="src", reference=v)]),
    ),
    (
        "mount_refs",
        "mount ref 1 name",
        L.name_bytes,
        lambda v: CreateWorkerRequest(mount_refs=[NamedRef(name=v, reference="/cache")]),
    ),
    (
        "mount_refs",
        "mount ref 1 reference",
        L.reference_bytes,
        lambda v: CreateWorkerRequest(mount_refs=[NamedRef(name="cache", reference=v)]),
    ),
]
IDS = [f"{field}:{label}" for field, label, _, _ in FIELDS]


def profiles_with(name: str) -> ProfileSet:
    """A profile set where a profile named `name` exists, so an at-limit name resolves."""
    return ProfileSet(profiles={name: BuiltinProfile(name=name, builtin="echo")})


@pytest.mark.parametrize(("field", "label", "limit", "build"), FIELDS, ids=IDS)
def test_each_create_field_over_its_limit_is_refused_naming_it(
    field: str, label: str, limit: int, build: Callable[[str], CreateWorkerRequest]
) -> None:
    """Issue 7 item 8: one byte over a field's limit is refused, naming the field, size, limit."""
    request = build("x" * (limit + 1))
    with pytest.raises(InvalidRequest) as refused:
        validate_worker_request(request, PROFILES)
    message = str(refused.value)
    assert message.startswith(f"{label} is ")
    assert f"{limit + 1} bytes" in message and f"{limit} bytes" in message
    assert "; " in message  # followed by what to do
    refusal = worker_request_refusal(request)
    assert refusal is not None and refusal.field == field and refusal.message == message


@pytest.mark.parametrize(("field", "label", "limit", "build"), FIELDS, ids=IDS)
def test_each_create_field_at_its_limit_passes(
    field: str, label: str, limit: int, build: Callable[[str], CreateWorkerRequest]
) -> None:
    """Issue 7 item 8: a value exactly at its field's limit is accepted."""
    value = "x" * limit
    request = build(value)
    assert worker_request_refusal(request) is None
    profiles = profiles_with(value) if field == "profile" else PROFILES
    assert validate_worker_request(request, profiles).name in (value, "builtin:echo")


def test_a_megabyte_objective_is_refused_in_a_short_message() -> None:
    """Issue 7 item 8: a 1 MiB objective is refused with its size, not echoed back."""
    request = CreateWorkerRequest(intent=TaskIntent(objective="y" * MIB))
    with pytest.raises(InvalidRequest) as refused:
        validate_worker_request(request, PROFILES)
    message = str(refused.value)
    assert message == (
        "task objective is 1.0 MiB (1048576 bytes), over the limit of 16 KiB (16384 bytes);"
        " shorten it, and send the details as input once the worker exists"
    )


def test_sizes_are_checked_before_anything_that_quotes_the_value() -> None:
    """Issue 7 item 8: a huge unknown profile name is refused for its size, in one short line."""
    with pytest.raises(InvalidRequest) as refused:
        validate_worker_request(CreateWorkerRequest(profile="p" * MIB), PROFILES)
    message = str(refused.value)
    assert message.startswith("profile name is 1.0 MiB") and len(message) < 200
    # A blank-looking but huge objective is a size problem first, too.
    blank = CreateWorkerRequest(intent=TaskIntent(objective=" " * MIB))
    with pytest.raises(InvalidRequest, match=r"task objective is 1\.0 MiB"):
        validate_worker_request(blank, PROFILES)


def test_limits_count_utf8_bytes_not_characters() -> None:
    """Issue 7 item 8: the limits are in UTF-8 bytes: two-byte characters count twice."""
    half = L.objective_bytes // 2
    fits = CreateWorkerRequest(intent=TaskIntent(objective="é" * half))
    assert worker_request_refusal(fits) is None
    over = CreateWorkerRequest(intent=TaskIntent(objective="é" * (half + 1)))
    refusal = worker_request_refusal(over)
    assert refusal is not None and f"({L.objective_bytes + 2} bytes)" in refusal.message


@pytest.mark.parametrize(
    ("field", "label", "limit", "build"),
    [
        (
            "capabilities",
            "capabilities",
            L.capabilities,
            lambda n: CreateWorkerRequest(
                capabilities=[Capability(name=f"c{i}") for i in range(n)]
            ),
        ),
        (
            "workspace_refs",
            "workspace refs",
            L.workspace_refs,
            lambda n: CreateWorkerRequest(
                workspace_refs=[NamedRef(name=f"w{i}", reference="/w") for i in range(n)]
            ),
        ),
        (
            "mount_refs",
            "mount refs",
            L.mount_refs,
            lambda n: CreateWorkerRequest(
                mount_refs=[NamedRef(name=f"m{i}", reference="/m") for i in range(n)]
            ),
        ),
    ],
)
def test_the_number_of_capabilities_and_refs_is_bounded(
    field: str, label: str, limit: int, build: Callable[[int], CreateWorkerRequest]
) -> None:
    """Issue 7 item 8: one item over the count limit is refused naming the list; at the limit passes."""
    assert worker_request_refusal(build(limit)) is None
    validate_worker_request(build(limit), PROFILES)
    with pytest.raises(InvalidRequest) as refused:
        validate_worker_request(build(limit + 1), PROFILES)
    assert str(refused.value) == (
        f"{limit + 1} {label} requested, over the limit of {limit}; ask for fewer"
    )
    refusal = worker_request_refusal(build(limit + 1))
    assert refusal is not None and refusal.field == field


def test_a_request_with_every_field_at_its_limit_stays_under_one_input() -> None:
    """Issue 7 item 8: the limits together bound a whole request below one input's limit."""
    name = "n" * L.name_bytes
    request = CreateWorkerRequest(
        intent=TaskIntent(objective="o" * L.objective_bytes),
        profile=name,
        config_bundle="b" * L.config_bundle_bytes,
        capabilities=[
            Capability(name=name, reason="r" * L.reason_bytes) for _ in range(L.capabilities)
        ],
        workspace_refs=[
            NamedRef(name=name, reference="w" * L.reference_bytes) for _ in range(L.workspace_refs)
        ],
        mount_refs=[
            NamedRef(name=name, reference="m" * L.reference_bytes) for _ in range(L.mount_refs)
        ],
    )
    assert worker_request_refusal(request) is None
    assert len(request.model_dump_json().encode()) < Limits().max_input_bytes


def test_limits_can_be_tightened_by_the_caller() -> None:
    """Issue 7 item 8: the limits are a value; a caller may pass tighter ones."""
    tight = RequestLimits(objective_bytes=10)
    request = CreateWorkerRequest(intent=TaskIntent(objective="eleven char"))
    assert worker_request_refusal(request) is None
    with pytest.raises(InvalidRequest, match="is 11 bytes, over the limit of 10 bytes; "):
        validate_worker_request(request, PROFILES, tight)


# -- inputs ------------------------------------------------------------------------------


def test_a_2_mib_input_is_refused_naming_its_size_and_the_limit() -> None:
    """Issue 7 item 8: a 2 MiB input is refused with its size, the limit and what to do."""
    limit = Limits().max_input_bytes
    with pytest.raises(InvalidRequest) as refused:
        validate_input("z" * (2 * MIB), "user", Limits())
    assert str(refused.value) == (
        f"input is 2.0 MiB ({2 * MIB} bytes), over the limit of 256 KiB ({limit} bytes);"
        " send it in parts"
    )
    validate_input("z" * limit, "user", Limits())  # at the limit: accepted
    with pytest.raises(InvalidRequest, match=r"\(262145 bytes\)"):
        validate_input("z" * (limit + 1), "system", Limits())


async def test_the_runtime_refuses_oversized_requests_and_writes_nothing(
    host: HostFactory, db_address: str | Path
) -> None:
    """Issue 7 item 8: over-limit creates and a 2 MiB input leave the database as it was."""
    rt = await host()
    worker = await rt.create_worker(CreateWorkerRequest())
    last = await rt.store.last_seq("local")
    for request in (
        CreateWorkerRequest(intent=TaskIntent(objective="o" * MIB)),
        CreateWorkerRequest(intent=RoleIntent(role="r" * MIB)),
        CreateWorkerRequest(intent=AssistantIntent(purpose="p" * MIB)),
    ):
        with pytest.raises(InvalidRequest, match="over the limit"):
            await rt.create_worker(request)
    with pytest.raises(InvalidRequest, match=r"input is 2\.0 MiB"):
        await rt.send_input(worker.ref, "i" * (2 * MIB))
    assert await rt.store.last_seq("local") == last
    assert [w.worker_id for w in await rt.list_workers()] == ["w-1"]
    page = await rt.transcript_page(worker.ref, 0, 10)
    assert page.total_items == 0
    # The three refused megabytes did not reach the file (the bug made 8.4 MB).
    if isinstance(db_address, Path):
        assert sum(p.stat().st_size for p in db_address.parent.glob(db_address.name + "*")) < MIB
    else:  # a server keeps no file of ours: the tables' size, TOAST included
        sizes = query(db_address, "SELECT sum(pg_total_relation_size(oid)) FROM pg_class"
                      " WHERE relname IN ('events', 'workers', 'transcript')")
        assert sizes[0][0] < MIB


@pytest.mark.parametrize(("field", "label", "limit", "build"), FIELDS, ids=IDS)
def test_a_nul_in_any_create_field_is_refused_naming_it(
    field: str, label: str, limit: int, build: Callable[[str], CreateWorkerRequest]
) -> None:
    """PostgreSQL's text cannot hold a NUL: refused on both back ends, before anything is written."""
    refusal = worker_request_refusal(build("a\x00b"))
    assert refusal is not None and refusal.field.startswith(field.split(".")[0])
    assert "NUL" in refusal.message and "remove it" in refusal.message


async def test_the_runtime_refuses_a_nul_alike_on_both_back_ends(host: HostFactory) -> None:
    rt = await host()
    worker = await rt.create_worker(CreateWorkerRequest())
    last = await rt.store.last_seq("local")
    with pytest.raises(InvalidRequest, match="NUL"):
        await rt.send_input(worker.ref, "before\x00after")
    with pytest.raises(InvalidRequest, match=r"intent\.objective holds a NUL"):
        await rt.create_worker(CreateWorkerRequest(intent=TaskIntent(objective="x\x00")))
    assert await rt.store.last_seq("local") == last
