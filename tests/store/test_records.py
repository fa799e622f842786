"""Records read back without validation are the records validation would build."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import BaseModel

from store.catalog import level_of
from store.codec import EPOCH, dt_from_us, dump_payload, load_payload, us_from_dt
from store.event_store import EventStore
from store.models import Event, Severity, WorkerRef
from tests.store.support import read_all, step_event
from tests.store.test_rebuild import fill


def _revalidated(record: BaseModel) -> BaseModel:
    """The same record built by its model's validators from its own fields."""
    return type(record).model_validate(dict(record))


def _same(built: BaseModel | Event) -> None:
    if isinstance(built, Event):
        _same_event(built)
        return
    again = _revalidated(built)
    assert built == again
    assert built.model_dump(mode="json") == again.model_dump(mode="json")
    assert repr(built) == repr(again)
    assert built.model_fields_set == again.model_fields_set
    for name in type(built).model_fields:
        assert type(getattr(built, name)) is type(getattr(again, name)), name


def _same_event(built: Event) -> None:
    """An event read back equals the one the public constructor builds from its fields."""
    again = Event(**{name: getattr(built, name) for name in (*Event.FIELDS, "level")})
    assert built == again and hash(built) == hash(again)
    assert built.to_json_dict() == again.to_json_dict()
    assert repr(built) == repr(again)
    for name in (*Event.FIELDS, "level"):
        assert type(getattr(built, name)) is type(getattr(again, name)), name
    assert built.level is level_of(built.kind, built.payload)
    assert Event.from_json_dict(built.to_json_dict()) == built
    assert built.payload_json == dump_payload(built.payload)


async def test_every_record_read_back_equals_its_validated_self(store: EventStore) -> None:
    await fill(store)
    events = await read_all(store)
    assert len(events) > 20
    for event in events:
        _same(event)
        assert event.at.tzinfo is UTC
    batch = await store.read_after(0, 5)
    assert batch == type(batch).model_validate(dict(batch))
    for event in batch.events:
        _same(event)
    for runtime in await store.runtimes():
        _same(runtime)
        for worker in await store.workers(runtime.runtime_id):
            _same(worker)
            page = await store.transcript(WorkerRef(runtime_id=runtime.runtime_id,
                                                    worker_id=worker.worker_id), 0, 50)
            _same(page)
            assert page.items
            for run in await store.runs(runtime.runtime_id, worker.worker_id):
                _same(run)
        diagnostics = await store.diagnostics(runtime.runtime_id)
        assert diagnostics
        for diagnostic in diagnostics:
            _same(diagnostic)
    # What the writer answered equals what a reader builds.
    [appended] = await store.append("alpha", None, [step_event(7, "read back")])
    [read] = (await store.read_after(appended.position - 1, 1)).events
    assert appended == read
    _same(appended)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


