"""Free words on PostgreSQL (store.postgres.search) give SQLite's answers.

The tsvector holds FTS5's own tokens; where its query cannot say exactly
(phrases, tokens past PostgreSQL's lexeme limit, events too big for a
tsvector, rows written without the column) the reader rechecks with the
predicate. The property test appends the same random events to a SQLite and
a PostgreSQL store and asks both the same random filters, before and after
SQLite's indexer catches up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store.codec import dump_payload
from store.event_store import EventStore
from store.filters import parse_filter, tokenize
from store.models import NewEvent
from store.open import open_store
from store.postgres.event_store import PgEventStore
from store.postgres.schema import MIGRATIONS, migrate
from store.postgres.search import (
    MAX_LEXEME_BYTES,
    MAX_POSITION,
    MAX_POSITIONS,
    UNINDEXED,
    search_vector,
    word_search,
)
from store.search import index_step
from tests.store.support import new_event
from tests.store.test_filters import NOW, VOCAB, filters, texts

if TYPE_CHECKING:
    from store.open import AnyStore

# Tokens past PostgreSQL's lexeme limit (2046 bytes), cut to the same lexeme "é" * 1023.
LONG_A = "é" * 1023 + "a"
LONG_B = "é" * 1023 + "b"
KINDS = (
    "exec.command.started",
    "exec.command.completed",
    "exec.command.failed",
    "exec.command.timeout",
    "exec.session.input",
    "exec.session.answered",
)


# ---------------------------------------------------------------------------
# the lexemes and the query, without a server
# ---------------------------------------------------------------------------


def test_the_vector_holds_the_fts5_tokens_and_their_positions() -> None:
    message, payload = "Timeout: ÉCOLE école x'y", dump_payload({"reason": "Straße, timeout"})
    assert tokenize(f"{message}\n{payload}") == [
        "timeout", "école", "école", "x", "y", "reason", "straße", "timeout"
    ]
    assert search_vector(message, payload) == (
        "'timeout':1,8 'école':2,3 'x':4 'y':5 'reason':6 'straße':7"
    )


def test_a_long_token_is_cut_on_a_character_boundary() -> None:
    cut = "'" + "é" * 1023 + "'"
    assert len(cut.encode()) == MAX_LEXEME_BYTES + 2
    assert search_vector(LONG_A, "") == f"{cut}:1"
    assert search_vector(f"{LONG_A} {LONG_B}", "") == f"{cut}:1,2"


def test_events_a_tsvector_cannot_hold_as_they_are_are_unindexed() -> None:
    many = search_vector(" ".join(f"t{n % 100}" for n in range(MAX_POSITION + 1)), "")
    assert many.endswith(" '*'") and ":" not in many
    assert search_vector(" ".join(["again"] * (MAX_POSITIONS + 1)), "") == "'again' '*'"
    assert search_vector(" ".join(["again"] * MAX_POSITIONS), "").startswith("'again':1,2,")
    big = " ".join(f"w{n:07d}" for n in range(130_000))  # over 1 MB of distinct tokens
    assert search_vector(big, "") == "'*'"
    assert UNINDEXED not in tokenize(f"{UNINDEXED}a{UNINDEXED}")  # never a token


@pytest.mark.parametrize(
    ("text", "exact"),
    [
        ("timeout", True),  # a prefix: exactly the predicate
        ('"timeout"', True),
        ("time -deploy kind:run.*", True),
        ('"flaky login"', True),  # consecutive: the positions say it
        ("w-3", True),
        ("-w-3", True),
        ("é" * 1021, True),  # 2042 bytes: cannot be a cut lexeme
        ("é" * 1022, False),  # 2044 bytes: might be one
        (f'"{LONG_A}"', False),
        (f"-{LONG_A}", False),  # left to the recheck
    ],
)
def test_which_word_queries_are_exact(text: str, exact: bool) -> None:
    assert word_search(parse_filter(text)).exact is exact


def test_words_become_quoted_lexemes_never_syntax() -> None:
    search = word_search(parse_filter("""x'y "a & b" -or naïve -"a <-> b" """))
    q = "''"  # a quote inside the SQL literal
    assert search.condition == (
        f"e.search @@ ('( {q}x{q} <-> {q}y{q}:* ) & ( {q}a{q} <-> {q}b{q} )"
        f" & ( {q}naïve{q}:* )'::tsquery || '{q}*{q}'::tsquery)"
        f" AND NOT (e.search @@ '( {q}or{q}:* ) | ( {q}a{q} <-> {q}b{q} )'::tsquery)"
    )


@pytest.mark.parametrize(
    ("text", "where", "params"),
    [
        ("kind:run.*", "(e.kind LIKE ?)", ["run.%"]),
        ("kind:exec_?.*", "(e.kind LIKE ?)", ["exec\\__.%"]),
        ("-runtime:ci-*", "(NOT (e.runtime_id LIKE ?))", ["ci-%"]),
        ("-worker:3", "((e.worker_id = ?) IS NOT TRUE)", ["w-3"]),
        ("kind:run.completed", "(e.kind = ?)", ["run.completed"]),
        ("timeout", "TRUE", []),
    ],
)
def test_field_terms_in_postgresql_words(text: str, where: str, params: list[object]) -> None:
    assert parse_filter(text).fields_where(postgres=True) == (where, params)


