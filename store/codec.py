"""How values are written into SQLite columns and read back.

One place decides the canonical JSON of a payload and the integer form of a
time, so the SQL side (FTS text, stored rows) and the Python side (live
predicates, verify) see identical bytes.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


def dump_payload(payload: dict[str, Any]) -> str:
    """Canonical JSON: sorted keys, no spaces, non-ASCII kept as is."""
    return json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def load_payload(text: str) -> dict[str, Any]:
    value = json.loads(text)
    return value if isinstance(value, dict) else {"value": value}


def us_from_dt(at: datetime) -> int:
    """UTC microseconds since the epoch (exact, no float rounding)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return (at - EPOCH) // _ONE_US


def dt_from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def searchable_text(message: str, payload_json: str) -> str:
    """What free-text search looks in: the message and the payload's JSON."""
    return f"{message}\n{payload_json}"