def _stdlib(text: str) -> Any:
    """What load_payload answered before it used pydantic-core: json.loads, or its error."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        return type(exc)
    return value if isinstance(value, dict) else {"value": value}


def _loaded(text: str) -> Any:
    try:
        return load_payload(text)
    except ValueError as exc:
        return type(exc)


@given(st.dictionaries(st.text(), json_values, max_size=4) | json_values)
def test_payloads_decode_as_json_loads_decodes_them(value: Any) -> None:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, dict):
        assert text == dump_payload(value)
    # NaN != NaN: compare the canonical JSON of each side (and the container types).
    got, expected = _loaded(text), _stdlib(text)
    assert type(got) is type(expected) is dict
    assert dump_payload(got) == dump_payload(expected)


@pytest.mark.parametrize(
    "text",
    [
        '{"a":"\\ud800"}',  # a lone surrogate escape: pydantic-core refuses, json takes it
        "[1,2]",  # not an object: wrapped
        "3",
        '"x"',
        "{not json",  # json's own error
        '{"a":1}{"b":2}',
        "",
        '{"a":1,"a":2}',  # a repeated key: the last one wins
        "1E400",
    ],
)
def test_unusual_payload_texts_load_as_json_loads_loads_them(text: str) -> None:
    got, expected = _loaded(text), _stdlib(text)
    assert got == expected or dump_payload(got) == dump_payload(expected)


FAST_PATH_EDGE = 2**33 * 1_000_000  # store.codec reads times below this through a float


@given(st.integers(min_value=-(2**62), max_value=2**62))
@example(0)
@example(FAST_PATH_EDGE - 1)
@example(FAST_PATH_EDGE)
@example(-FAST_PATH_EDGE + 1)
@example(-FAST_PATH_EDGE)
@example(1_767_946_079_406_429)
def test_times_read_back_exactly(us: int) -> None:
    try:
        expected = EPOCH + timedelta(microseconds=us)
    except OverflowError:
        return  # beyond datetime's range either way
    got = dt_from_us(us)
    assert got == expected
    assert got.tzinfo is UTC
    assert us_from_dt(got) == us


# -- Event: a plain immutable record ------------------------------------------


def _event(**fields: Any) -> Event:
    values: dict[str, Any] = {
        "position": 3, "runtime_id": "ci", "seq": 2, "event_id": UUID(int=5),
        "kind": "diagnostic.raised", "payload": {"severity": "warning", "code": "x"},
        "at": datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=UTC),
    }
    values.update(fields)
    return Event(**values)


def test_event_is_immutable() -> None:
    event = _event()
    with pytest.raises(AttributeError):
        event.kind = "run.failed"
    with pytest.raises(AttributeError):
        del event.message
    with pytest.raises(AttributeError):
        event.extra = 1  # type: ignore[attr-defined]
    assert event.kind == "diagnostic.raised"


def test_event_level_is_computed_when_not_given() -> None:
    assert _event().level is Severity.WARNING
    assert _event(kind="run.failed", payload={}).level is level_of("run.failed", {})
    assert _event(level="error").level is Severity.ERROR


def test_event_equality_is_by_value() -> None:
    assert _event() == _event()
    assert len({_event(), _event()}) == 1
    assert _event() != _event(message="other")
    assert _event() != _event(payload={"severity": "warning", "code": "y"})
    assert _event() != "not an event"


@pytest.mark.parametrize(
    "fields",
    [
        {"position": 0}, {"seq": -1}, {"runtime_id": "Bad Id"}, {"kind": "Not A Kind"},
        {"worker_id": "worker-1"}, {"run_seq": 0}, {"event_id": "not-a-uuid"},
        {"message": 3}, {"position": True},
    ],
)
def test_event_constructor_refuses_bad_fields(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        _event(**fields)


def test_event_json_shape_is_what_pydantic_wrote() -> None:
    event = _event(worker_id="w-2", run_id="r-1", run_seq=4, message="m",
                   payload={"severity": "warning", "n": [1, 2.5, None], "t": (1, 2)})
    assert event.to_json_dict() == {
        "position": 3, "runtime_id": "ci", "seq": 2,
        "event_id": "00000000-0000-0000-0000-000000000005", "kind": "diagnostic.raised",
        "worker_id": "w-2", "run_id": "r-1", "run_seq": 4, "message": "m",
        "payload": {"severity": "warning", "n": [1, 2.5, None], "t": [1, 2]},
        "at": "2026-01-02T03:04:05.000678Z",
    }
    assert _event(at=datetime(2026, 1, 2, tzinfo=UTC)).to_json_dict()["at"] == "2026-01-02T00:00:00Z"
    assert Event.from_json_dict(json.loads(json.dumps(event.to_json_dict()))) == _event(
        worker_id="w-2", run_id="r-1", run_seq=4, message="m",
        payload={"severity": "warning", "n": [1, 2.5, None], "t": [1, 2]},
    )
    with pytest.raises(ValueError):
        Event.from_json_dict({**event.to_json_dict(), "extra": 1})


async def test_a_reader_that_only_looks_at_kinds_decodes_nothing(store: EventStore) -> None:
    await fill(store)
    [event, *_] = (await store.read_after(0, 5)).events
    slots = {name for name in ("payload", "event_id", "at") if _filled(event, name)}
    assert slots == set()
    assert event.kind and event.position
    assert isinstance(event.payload, dict) and event.payload is event.payload
    assert isinstance(event.event_id, UUID) and isinstance(event.at, datetime)
    assert all(_filled(event, name) for name in ("payload", "event_id", "at"))


def _filled(event: Event, name: str) -> bool:
    descriptor = type(event).__mro__[1].__dict__[name]
    try:
        descriptor.__get__(event)
    except AttributeError:
        return False
    return True