# ---------------------------------------------------------------------------
# edge cases on both back ends, against the predicate
# ---------------------------------------------------------------------------


async def _answers(store: AnyStore, text: str) -> tuple[list[int], list[int], list[int]]:
    """What the predicate, read_after and read_before say `text` matches (positions)."""
    flt = parse_filter(text, now=NOW)
    everything = (await store.read_after(0, 10_000)).events
    expected = [e.position for e in everything if flt.matches(e)]
    forward = [e.position for e in (await store.read_after(0, 10_000, flt)).events]
    backward = [e.position for e in await store.read_before(10**9, 10_000, flt)][::-1]
    return expected, forward, backward


async def test_long_tokens_and_big_events(db_address: str | Path) -> None:
    """Events a tsvector cannot hold as they are (store.postgres.search) answer as on SQLite."""
    big = " ".join(f"w{n:07d}" for n in range(130_000))  # over 1 MB of tokens
    many = " ".join(f"t{n % 100}" for n in range(20_000))  # positions past 16,383
    store = await open_store(db_address, watch=False)
    try:
        await store.append("rt", None, [
            new_event(message=f"one {LONG_A}"),
            new_event(message=f"two {LONG_B}"),
            new_event(message=big),
            new_event(message="three é w0000001x"),
            new_event(payload={"reason": LONG_A[:-1]}),
            new_event(message=f"{many} tail end"),
            new_event(message="again " * 300 + "again done"),  # over 256 repeats
            new_event(message="t99 tail again done"),
        ])
        cases = {
            LONG_A: [1], f'"{LONG_A}"': [1], LONG_A[:-1]: [1, 2, 5], f'"{LONG_A[:-1]}"': [5],
            f"-{LONG_B}": [1, 3, 4, 5, 6, 7, 8], "w0000001": [3, 4], '"w0000001"': [3],
            "-w0000001": [1, 2, 5, 6, 7, 8], "w0129999 -one": [3], '"w0000001 w0000002"': [3],
            '-"w0000001 w0000002"': [1, 2, 4, 5, 6, 7, 8], "é": [1, 2, 4, 5], '"é"': [4],
            '"t99 tail end"': [6], '"t99 t0"': [6], '"t99 t1"': [], "t99 -t0": [8],
            '-"t99 tail"': [1, 2, 3, 4, 5, 7], '"again done"': [7, 8], '"again again done"': [7],
            '-"again again"': [1, 2, 3, 4, 5, 6, 8], "tail -end": [8],
        }
        for text, want in cases.items():
            expected, forward, backward = await _answers(store, text)
            assert expected == want, text
            assert forward == backward == want, text
    finally:
        await store.close()


async def test_rows_written_without_the_column_are_still_found(pg_url: str) -> None:
    """A row inserted without `search` (a writer from before migration 3) holds the
    UNINDEXED lexeme, and the recheck finds it like any other."""
    store = await PgEventStore.open(pg_url, watch=False)
    try:
        await store.append("rt", None, [new_event(message="indexed timeout")])
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO events (position, runtime_id, seq, event_id, kind, level,"
                " message, payload, at) VALUES (2, 'rt', 2, 'e-2', 'exec.session.input', 0,"
                " 'raw timeout', '{}', 0), (3, 'rt', 3, 'e-3', 'exec.session.input', 0,"
                " 'raw other', '{}', 0)"
            )
        await store.append("rt", None, [new_event(message="later timeout")])
        for text, want in {"timeout": [1, 2, 4], "-timeout": [3], '"raw timeout"': [2]}.items():
            expected, forward, backward = await _answers(store, text)
            assert expected == forward == backward == want, text
    finally:
        await store.close()


def _schema_2_with_events(conn: psycopg.Connection[Any], count: int) -> None:
    """An agentdeck database at schema 2 (before events.search), holding `count` events."""
    with conn.transaction():
        for version in (1, 2):
            for step in MIGRATIONS[version]:
                assert isinstance(step, str)
                conn.execute(step)
        conn.execute(
            "INSERT INTO agentdeck_meta VALUES ('application', 'agentdeck'),"
            " ('schema_version', '2')"
        )
        conn.execute(
            "INSERT INTO events (position, runtime_id, seq, event_id, kind, level, message,"
            " payload, at) SELECT n, 'rt', n, 'e-' || n, 'exec.session.input', 0,"
            " 'message ' || n || ' Naïve', '{\"reason\":\"r' || n || '\"}', 0"
            " FROM generate_series(1, %s) AS n",
            (count,),
        )


