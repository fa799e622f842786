"""The filter language: parsing, and the live predicate agreeing with the SQL."""

from __future__ import annotations

import random
import re
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store.catalog import level_of
from store.codec import dump_payload, searchable_text, us_from_dt
from store.errors import FilterError, FilterTooLarge
from store.event_store import EventStore
from store.filters import (
    MAX_FILTER_CHARS,
    MAX_TERMS,
    Filter,
    parse_filter,
    register_sql_functions,
    tokenize,
)
from store.models import Event
from store.open import open_store
from store.schema import migrate
from store.search import index_step
from tests.store.support import new_event

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

KINDS = [
    "runtime.started",
    "worker.created",
    "worker.output",
    "worker.input.accepted",
    "run.created",
    "run.completed",
    "run.failed",
    "run.step.started",
    "run.tool.completed",
    "exec.command.failed",
    "exec.command.timeout",
    "worker.restarting",
    "worker.restart.backoff",
    "diagnostic.raised",
]
RUNTIMES = ["local", "ci", "ci-2", "c1"]
WORKERS = [None, "w-1", "w-3", "w-12", "w-31"]
RUNS = [None, "r-1", "r-2", "r.1"]

# Text that exercises the tokenizer: case, accents (precomposed and
# combining), Greek final sigma, an emoji SQLite (Unicode 6.1) calls a letter,
# FTS5 syntax words and characters, and multi-token words.
VOCAB = [
    "timeout",
    "time",
    "timer",
    "exit",
    "code",
    "Error",
    "w-3",
    "w-12",
    "foo.bar",
    "ÉCOLE",
    "école",
    "Straße",
    "ΣΟΦΟΣ",
    "σοφος",
    "naïve",
    "nai\u0308ve",
    "🤖ok",
    "and",
    "NEAR",
    "OR",
    "x'y",
    '"quoted"',
    "a*b",
    "42",
    "4200",
    "µs",
]
FIELD_TERMS = [
    *(f"kind:{k}" for k in ("run.*", "run.completed", "*.failed", "worker.?utput", "*")),
    *(f"kind:{k}" for k in ("exec.command.*", "run.step.*", "run.??????", "worker.*.*")),
    *(f"worker:{w}" for w in ("w-1", "3", "w-3", "w-12", "1")),
    *(f"runtime:{r}" for r in ("local", "ci", "ci*", "c?", "*-2")),
    *(f"run:{r}" for r in ("r-1", "r-2", "r.1")),
    *(f"level:{v}" for v in ("info", "warning", "error")),
    *(f"{f}:{t}" for f in ("after", "before") for t in ("-30s", "-2h", "-1d", "2026-11-21")),
    *(f"{f}:{t}" for f in ("after", "before") for t in ("2026-11-22T10:00+02:00",)),
]
SEPARATORS = [" ", ".", "-", ", ", "\n", "_", "🤖", ":", "/", "\u0301", ""]


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def make_event(position: int, **fields: Any) -> Event:
    values: dict[str, Any] = {
        "position": position,
        "runtime_id": "local",
        "seq": position,
        "event_id": uuid.uuid4(),
        "kind": "worker.output",
        "message": "",
        "payload": {},
        "at": NOW,
    }
    values.update(fields)
    return Event(**values)


def load(conn: sqlite3.Connection, events: list[Event], indexed_upto: int) -> None:
    """Replace the log with `events`; index the ones at or below `indexed_upto`."""
    with conn:
        conn.execute("DELETE FROM events")
        conn.execute("INSERT INTO events_fts (events_fts) VALUES ('delete-all')")
        for event in events:
            payload = dump_payload(event.payload)
            conn.execute(
                "INSERT INTO events (position, runtime_id, seq, event_id, kind, level,"
                " worker_id, run_id, run_seq, message, payload, at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    event.position,
                    event.runtime_id,
                    event.seq,
                    str(event.event_id),
                    event.kind,
                    level_of(event.kind, event.payload).rank,
                    event.worker_id,
                    event.run_id,
                    event.run_seq,
                    event.message,
                    payload,
                    us_from_dt(event.at),
                ),
            )
            if event.position <= indexed_upto:
                conn.execute(
                    "INSERT INTO events_fts (rowid, body) VALUES (?, ?)",
                    (event.position, searchable_text(event.message, payload)),
                )


