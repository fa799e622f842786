"""How values are written into SQLite columns and read back.

One place decides the canonical JSON of a payload and the integer form of a
time, so the SQL side (FTS text, stored rows) and the Python side (live
predicates, verify) see identical bytes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic_core import from_json

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
# Below 2**33 seconds (the year 2242) a double holds a time to within 0.48 µs, so
# `fromtimestamp(us / 1e6)`, which rounds to the nearest microsecond, is exact.
FLOAT_EXACT_US = 2**33 * 1_000_000
_from_timestamp = datetime.fromtimestamp


def dump_payload(payload: dict[str, Any]) -> str:
    """Canonical JSON: sorted keys, no spaces, non-ASCII kept as is."""
    return json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def holds_nul(message: str, payload: Any) -> bool:
    """Whether an event's message or any string in its payload holds a NUL character.

    PostgreSQL's text cannot hold one (SQLite's can), and projections copy
    payload strings into text columns, so both stores refuse such an event
    alike rather than one keeping what the other cannot.
    """
    if "\x00" in message:
        return True
    pending = [payload]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return True
        elif isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list | tuple):
            pending.extend(value)
    return False


def load_payload(text: str) -> dict[str, Any]:
    """A stored payload back as a dict (a JSON value that is not an object as {"value": ...}).

    pydantic-core's parser gives json.loads's values (floats, big integers, NaN
    and Infinity included) three times faster; what it refuses (a lone surrogate
    escape, text that is not JSON) goes to json.loads, whose answer or error stands.
    """
    try:
        value = from_json(text)
    except (ValueError, TypeError):
        value = json.loads(text)
    return value if isinstance(value, dict) else {"value": value}


def us_from_dt(at: datetime) -> int:
    """UTC microseconds since the epoch (exact, no float rounding)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return (at - EPOCH) // _ONE_US


def dt_from_us(us: int) -> datetime:
    """The UTC datetime of `us_from_dt`'s microseconds (tzinfo is datetime.UTC)."""
    if -FLOAT_EXACT_US < us < FLOAT_EXACT_US:
        return _from_timestamp(us / 1_000_000, UTC)
    return EPOCH + timedelta(microseconds=us)


def searchable_text(message: str, payload_json: str) -> str:
    """What free-text search looks in: the message and the payload's JSON."""
    return f"{message}\n{payload_json}"


def normal_row(row: Sequence[Any]) -> tuple[Any, ...]:
    """A stored row as SQLite would give it back: a tuple of int, float, str, bytes or None
    (PostgreSQL may answer a Decimal, bytes as memoryview, a bool)."""
    return tuple(plain_value(v) for v in row)


def plain_value(value: Any) -> Any:
    """One stored value as SQLite would give it back (see `normal_row`)."""
    if value is None or type(value) in (int, str, float, bytes):
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    return value