async def test_migration_3_fills_the_column_of_existing_events(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        _schema_2_with_events(conn, 12_000)  # more than one backfill chunk
        migrate(conn, pg_url)
        stored = conn.execute(
            "SELECT search::text FROM events WHERE position IN (1, 12000) ORDER BY position"
        ).fetchall()
        assert stored == [
            ("'1':2 'message':1 'naïve':3 'r1':5 'reason':4",),
            ("'12000':2 'message':1 'naïve':3 'r12000':5 'reason':4",),
        ]
        indexes = conn.execute(
            "SELECT to_regclass('events_search') IS NOT NULL,"
            " to_regclass('events_by_worker_id') IS NOT NULL"
        ).fetchone()
        assert indexes == (True, True)
    store = await PgEventStore.open(pg_url, watch=False)
    try:
        batch = await store.read_before(10**9, 3, parse_filter("r1199"))
        assert [e.position for e in batch] == [11999, 11998, 11997]
    finally:
        await store.close()


async def test_an_observer_of_a_schema_2_database_still_finds_words(pg_url: str) -> None:
    """A read-only store does not migrate: without events.search it checks every row."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        _schema_2_with_events(conn, 300)
    store = await PgEventStore.open(pg_url, read_only=True, watch=False)
    try:
        flt = parse_filter('r29 -"message 290" naïve')
        batch = await store.read_after(0, 5, flt)
        assert [e.position for e in batch.events] == [29, 291, 292, 293, 294]
        assert batch.has_more
        newest = await store.read_before(10**9, 100, flt)
        assert [e.position for e in newest] == [*range(299, 290, -1), 29]
    finally:
        await store.close()


# ---------------------------------------------------------------------------
# the property: the same answers as SQLite
# ---------------------------------------------------------------------------


@dataclass
class Pair:
    runner: asyncio.Runner
    sqlite: EventStore
    pg: PgEventStore


@pytest.fixture
def pair(pg_url: str, tmp_path: Path) -> Iterator[Pair]:
    """A SQLite store (no background indexer) and a PostgreSQL store, open across the
    examples of a property test, on one event loop of their own."""
    with asyncio.Runner() as runner:
        sqlite = runner.run(EventStore.open(tmp_path / "deck.db", watch=False, index=False))
        pg = runner.run(PgEventStore.open(pg_url, watch=False))
        try:
            yield Pair(runner, sqlite, pg)
        finally:
            runner.run(pg.close())
            runner.run(sqlite.close())


_clean_texts = texts().map(lambda s: s.replace("\x00", ""))  # PostgreSQL text holds no NUL
_words = st.one_of(_clean_texts, st.sampled_from([LONG_A, LONG_B, LONG_A[:-1], "Ab_c12 ab_C1"]))


@st.composite
def new_events(draw: st.DrawFn) -> tuple[str, NewEvent]:
    payload: dict[str, Any] = draw(
        st.dictionaries(st.sampled_from(["reason", "host", "cwd"]), _words, max_size=2)
    )
    if draw(st.booleans()):
        payload["argv"] = draw(st.lists(_words, max_size=2))
    at = NOW + timedelta(microseconds=draw(st.integers(-3 * 86_400_000_000, 3_600_000_000)))
    event = new_event(
        draw(st.sampled_from(KINDS)),
        worker_id=draw(st.sampled_from([None, "w-1", "w-3", "w-12"])),
        run_id=draw(st.sampled_from([None, "r-1", "r.1"])),
        message=draw(_words),
        payload=payload,
        at=at,
    )
    return draw(st.sampled_from(["local", "ci", "ci-2"])), event


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(log=st.lists(new_events(), min_size=1, max_size=10), data=st.data())
def test_postgresql_answers_what_sqlite_answers(
    pair: Pair, log: list[tuple[str, NewEvent]], data: st.DataObject
) -> None:
    # The stores keep what earlier examples appended: each example's filters see a
    # longer log, on SQLite partly indexed before the catch-up below.
    pool = [e.message for _, e in log if e.message] + VOCAB
    pool += [v for _, e in log for v in e.payload.values() if isinstance(v, str) and v]
    texts = data.draw(st.lists(filters(pool), min_size=1, max_size=6), label="filters")
    pages = data.draw(st.integers(1, 4), label="page")
    pair.runner.run(_check_pair(pair, log, texts, pages))


async def _check_pair(
    pair: Pair, log: list[tuple[str, NewEvent]], texts: list[str], page: int
) -> None:
    for runtime_id, event in log:
        for store in (pair.sqlite, pair.pg):
            await store.append(runtime_id, None, [event])
    for _ in ("SQLite's indexer behind", "caught up"):
        for text in texts:
            flt = parse_filter(text, now=NOW)
            want = await pair.sqlite.read_after(0, 10_000, flt)
            assert await pair.pg.read_after(0, 10_000, flt) == want, text
            newest = await pair.sqlite.read_before(10**9, page, flt)
            assert await pair.pg.read_before(10**9, page, flt) == newest, text
            cursor = 0
            for _ in range(3):  # the first pages, has_more and cursors included
                batch = await pair.sqlite.read_after(cursor, page, flt)
                assert await pair.pg.read_after(cursor, page, flt) == batch, text
                cursor = batch.cursor.position
        while await pair.sqlite.run_job(index_step):
            pass