def selected(conn: sqlite3.Connection, flt: Filter, indexed_upto: int) -> set[int]:
    sql, params = flt.where(indexed_upto)
    rows = conn.execute(f"SELECT position FROM events e WHERE {sql}", params).fetchall()
    return {position for (position,) in rows}


def matched(flt: Filter, events: list[Event]) -> set[int]:
    return {e.position for e in events if flt.matches(e)}


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sqlite3.Connection]:
    path: Path = tmp_path_factory.mktemp("filters") / "events.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, 0)
    register_sql_functions(conn)
    yield conn
    conn.close()


# ---------------------------------------------------------------------------
# parsing and the live predicate
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\t\n"])
def test_empty_filter_matches_everything(text: str) -> None:
    flt = parse_filter(text)
    assert flt.is_empty and not flt.has_words
    assert flt.where(0) == ("1", [])
    assert flt.matches(make_event(1, kind="run.failed"))


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        ("kind:run.*", "run.completed", True),
        ("kind:run.*", "run.step.started", True),
        ("kind:run.*", "runtime.started", False),
        ("kind:run.completed", "run.completed", True),
        ("kind:run.completed", "run.completed.extra", False),
        ("kind:run.complete", "run.completed", False),
        ("kind:*.failed", "exec.command.failed", True),
        ("kind:run.?ailed", "run.failed", True),
        ("kind:run.?", "run.failed", False),
        ("-kind:run.*", "run.failed", False),
        ("-kind:run.*", "worker.output", True),
    ],
)
def test_kind(text: str, kind: str, expected: bool) -> None:
    assert parse_filter(text).matches(make_event(1, kind=kind)) is expected


def test_kind_sql_uses_equality_for_a_literal_and_glob_for_a_pattern() -> None:
    assert parse_filter("kind:run.failed").where(0) == ("(e.kind = ?)", ["run.failed"])
    assert parse_filter("kind:run.*").where(0) == ("(e.kind GLOB ?)", ["run.*"])


@pytest.mark.parametrize("text", ["worker:w-3", "worker:3", 'worker:"w-3"'])
def test_worker_and_its_shorthand(text: str) -> None:
    flt = parse_filter(text)
    assert flt.matches(make_event(1, worker_id="w-3"))
    assert not flt.matches(make_event(1, worker_id="w-31"))
    assert not flt.matches(make_event(1, worker_id=None))


def test_negated_worker_keeps_events_without_a_worker() -> None:
    flt = parse_filter("-worker:3")
    assert flt.matches(make_event(1, worker_id=None))
    assert flt.matches(make_event(1, worker_id="w-1"))
    assert not flt.matches(make_event(1, worker_id="w-3"))


def test_runtime_exact_and_glob() -> None:
    assert parse_filter("runtime:ci").matches(make_event(1, runtime_id="ci"))
    assert not parse_filter("runtime:ci").matches(make_event(1, runtime_id="ci-2"))
    assert parse_filter("runtime:ci*").matches(make_event(1, runtime_id="ci-2"))


def test_run() -> None:
    flt = parse_filter("run:r-1")
    assert flt.matches(make_event(1, run_id="r-1"))
    assert not flt.matches(make_event(1, run_id="r-10"))
    assert not flt.matches(make_event(1))
    assert parse_filter("-run:r-1").matches(make_event(1))


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ("level:info", {"worker.output", "worker.restarting", "run.failed"}),
        ("level:warning", {"worker.restarting", "run.failed"}),
        ("level:WARNING", {"worker.restarting", "run.failed"}),
        ("level:error", {"run.failed"}),
        ("-level:error", {"worker.output", "worker.restarting"}),
    ],
)
def test_level_means_at_least(text: str, kinds: set[str]) -> None:
    flt = parse_filter(text)
    events = [make_event(1, kind=k) for k in ("worker.output", "worker.restarting", "run.failed")]
    assert {e.kind for e in events if flt.matches(e)} == kinds


