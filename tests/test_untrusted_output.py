"""Untrusted text at every exit: `agentdeck events` (plain and --json) and the exports.

Real database files written through the store, the real `agentdeck` program in
a subprocess, and the real export code writing real files.
"""

from __future__ import annotations

import asyncio
import csv
import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from store.event_store import EventStore
from store.filters import parse_filter
from store.models import Event
from tests.store.support import AGENTDECK, REPO, child_env, new_event
from tui.export import CSV_COLUMNS, csv_cell, export_events
from tui.headless import format_event
from tui.safe_text import UNSAFE_CHARACTERS, clean

UNSAFE = re.compile(f"[{UNSAFE_CHARACTERS}]")

# One message per trick; each must reach the operator visible and inert.
EVIL_MESSAGES = {
    "esc": "\x1b[31mred\x1b[0m \x1b]52;c;aGk=\x07 \x1b[2J",
    "bidi": "invoice\u202etxt.exe",
    "zero-width": "pass\u200bword",
    "c1": "csi\x9b31m osc\x9d0;title\x9c",
    "tag": "hidden\U000e0041\U000e0042",
    "formula": '=HYPERLINK("http://evil.example","click")',
    "lines": "line one\nline two\r\nline three",
    "del-and-separators": "del\x7f ls\u2028 ps\u2029",
}
# Payloads are typed by the event catalog (store/catalog.py): the tricks go in free-text fields.
EVIL_PAYLOAD = {
    "reason": "\x1b[2J\u202e\u200b\x9b\U000e0041",
    "stderr_tail": ["=1+1", "\x9d", "\u2066iso\u2069", "\u202ekey"],
}
KIND = "exec.session.input"  # a cataloged kind whose payload takes free text


async def _write_evil(path: Path) -> list[Event]:
    async with await EventStore.open(path, watch=False) as store:
        events = [
            new_event(KIND, worker_id="w-1", message=message, payload={"reason": case})
            for case, message in EVIL_MESSAGES.items()
        ]
        events.append(new_event(KIND, worker_id="w-1", payload=EVIL_PAYLOAD))
        events.append(new_event(KIND, worker_id="w-1", message="+cmd|' /C calc'!A0"))
        events.append(new_event(KIND, worker_id="w-1", message="-2+3"))
        events.append(new_event(KIND, worker_id="w-1", message="@SUM(A1)"))
        events.append(new_event(KIND, worker_id="w-1", message="\t=1+1"))
        events.append(new_event(KIND, worker_id="w-1", message="\r=1+1"))
        events.append(new_event(KIND, worker_id="w-1", message="plain, \"quoted\""))
        return await store.append("ci", 0, events)


@pytest.fixture
def evil_db(tmp_path: Path) -> tuple[Path, list[Event]]:
    path = tmp_path / "evil.db"
    return path, asyncio.run(_write_evil(path))


def agentdeck(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(AGENTDECK), *(str(a) for a in args)],
        capture_output=True, text=True, timeout=30, env=child_env(), check=False,
    )


def unsafe_in(text: str) -> list[str]:
    """Every unsafe character in `text`, line breaks between lines apart."""
    return [hex(ord(ch)) for ch in UNSAFE.findall(text.replace("\n", ""))]


# -- agentdeck events ---------------------------------------------------------------


def test_events_plain_lines_show_every_trick_visibly_one_line_an_event(
    evil_db: tuple[Path, list[Event]],
) -> None:
    """Issue 7 item 11: plain `events` passes no raw control, bidi, zero-width or tag character."""
    path, events = evil_db
    result = agentdeck("--db", path, "events")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.split("\n")
    assert lines[-1] == ""  # ends with a newline
    lines = lines[:-1]
    assert len(lines) == len(events)  # a newline in a message does not break its line
    assert unsafe_in(result.stdout) == []
    for line, event in zip(lines, events, strict=True):
        assert line.startswith(f"{event.position:>8} ")
        assert line.endswith(clean(event.message, newlines=False))  # the console's sanitizer
    shown = result.stdout
    assert "␛[31mred␛[0m ␛]52;c;aGk=␇ ␛[2J" in shown
    assert "invoice\\u202etxt.exe" in shown
    assert "pass\\u200bword" in shown
    assert "csi\\x9b31m osc\\x9d0;title\\x9c" in shown
    assert "hidden\\U000e0041\\U000e0042" in shown
    assert "line one⏎line two⏎line three" in shown
    assert "del␡ ls\\u2028 ps\\u2029" in shown


def test_events_json_is_exact_and_writes_every_unsafe_character_escaped(
    evil_db: tuple[Path, list[Event]],
) -> None:
    """Issue 7 item 11: `events --json` decodes to the stored strings yet shows no raw unsafe character."""
    path, events = evil_db
    result = agentdeck("--db", path, "events", "--json")
    assert result.returncode == 0, result.stderr
    assert unsafe_in(result.stdout) == []
    lines = result.stdout.splitlines()
    assert len(lines) == len(events)
    for line, event in zip(lines, events, strict=True):
        assert json.loads(line) == event.to_json_dict()
        assert Event.from_json_dict(json.loads(line)) == event
    raw = result.stdout
    assert "\\u009b" in raw and "\\u009d" in raw and "\\u009c" in raw  # C1
    assert "\\u202e" in raw and "\\u200b" in raw and "\\u2066" in raw
    assert "\\udb40\\udc41" in raw  # U+E0041 as a surrogate-pair escape
    assert "\\u007f" in raw and "\\u2028" in raw
    assert "\\u001b[31m" in raw  # C0 as JSON writes it
    # Readable text stays readable (no ensure_ascii).
    assert '"=HYPERLINK(\\"http://evil.example\\",\\"click\\")"' in raw


