"""Free-text search on PostgreSQL: FTS5's tokens in a tsvector, looked up through a GIN index.

Answers must be SQLite's, and PostgreSQL's own parsers do not cut text the way
FTS5's `unicode61 remove_diacritics 0` does (nor fold case alike), so the
index holds agentdeck's own tokens (store.filters.tokenize, which is FTS5's
tokenizer exactly): the writer stores each event's tokens with their
positions in `events.search`, written in tsvector's input syntax with every
lexeme quoted, so PostgreSQL takes them literally and re-parses nothing. A
filter's words become a tsquery over the same lexemes, quoted too: a word of
one token is `'tok':*` (quoted in the filter: `'tok'`), a word of several
`'a' <-> 'b':*` (consecutive positions: FTS5's phrase). The GIN index finds
the rows holding the lexemes, and PostgreSQL checks the positions.

That is the predicate's answer exactly, except where a tsvector cannot hold
an event as it is. The query then keeps more rows, never fewer, and the
reader checks those with `Filter.matches_words` (`WordSearch.exact` says
when it must):

- PostgreSQL keeps a lexeme below 2 KB (a longer one wraps around, and a
  tsquery refuses it): a longer token is stored cut to MAX_LEXEME_BYTES, and
  a word token that long is looked up as a prefix of its cut, not exactly;
- positions stop at 16,383 and at 256 a lexeme: an event with more tokens or
  more repeats has its lexemes stored without positions, plus the lexeme
  UNINDEXED, which every wanted-words query also accepts (and the reader
  rechecks every UNINDEXED row);
- a tsvector holds at most 1 MB: an event with more token text is stored as
  UNINDEXED alone, as is a row written without the column (the column's
  default), such as one appended by a writer predating migration 3.

A negated word is excluded in SQL when its query is exact: a row holding its
lexemes in the right positions certainly matches it (positions are only
stored when complete), so no row is excluded wrongly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from store.codec import searchable_text
from store.filters import Filter, tokenize
from store.projector import STORED_COLUMNS, Row

# PostgreSQL refuses a tsquery lexeme of 2047 bytes or more (and a tsvector
# lexeme's length field is 11 bits): stored lexemes are cut below that.
MAX_LEXEME_BYTES = 2046
# A cut lexeme is longer than this (the character that did not fit is at most
# 4 bytes), so a word token no longer than it can never equal a cut lexeme.
_SAFE_BYTES = MAX_LEXEME_BYTES - 4
# tsvector positions: 1 to 16,383 (later ones are clamped, which would fake
# adjacency), at most 256 per lexeme (more are dropped, which would lose some).
MAX_POSITION = 16_383
MAX_POSITIONS = 256
# A tsvector is limited to 1 MB; stay well inside it.
MAX_VECTOR_BYTES = 1_000_000
UNINDEXED = "*"
"""The lexeme of a row whose tsvector does not say all (never a token: `*` separates)."""

SEARCH_COLUMN = "search"
INSERT_COLUMNS = f"{STORED_COLUMNS}, {SEARCH_COLUMN}"
"""The `events` columns the writer inserts: the stored ones, then the search vector."""
INSERT_VALUES_ROW = "(" + ", ".join(["?"] * 12) + ", ?::tsvector)"
"""One row of values for INSERT_COLUMNS (`?` placeholders; the vector in tsvector's syntax)."""

_UNINDEXED_QUERY = "'''*'''::tsquery"  # the UNINDEXED lexeme as a tsquery, as a SQL literal
UNINDEXED_COLUMN = f"e.{SEARCH_COLUMN} @@ {_UNINDEXED_QUERY}"
"""A boolean column over `events e`: the row is UNINDEXED (check its words in Python)."""


def _cut(token: str) -> str:
    """`token` cut to the longest prefix of whole characters within MAX_LEXEME_BYTES."""
    data = token.encode("utf-8")
    if len(data) <= MAX_LEXEME_BYTES:
        return token
    return data[:MAX_LEXEME_BYTES].decode("utf-8", errors="ignore")


def _quote(lexeme: str) -> str:
    """A lexeme in tsvector's or tsquery's syntax: quoted, so taken literally (no parser)."""
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


def search_vector(message: str, payload_json: str) -> str:
    """What `events.search` holds for an event, in tsvector's input syntax."""
    tokens = tokenize(searchable_text(message, payload_json))
    positions: dict[str, list[int]] = {}
    for n, token in enumerate(tokens, 1):
        positions.setdefault(_cut(token), []).append(n)
    lengths = [len(lexeme.encode("utf-8")) for lexeme in positions]
    # Each lexeme: a 4-byte entry, its bytes padded to even, a 2-byte count, 2 bytes a position.
    size = sum(lengths) + sum(8 + 2 * len(at) for at in positions.values())
    if (
        size <= MAX_VECTOR_BYTES
        and len(tokens) <= MAX_POSITION
        and all(len(at) <= MAX_POSITIONS for at in positions.values())
    ):
        return " ".join(f"{_quote(x)}:{','.join(map(str, at))}" for x, at in positions.items())
    if sum(lengths) + 4 * len(lengths) <= MAX_VECTOR_BYTES:
        return " ".join([*map(_quote, positions), _quote(UNINDEXED)])
    return _quote(UNINDEXED)


def insert_values(row: Row) -> tuple[Any, ...]:
    """The values of INSERT_VALUES_ROW for one row."""
    return (*row.column_values(), search_vector(row.message, row.payload_json))


def _operand(token: str, prefix: bool) -> tuple[str, bool]:
    """The tsquery operand of one word token, and whether it matches exactly that."""
    if len(token.encode("utf-8")) > _SAFE_BYTES:
        return _quote(_cut(token)) + ":*", False
    return _quote(token) + (":*" if prefix else ""), True


@dataclass(frozen=True)
class WordSearch:
    """A filter's free words as SQL over `events e`: `condition` (no placeholders; "TRUE"
    when no word can be put in SQL), and whether the rows it keeps all match the words
    (UNINDEXED rows aside: those are always checked)."""

    condition: str
    exact: bool


def word_search(flt: Filter) -> WordSearch:
    """The tsquery conditions of `flt`'s words (see the module's docstring)."""
    wanted: list[str] = []
    unwanted: list[str] = []
    exact = True
    for word in flt.word_terms:
        last = len(word.tokens) - 1
        operands = [_operand(t, word.prefix and i == last) for i, t in enumerate(word.tokens)]
        query = " <-> ".join(text for text, _ in operands)
        term_exact = all(ok for _, ok in operands)
        if not word.negated:
            wanted.append(query)
            exact = exact and term_exact
        elif term_exact:
            unwanted.append(query)
        else:
            exact = False  # left to the recheck: excluding in SQL might drop a match
    clauses: list[str] = []
    if wanted:
        query = " & ".join(f"( {q} )" for q in wanted)
        clauses.append(f"e.{SEARCH_COLUMN} @@ ({_literal(query)}::tsquery || {_UNINDEXED_QUERY})")
    if unwanted:
        query = " | ".join(f"( {q} )" for q in unwanted)
        clauses.append(f"NOT (e.{SEARCH_COLUMN} @@ {_literal(query)}::tsquery)")
    return WordSearch(" AND ".join(clauses) if clauses else "TRUE", exact)


def _literal(text: str) -> str:
    # A SQL string literal (standard_conforming_strings, PostgreSQL's default
    # since 9.1: a backslash is an ordinary character). Inlined rather than a
    # parameter so that the planner always sees the words: a generic plan of a
    # prepared statement would plan a rare word like a common one.
    return "'" + text.replace("'", "''") + "'"


# -- migration 3's backfill --------------------------------------------------

BACKFILL_CHUNK = 5_000


def backfill(conn: psycopg.Connection[Any]) -> None:
    """Fill `events.search` for the events already stored (migration 3, in its transaction)."""
    after = 0
    while True:
        rows = conn.execute(
            "SELECT position, message, payload FROM events WHERE position > %s"
            " ORDER BY position LIMIT %s",
            (after, BACKFILL_CHUNK),
        ).fetchall()
        if not rows:
            return
        with conn.cursor() as cur:
            cur.executemany(
                f"UPDATE events SET {SEARCH_COLUMN} = %s::tsvector WHERE position = %s",
                [(search_vector(message, payload), position) for position, message, payload in rows],
            )
        after = int(rows[-1][0])