def test_level_of_a_diagnostic_comes_from_its_payload() -> None:
    flt = parse_filter("level:error")
    assert flt.matches(make_event(1, kind="diagnostic.raised", payload={"severity": "error"}))
    assert not flt.matches(make_event(1, kind="diagnostic.raised", payload={"severity": "info"}))


@pytest.mark.parametrize(
    ("text", "boundary"),
    [
        ("-30s", NOW - timedelta(seconds=30)),
        ("-10m", NOW - timedelta(minutes=10)),
        ("-2h", NOW - timedelta(hours=2)),
        ("-1d", NOW - timedelta(days=1)),
        ("-1w", NOW - timedelta(weeks=1)),
        ("2026-11-22", datetime(2026, 11, 22, tzinfo=UTC)),
        ("2026-11-22T10:00", datetime(2026, 11, 22, 10, tzinfo=UTC)),
        ("2026-11-22T10:00Z", datetime(2026, 11, 22, 10, tzinfo=UTC)),
        ("2026-11-22T10:00+02:00", datetime(2026, 11, 22, 8, tzinfo=UTC)),
        ('"2026-11-22 10:00:30.5"', datetime(2026, 11, 22, 10, 0, 30, 500_000, tzinfo=UTC)),
    ],
)
def test_after_is_inclusive_and_before_exclusive(text: str, boundary: datetime) -> None:
    after = parse_filter(f"after:{text}", now=NOW)
    before = parse_filter(f"before:{text}", now=NOW)
    at = make_event(1, at=boundary)
    just_before = make_event(2, at=boundary - timedelta(microseconds=1))
    assert after.matches(at) and not after.matches(just_before)
    assert before.matches(just_before) and not before.matches(at)
    # The same instant seen in another offset is the same instant.
    assert after.matches(make_event(3, at=boundary.astimezone(timezone(timedelta(hours=-5)))))


def test_a_naive_now_is_utc() -> None:
    naive = parse_filter("after:-10m", now=NOW.replace(tzinfo=None))
    assert naive == parse_filter("after:-10m", now=NOW)


def test_relative_time_defaults_to_the_clock() -> None:
    flt = parse_filter("after:-1m")
    assert flt.matches(make_event(1, at=datetime.now(UTC)))
    assert not flt.matches(make_event(1, at=datetime.now(UTC) - timedelta(minutes=2)))


@pytest.mark.parametrize(
    ("text", "message", "expected"),
    [
        ("timeout", "command Timeout after 5s", True),
        ("time", "command timeout after 5s", True),  # prefix of the last token
        ("imeout", "command timeout", False),  # not a substring search
        ('"time"', "command timeout", False),  # quoted: exact tokens
        ('"timeout"', "command TIMEOUT", True),
        ("w-3", "worker w-3 done", True),
        ("w-3", "worker w-31 done", True),  # last token is a prefix
        ('"w-3"', "worker w-31 done", False),
        ("w-3", "worker w 3", True),  # the same tokens
        ("w-3", "w-4 3", False),  # not consecutive
        ("foo.bar", "see foo/barbaz", True),
        ('"exit code"', "exit code 1", True),
        ('"exit code"', "code exit", False),
        ("-timeout", "all good", True),
        ("-timeout", "a timeout", False),
        ("école", "ÉCOLE ouverte", True),
        ("ecole", "école", False),  # remove_diacritics 0: accents count
        ("σοφοσ", "ΣΟΦΟΣ", True),  # SQLite folds final sigma like sigma
        ("naïve", "nai\u0308ve", False),  # precomposed and combining differ
        ("nai\u0308", "nai\u0308ve", True),  # a combining accent continues a token
    ],
)
def test_words(text: str, message: str, expected: bool) -> None:
    assert parse_filter(text).matches(make_event(1, message=message)) is expected