@pytest.mark.parametrize("extra", [[], ["--json"]])
def test_events_command_does_not_import_textual(
    evil_db: tuple[Path, list[Event]], extra: list[str]
) -> None:
    """Issue 7 item 11: `events` prints through the console's sanitizer without loading Textual."""
    path, _ = evil_db
    code = (
        "import sys; from tui.cli import main\n"
        "try:\n    main(['--db', sys.argv[1], 'events', *sys.argv[2:]])\nexcept SystemExit: pass\n"
        "sys.stdout.flush()\n"
        "assert 'tui.safe_text' in sys.modules, 'the sanitizer was not used'\n"
        "assert 'textual' not in sys.modules, 'events imported textual'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(path), *extra],
        capture_output=True, text=True, env=child_env(), cwd=REPO, timeout=30, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "imported textual" not in result.stderr
    assert len(result.stdout.splitlines()) == len(EVIL_MESSAGES) + 7


_AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@given(message=st.text(), worker=st.sampled_from([None, "w-1"]))
def test_format_event_is_one_safe_line_for_any_text(message: str, worker: str | None) -> None:
    """Issue 7 item 11: the `events` line uses `clean`, one line, whatever the message holds."""
    event = Event(
        position=7, runtime_id="ci", seq=3, event_id=UUID(int=1), kind="worker.output",
        worker_id=worker, message=message, at=_AT,
    )
    line = format_event(event)
    assert "\n" not in line and "\r" not in line
    assert UNSAFE.search(line) is None
    assert line.endswith(clean(message, newlines=False))


# -- exports ---------------------------------------------------------------------------


async def _export(db: Path, out: Path, fmt: str, flt: str = "") -> int:
    async with await EventStore.open(db, read_only=True, watch=False, index=False) as store:
        return await export_events(store, parse_filter(flt), out, fmt)  # type: ignore[arg-type]


def test_csv_export_cleans_cells_and_neutralises_formulas(
    evil_db: tuple[Path, list[Event]], tmp_path: Path
) -> None:
    """Issue 7 item 11: CSV cells are cleaned with `clean` and never start a formula."""
    path, events = evil_db
    out = tmp_path / "events.csv"
    assert asyncio.run(_export(path, out, "csv")) == len(events)
    text = out.read_text(encoding="utf-8")
    assert "\x1b" not in text and "\u202e" not in text and "\x9b" not in text
    # Only the CSV's own line breaks (and newlines kept inside quoted cells) remain.
    assert unsafe_in(text.replace("\r", "")) == []
    with out.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == CSV_COLUMNS
    table = [dict(zip(CSV_COLUMNS, row, strict=True)) for row in rows[1:]]
    assert len(table) == len(events)
    for row, event in zip(table, events, strict=True):
        assert int(row["position"]) == event.position
        assert not row["message"].startswith(("=", "+", "-", "@", "\t", "\r"))
        assert json.loads(row["payload"]) == event.payload  # the payload cell is exact JSON
        assert unsafe_in(row["payload"]) == []
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value
    messages = [row["message"] for row in table]
    assert messages[:len(EVIL_MESSAGES)] == [
        "␛[31mred␛[0m ␛]52;c;aGk=␇ ␛[2J",
        "invoice\\u202etxt.exe",
        "pass\\u200bword",
        "csi\\x9b31m osc\\x9d0;title\\x9c",
        "hidden\\U000e0041\\U000e0042",
        "'=HYPERLINK(\"http://evil.example\",\"click\")",
        "line one\nline two\nline three",  # a multi-line cell, CRLF made one newline
        "del␡ ls\\u2028 ps\\u2029",
    ]
    assert messages[len(EVIL_MESSAGES) + 1:] == [
        "'+cmd|' /C calc'!A0",
        "'-2+3",
        "'@SUM(A1)",
        "'        =1+1",  # a leading tab (shown as spaces) is a formula trigger too
        "'␍=1+1",
        'plain, "quoted"',
    ]


def test_csv_cell_rules() -> None:
    """Issue 7 item 11: OWASP's formula starts get a `'`; ordinary text is only cleaned."""
    for trigger in ("=", "+", "-", "@"):
        assert csv_cell(f"{trigger}1") == f"'{trigger}1"
    assert csv_cell("  =1+1") == "'  =1+1"  # blanks a spreadsheet may skip
    assert csv_cell("\r\n=1") == "'\n=1"
    assert csv_cell("a=b") == "a=b"
    assert csv_cell("") == ""
    assert csv_cell("\u202e=1") == "\\u202e=1"  # shown escaped: no longer a formula start


def test_jsonl_export_is_exact_and_writes_every_unsafe_character_escaped(
    evil_db: tuple[Path, list[Event]], tmp_path: Path
) -> None:
    """Issue 7 item 11: the JSONL export decodes to the stored events and shows nothing raw."""
    path, events = evil_db
    out = tmp_path / "events.jsonl"
    assert asyncio.run(_export(path, out, "jsonl")) == len(events)
    text = out.read_text(encoding="utf-8")
    assert unsafe_in(text) == []
    lines = text.splitlines()
    assert [json.loads(line) for line in lines] == [e.to_json_dict() for e in events]
    assert "\\u009b" in text and "\\udb40\\udc41" in text and "\\u202e" in text
    assert out.stat().st_mode & 0o777 == 0o600