def test_words_search_the_payload_too() -> None:
    event = make_event(1, message="done", payload={"stderr": "Connection refused"})
    assert parse_filter("refused").matches(event)
    assert parse_filter("stderr").matches(event)  # keys are part of the searchable text


def test_terms_combine_with_and() -> None:
    flt = parse_filter("kind:run.* worker:3 timeout", now=NOW)
    assert flt.has_words and not flt.is_empty
    assert flt.matches(make_event(1, kind="run.failed", worker_id="w-3", message="timeout"))
    assert not flt.matches(make_event(1, kind="run.failed", worker_id="w-3", message="ok"))
    assert not flt.matches(make_event(1, kind="run.failed", worker_id="w-1", message="timeout"))


def test_field_names_are_case_insensitive() -> None:
    assert parse_filter("KIND:run.failed").matches(make_event(1, kind="run.failed"))


def test_tokenize() -> None:
    assert tokenize("Hello, World-42!") == ["hello", "world", "42"]
    assert tokenize("ΣΟΦΟΣ Straße") == ["σοφοσ", "straße"]
    # A combining accent continues a token but cannot start one.
    assert tokenize("e\u0301t\u00e9 \u0301x") == ["e\u0301t\u00e9", "x"]
    assert tokenize("") == [] and tokenize(" .-") == []


@pytest.mark.parametrize(
    ("text", "term"),
    [
        ("foo:bar", "foo:bar"),
        ("kind:run.* -Source:x", "-Source:x"),
        ("kind:", "kind:"),
        ('worker:""', 'worker:""'),
        ("kind:Run.*", "kind:Run.*"),
        ("kind:run.[ab]", "kind:run.[ab]"),
        ("kind:run.", "kind:run."),
        ("runtime:CI", "runtime:CI"),
        ("worker:x3", "worker:x3"),
        ("worker:w-0", "worker:w-0"),
        ('run:"a b"', 'run:"a b"'),
        ("level:fatal", "level:fatal"),
        ("after:yesterday", "after:yesterday"),
        ("after:10m", "after:10m"),
        ("before:-10y", "before:-10y"),
        ("after:-9999999w", "after:-9999999w"),
        ("before:2026-13-01", "before:2026-13-01"),
        ('ok "unterminated phrase', '"unterminated phrase'),
        ('"a"b', '"a"b'),
        ("...", "..."),
        ('""', '""'),
        ("ok -", "-"),
        ("-!!", "-!!"),
    ],
)
def test_errors_name_the_bad_term(text: str, term: str) -> None:
    with pytest.raises(FilterError) as caught:
        parse_filter(text, now=NOW)
    assert caught.value.term == term
    assert repr(term) in str(caught.value)


def test_unknown_field_lists_the_known_ones() -> None:
    with pytest.raises(FilterError) as caught:
        parse_filter("http://example.com")
    message = str(caught.value)
    for name in ("kind", "worker", "runtime", "run", "level", "after", "before"):
        assert name in message
    assert "quotes" in message
    assert parse_filter('"http://example.com"').matches(make_event(1, message="http://example.com"))


# ---------------------------------------------------------------------------
# SQL
# ---------------------------------------------------------------------------


def test_fts_covers_indexed_rows_and_adk_words_the_tail(db: sqlite3.Connection) -> None:
    events = [make_event(p, message="deadline timeout") for p in (1, 2, 3)]
    load(db, events, indexed_upto=2)
    flt = parse_filter("timeout")
    assert selected(db, flt, indexed_upto=2) == {1, 2, 3}
    # Positions the caller says are indexed are answered by the index alone:
    # row 3 is not in it, so claiming it is indexed hides it.
    assert selected(db, flt, indexed_upto=3) == {1, 2}
    assert selected(db, parse_filter("-timeout"), indexed_upto=3) == {3}


def test_adk_words_is_a_plain_sql_function(db: sqlite3.Connection) -> None:
    row = db.execute(
        "SELECT adk_words('Timeout here', '{}', ' time'), adk_words('x', '{}', ' time'),"
        " adk_words(NULL, NULL, ' time')"
    ).fetchone()
    assert row == (1, 0, 0)


def test_fts_query_quotes_every_token() -> None:
    _, params = parse_filter('-x\'y AND "NEAR(a b)" a*b').where(7)
    assert params == [
        *(7, '"and"* AND "near a b" AND "a b"*', 7, " and", " near a b ", " a b"),
        *(7, '"x y"*', 7, " x y"),
    ]


@pytest.mark.parametrize(
    "text",
    [
        'worker:"x\' OR 1=1 --"',
        'run:"x\' OR 1=1 --"',
        'runtime:"ci\'; DROP TABLE events; --"',
        "kind:\"run.*' OR '1'='1\"",
    ],
)
def test_field_values_that_are_not_ids_are_refused(text: str) -> None:
    with pytest.raises(FilterError) as caught:
        parse_filter(text)
    assert caught.value.term == text


@pytest.mark.parametrize(
    "text",
    [
        "x'y",
        "x' OR 1=1 --x",
        '"NEAR(a b)"',
        "AND",
        "OR NOT near",
        "a*b",
        '"a* OR b"',
        "^col",
        '-"\'); DROP TABLE events; --"',
        '"quoted"',
    ],
)
def test_words_are_data_not_sql_or_fts_syntax(db: sqlite3.Connection, text: str) -> None:
    messages = ["x'y z", "near a b", "a b c", "and or not", "a*b", "col ^col", "DROP TABLE", ""]
    events = [make_event(p, message=m) for p, m in enumerate(messages, start=1)]
    load(db, events, indexed_upto=4)
    flt = parse_filter(text)
    sql, _ = flt.where(4)
    for fragment in ("'", "NEAR(", "DROP", "1=1", "--", "^"):
        assert fragment not in sql
    assert selected(db, flt, 4) == matched(flt, events)
    assert db.execute("SELECT count(*) FROM events").fetchone() == (len(events),)


def test_every_field_term_agrees_with_sql(db: sqlite3.Connection) -> None:
    """Each field term alone and negated, over a log with every value and NULLs."""
    rnd = random.Random(7)
    log = [
        make_event(
            position,
            runtime_id=rnd.choice(RUNTIMES),
            kind=rnd.choice(KINDS),
            worker_id=rnd.choice(WORKERS),
            run_id=rnd.choice(RUNS),
            payload={"severity": rnd.choice(["info", "warning", "error"])},
            at=NOW - timedelta(seconds=rnd.choice([rnd.randrange(60), rnd.randrange(3 * 86_400)])),
        )
        for position in range(1, 201)
    ]
    load(db, log, 0)
    for term in FIELD_TERMS:
        for text in (term, f"-{term}"):
            flt = parse_filter(text, now=NOW)
            expected = matched(flt, log)
            assert 0 < len(expected) < len(log) or term in ("kind:*", "level:info"), text
            assert selected(db, flt, 0) == expected, text


# ---------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------

# Any character SQLite can store (lone surrogates cannot be encoded).
_any_char = st.characters(exclude_categories=["Cs"])


@pytest.fixture(scope="module")
def fts_probe() -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(":memory:")
    conn.execute(
        "CREATE VIRTUAL TABLE t USING fts5(body, tokenize='unicode61 remove_diacritics 0')"
    )
    conn.execute("CREATE VIRTUAL TABLE t_terms USING fts5vocab(t, 'instance')")
    yield conn
    conn.close()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    text=st.lists(
        st.one_of(_any_char, st.sampled_from(SEPARATORS), st.sampled_from("aZ9ÉéΣσςİµſ\u0301")),
        max_size=30,
    ).map("".join)
)
def test_tokenize_agrees_with_fts5(fts_probe: sqlite3.Connection, text: str) -> None:
    with fts_probe:
        fts_probe.execute("DELETE FROM t")
        fts_probe.execute("INSERT INTO t (rowid, body) VALUES (1, ?)", (text,))
        rows = fts_probe.execute("SELECT term FROM t_terms ORDER BY offset").fetchall()
    assert tokenize(text) == [term for (term,) in rows]


@st.composite
def texts(draw: st.DrawFn) -> str:
    """Messages and payload strings built from VOCAB, separators and random characters."""
    parts = draw(
        st.lists(
            st.one_of(st.sampled_from(VOCAB), st.text(_any_char, max_size=4)),
            max_size=5,
        )
    )
    out = ""
    for part in parts:
        out += part + draw(st.sampled_from(SEPARATORS))
    return out


@st.composite
def events(draw: st.DrawFn) -> list[Event]:
    positions = sorted(draw(st.sets(st.integers(1, 60), min_size=1, max_size=20)))
    result = []
    for position in positions:
        kind = draw(st.sampled_from(KINDS))
        payload: dict[str, Any] = draw(
            st.dictionaries(
                st.sampled_from(["text", "code", "path"]),
                st.one_of(texts(), st.integers(-5, 5000), st.none()),
                max_size=2,
            )
        )
        if kind == "diagnostic.raised":
            payload["severity"] = draw(st.sampled_from(["info", "warning", "error", "bogus"]))
        at = NOW + timedelta(microseconds=draw(st.integers(-3 * 86_400_000_000, 3_600_000_000)))
        offset = draw(st.sampled_from([0, 2, -5]))
        result.append(
            make_event(
                position,
                runtime_id=draw(st.sampled_from(RUNTIMES)),
                kind=kind,
                worker_id=draw(st.sampled_from(WORKERS)),
                run_id=draw(st.sampled_from(RUNS)),
                message=draw(texts()),
                payload=payload,
                at=at.astimezone(timezone(timedelta(hours=offset))),
            )
        )
    return result


def _is_word(text: str) -> bool:
    """Whether `text` written bare parses as one free word."""
    return (
        bool(text)
        and not any(c.isspace() for c in text)
        and text[0] not in '-"'
        and not re.match(r"[A-Za-z]+:", text)
        and bool(tokenize(text))
    )


@st.composite
def times(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        return "-" + draw(st.sampled_from(["30s", "10m", "2h", "1d", "3d", "1w"]))
    at = NOW + timedelta(minutes=draw(st.integers(-4 * 24 * 60, 120)))
    form = draw(st.sampled_from(["%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%SZ", "+02:00"]))
    if form == "+02:00":
        return at.astimezone(timezone(timedelta(hours=2))).isoformat()
    return at.strftime(form)


@st.composite
def words(draw: st.DrawFn, pool: list[str]) -> str:
    """A free word or quoted phrase, often cut from text the log really holds."""
    source = draw(st.one_of(st.sampled_from(pool), texts()))
    tokens = tokenize(source)
    mode = draw(st.integers(0, 2))
    if mode == 0 and tokens:
        # A run of tokens that occurs, the last one cut short: what people type.
        start = draw(st.integers(0, len(tokens) - 1))
        run = tokens[start : start + draw(st.integers(1, 3))]
        run[-1] = run[-1][: draw(st.integers(1, len(run[-1])))]
        source = draw(st.sampled_from(["-", ".", "/", " "])).join(run)
    elif mode == 1:
        # Cut anywhere, even mid-token.
        start = draw(st.integers(0, len(source)))
        source = source[start : start + draw(st.integers(1, 12))]
    if draw(st.integers(0, 2)) == 0 or not _is_word(source):
        phrase = source.replace('"', " ")
        if not tokenize(phrase):
            phrase = draw(st.sampled_from(VOCAB)).replace('"', "")
        return f'"{phrase}"'
    return source


_field_terms = st.one_of(
    st.sampled_from(FIELD_TERMS),
    st.tuples(st.sampled_from(["after", "before"]), times()).map("{0[0]}:{0[1]}".format),
)


@st.composite
def filters(draw: st.DrawFn, pool: list[str]) -> str:
    """A filter expression of up to four terms, each maybe negated."""
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        term = draw(words(pool)) if draw(st.booleans()) else draw(_field_terms)
        parts.append(("-" if draw(st.booleans()) else "") + term)
    return " ".join(parts)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(log=events(), indexed=st.integers(0, 61), data=st.data())
def test_sql_and_predicate_agree(
    db: sqlite3.Connection, log: list[Event], indexed: int, data: st.DataObject
) -> None:
    load(db, log, indexed)
    pool = [e.message for e in log if e.message]
    pool += [v for e in log for v in e.payload.values() if isinstance(v, str) and v]
    pool += VOCAB
    # Many filters per log: a query costs far less than loading a log.
    for text in data.draw(st.lists(filters(pool), min_size=1, max_size=10), label="filters"):
        flt = parse_filter(text, now=NOW)
        assert selected(db, flt, indexed) == matched(flt, log), text
        # The parts a back end with its own text index uses: the field terms in SQL,
        # the words in Python (store.postgres.search), together the same answer.
        fields, params = flt.fields_where()
        by_fields = {p for (p,) in db.execute(f"SELECT position FROM events e WHERE {fields}", params)}
        by_words = {e.position for e in log if flt.matches_words(e.message, e.payload_json)}
        assert by_fields & by_words == matched(flt, log), text


# ---------------------------------------------------------------------------
# Limits: the largest filter allowed runs on SQLite, a larger one is refused
# ---------------------------------------------------------------------------


def _fill_to_limit(terms: list[str], padded: range) -> list[str]:
    """Lengthen the word terms at `padded` (with q's) until the filter is MAX_FILTER_CHARS long."""
    terms = list(terms)
    for n in range(MAX_FILTER_CHARS - len(" ".join(terms))):
        terms[padded[n % len(padded)]] += "q"
    return terms


def _largest_filters() -> dict[str, tuple[str, list[str], dict[str, Any]]]:
    """Filters at both limits (MAX_TERMS terms, MAX_FILTER_CHARS characters), each with the
    words an event needs to match it and the fields of an event it must leave out."""
    half = MAX_TERMS // 2
    mixed = _fill_to_limit(
        [f"want{i:02d}" for i in range(half)] + [f"-skip{i:02d}" for i in range(half)],
        range(MAX_TERMS),
    )
    fields = [
        f"-kind:run.x{i}.*" if i % 4 == 0 else
        f"-worker:w-{100 + i}" if i % 4 == 1 else
        f"-runtime:rt-{i}*" if i % 4 == 2 else f"-run:r-{i}"
        for i in range(MAX_TERMS - 1)
    ]
    one_word = _fill_to_limit([*fields, "want"], range(MAX_TERMS - 1, MAX_TERMS))
    tokens = " ".join("abcdefghij"[i % 10] for i in range(500))
    phrase = _fill_to_limit(
        [f'"{tokens}"'] + [f"-skip{i:02d}" for i in range(MAX_TERMS - 1)], range(1, MAX_TERMS)
    )
    return {
        "words and negated words": (
            " ".join(mixed), mixed[:half], {"message": f"{' '.join(mixed[:half])} {mixed[-1][1:]}"}
        ),
        "negated fields and one long word": (
            " ".join(one_word), [one_word[-1]], {"message": one_word[-1], "worker_id": "w-101"}
        ),
        "a long phrase and negated words": (
            " ".join(phrase), [tokens], {"message": f"{tokens} {phrase[5][1:]}"}
        ),
    }


def test_a_1000_term_filter_is_refused() -> None:
    """Issue 7 item 6: a 1000-term filter is refused by the parser with a message that says
    what to do, instead of reaching SQLite (which called the file damaged)."""
    text = " ".join(["x"] * 1000)
    assert len(text) <= MAX_FILTER_CHARS  # the term limit, not the length, refuses it
    with pytest.raises(FilterTooLarge) as caught:
        parse_filter(text)
    message = str(caught.value)
    assert message == (
        f"the filter is too long (1000 terms): at most {MAX_TERMS} terms; narrow the filter"
    )
    assert isinstance(caught.value, FilterError), "the filter bar shows FilterError inline"
    assert caught.value.term == "x"
    # The limit is exact: MAX_TERMS terms parse.
    assert len(parse_filter(" ".join(["x"] * MAX_TERMS)).terms) == MAX_TERMS
    terms = " ".join(f"-kind:run.n{i}" for i in range(MAX_TERMS + 1))
    with pytest.raises(FilterTooLarge) as caught:
        parse_filter(terms)
    assert caught.value.term == f"-kind:run.n{MAX_TERMS}"


def test_an_over_long_filter_is_refused() -> None:
    """Issue 7 item 6: past MAX_FILTER_CHARS characters (surrounding blanks aside) a filter
    is refused whatever its terms, with the limit in the message."""
    longest = '"' + "y" * (MAX_FILTER_CHARS - 2) + '"'
    assert len(parse_filter(f"  {longest}\n").terms) == 1
    with pytest.raises(FilterTooLarge) as caught:
        parse_filter(longest + "y")
    assert str(caught.value) == (
        f"the filter is too long ({MAX_FILTER_CHARS + 1} characters): "
        f"at most {MAX_FILTER_CHARS} characters; narrow the filter"
    )


@pytest.mark.parametrize("name", list(_largest_filters()))
def test_the_largest_filters_allowed_run_in_sql(db: sqlite3.Connection, name: str) -> None:
    """Issue 7 item 6: filters at both limits compile to SQL that SQLite runs (well inside
    its expression depth), answering like the live predicate over indexed and unindexed rows."""
    text, needed, left_out = _largest_filters()[name]
    assert len(text) == MAX_FILTER_CHARS
    flt = parse_filter(text, now=NOW)
    assert len(flt.terms) == MAX_TERMS
    body = " ".join(needed)
    log = [
        make_event(1, message=body),
        make_event(2, message="nothing wanted"),
        make_event(3, **left_out),
        make_event(4, message=body),
        make_event(5, **left_out),
    ]
    load(db, log, indexed_upto=2)
    got = selected(db, flt, indexed_upto=2)
    assert got == matched(flt, log) == {1, 4}


@pytest.mark.parametrize("name", list(_largest_filters()))
async def test_the_largest_filters_allowed_run_through_the_reader(
    db_address: str | Path, backend: str, name: str
) -> None:
    """Issue 7 item 6: the reader's word path runs the largest filters allowed, both
    directions: on SQLite driven from the FTS index below the indexed position and row
    by row above it, on PostgreSQL through the tsvector index (store.postgres.search)."""
    text, needed, left_out = _largest_filters()[name]
    flt = parse_filter(text)
    body = " ".join(needed)
    store = await open_store(db_address, watch=False, index=False)
    try:
        for _ in range(3):
            await store.append("rt", None, [
                new_event(message=body), new_event(message="nothing"),
                new_event(**left_out), new_event(message=body),
            ])
        if backend == "sqlite":
            assert isinstance(store, EventStore)
            await store.run_job(lambda conn: index_step(conn, 6))
            assert await store.indexed_position() == 6
        expected = [1, 4, 5, 8, 9, 12]
        everything = (await store.read_after(0, 100)).events
        assert [e.position for e in everything if flt.matches(e)] == expected
        batch = await store.read_after(0, 100, flt)
        assert [e.position for e in batch.events] == expected
        newest = await store.read_before(10_000, 100, flt)
        assert [e.position for e in newest] == expected[::-1]
    finally:
        await store.close()
