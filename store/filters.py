"""The filter language: one parser, compiled to a live predicate and to SQL.

    kind:run.*  worker:w-3  runtime:ci  run:ID  level:error  after:-10m
    before:2026-11-22  free words  "quoted phrase"  -term

Terms are separated by whitespace and combined with AND; `-` in front of a
term negates it. `Filter.matches` is the predicate for live events and
`Filter.where` the parameterized SQL for history; both give the same answer
for every event (the property test in tests/store/test_filters.py holds
them to that).

Free words are matched the way the FTS5 index (`unicode61 remove_diacritics
0`) sees text: as tokens. A word matches consecutive tokens, the last one as
a prefix (`time` finds `timeout`, `w-3` finds `w 3…`); a quoted phrase
matches its tokens exactly. Rows the indexer has not reached yet are matched
by `adk_words`, a SQL function running the same Python code as `matches`.
PostgreSQL has no FTS5: there `fields_where(postgres=True)` is the SQL of
the other terms, and store.postgres.search looks the words up in its own
index of these same tokens.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from store.codec import searchable_text, us_from_dt
from store.errors import FilterError, FilterTooLarge
from store.models import KIND_RE, RUN_ID_RE, RUNTIME_ID_RE, WORKER_ID_RE, Event, Severity

__all__ = [
    "MAX_FILTER_CHARS",
    "MAX_TERMS",
    "Filter",
    "parse_filter",
    "register_sql_functions",
    "tokenize",
]

FIELDS = ("after", "before", "kind", "level", "run", "runtime", "worker")

# Limits on one filter, so an over-long paste is refused with a message before
# any query instead of failing inside SQLite. SQLite refuses an expression tree
# deeper than 1000 (SQLITE_MAX_EXPR_DEPTH) and `Filter.where` nests about one
# level a term (the AND chain of the clauses, the AND/OR chain of adk_words
# calls): measured through `where` and the reader, 900 terms of any mix still
# run and 1000 do not. 64 terms is far more than anyone types and 14 times
# under that; 2,000 characters is 25 lines of an 80-column filter bar, keeps a
# glob far under SQLite's 50,000-byte GLOB pattern limit, and bounds the FTS
# query strings. tests/store/test_filters.py runs the largest filter allowed.
MAX_TERMS = 64
MAX_FILTER_CHARS = 2_000

# ---------------------------------------------------------------------------
# Tokens, exactly as SQLite's unicode61 tokenizer makes them
# ---------------------------------------------------------------------------

_SEPARATOR, _START, _CONTINUE = 0, 1, 2
_ASCII_TOKEN_RE = re.compile(r"[a-z0-9]+")


class _CharTable:
    """How unicode61 treats each non-ASCII character, learned from SQLite itself.

    The rule on paper is "Unicode categories L*, N* and Co make tokens", but
    SQLite's tables are Unicode 6.1 (unassigned code points of that version,
    newer emoji among them, count as letters), it folds case with its own
    table (`ς` to `σ`, `µ` to `μ`, but `İ` unchanged), and a run of letters
    may continue through some combining accents (`e` + U+0301) that cannot
    start one. Python's unicodedata is a newer Unicode, so a table computed
    here would disagree on a few thousand code points. Asking SQLite once per
    distinct character (an in-memory FTS5 table, cached for the process)
    makes the live predicate agree with the index by construction.
    """

    def __init__(self) -> None:
        self._known: dict[str, tuple[int, str]] = {}
        for code in range(128):
            ch = chr(code)
            self._known[ch] = (_START, ch.lower()) if ch.isalnum() else (_SEPARATOR, "")
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def lookup(self, chars: set[str]) -> dict[str, tuple[int, str]]:
        """The class and case fold of every character in `chars`."""
        missing = [ch for ch in chars if ch not in self._known]
        if missing:
            with self._lock:
                self._probe([ch for ch in missing if ch not in self._known])
        return self._known

    def _probe(self, chars: list[str]) -> None:
        if not chars:
            return
        if self._conn is None:
            # Used from whichever thread filters (UI, aiosqlite workers); the
            # lock serializes access.
            self._conn = sqlite3.connect(":memory:", check_same_thread=False)
            self._conn.execute(
                "CREATE VIRTUAL TABLE probe USING fts5"
                "(body, tokenize='unicode61 remove_diacritics 0')"
            )
            self._conn.execute(
                "CREATE VIRTUAL TABLE probe_terms USING fts5vocab(probe, 'instance')"
            )
        conn = self._conn
        rows: list[tuple[int, str]] = []
        usable: list[str] = []
        for ch in chars:
            try:
                ch.encode("utf-8")
            except UnicodeEncodeError:
                # A lone surrogate can never reach the database (it cannot be
                # encoded), so how it would tokenize does not matter.
                self._known[ch] = (_SEPARATOR, "")
                continue
            n = len(usable)
            usable.append(ch)
            # "Cx" tells whether the character starts a token (and its fold);
            # "xCx" whether it at least continues one.
            rows += [(2 * n + 1, f"{ch}x"), (2 * n + 2, f"x{ch}x")]
        if not usable:
            return
        with conn:
            conn.execute("DELETE FROM probe")
            conn.executemany("INSERT INTO probe (rowid, body) VALUES (?, ?)", rows)
            found: dict[int, list[str]] = {}
            for doc, term in conn.execute(
                "SELECT doc, term FROM probe_terms ORDER BY doc, offset"
            ).fetchall():
                found.setdefault(doc, []).append(term)
        for n, ch in enumerate(usable):
            alone, inside = found.get(2 * n + 1, []), found.get(2 * n + 2, [])
            if alone != ["x"] and len(alone) == 1 and alone[0].endswith("x"):
                self._known[ch] = (_START, alone[0][:-1])
            elif len(inside) == 1:
                self._known[ch] = (_CONTINUE, inside[0][1:-1])
            else:
                self._known[ch] = (_SEPARATOR, "")


_CHARS = _CharTable()


def tokenize(text: str) -> list[str]:
    """The lower-cased tokens FTS5 `unicode61 remove_diacritics 0` makes of `text`."""
    if text.isascii():
        return _ASCII_TOKEN_RE.findall(text.lower())
    table = _CHARS.lookup(set(text))
    tokens: list[str] = []
    current: list[str] = []
    for ch in text:
        kind, folded = table[ch]
        if kind == _START or (kind == _CONTINUE and current):
            current.append(folded)
        elif current:
            tokens.append("".join(current))
            current = []
    if current:
        tokens.append("".join(current))
    return tokens


def _token_line(message: str, payload_json: str) -> str:
    """An event's tokens joined by spaces and framed by them, for substring search."""
    # Tokens never contain a space, so " a b" occurs in the line exactly when
    # token a is followed by a token starting with b.
    return " " + " ".join(tokenize(searchable_text(message, payload_json))) + " "


# ---------------------------------------------------------------------------
# Terms
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Term:
    """One parsed term; `source` is the term as written, for messages and repr."""

    source: str
    negated: bool

    # worker_id and run_id may be NULL, and NOT NULL is NULL: a negated term
    # over them must say "IS NOT 1" so events without a worker are kept.
    nullable = False

    def test(self, event: Event) -> bool:
        """Whether the event satisfies the term, ignoring negation."""
        raise NotImplementedError

    def sql(self) -> tuple[str, list[object]]:
        """The SQL form of `test` over `events e`, ignoring negation."""
        raise NotImplementedError


def _glob_regex(glob: str) -> re.Pattern[str]:
    """SQLite GLOB semantics for `*` and `?` (callers have refused `[`)."""
    parts = [".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob]
    return re.compile("".join(parts), re.DOTALL)


@dataclass(frozen=True)
class _GlobTerm(_Term):
    """A NOT NULL text column equal to a value, or matching a `*`/`?` glob."""

    column: str
    value: str
    regex: re.Pattern[str] = field(repr=False, compare=False)

    def test(self, event: Event) -> bool:
        return self.regex.fullmatch(getattr(event, self.column)) is not None

    def sql(self) -> tuple[str, list[object]]:
        # `=` for a literal keeps it obviously indexable; GLOB uses the index
        # for a literal prefix too (it is case-sensitive, so no collation trap).
        op = "GLOB" if ("*" in self.value or "?" in self.value) else "="
        return f"e.{self.column} {op} ?", [self.value]


@dataclass(frozen=True)
class _EqualsTerm(_Term):
    """A nullable text column equal to a value."""

    column: str
    value: str
    nullable = True

    def test(self, event: Event) -> bool:
        return bool(getattr(event, self.column) == self.value)

    def sql(self) -> tuple[str, list[object]]:
        return f"e.{self.column} = ?", [self.value]


@dataclass(frozen=True)
class _LevelTerm(_Term):
    """The event's level is at least `rank`."""

    rank: int

    def test(self, event: Event) -> bool:
        return event.level.rank >= self.rank

    def sql(self) -> tuple[str, list[object]]:
        return "e.level >= ?", [self.rank]


@dataclass(frozen=True)
class _TimeTerm(_Term):
    """`at >= us` (after) or `at < us` (before), in UTC microseconds."""

    after: bool
    us: int

    def test(self, event: Event) -> bool:
        at = us_from_dt(event.at)
        return at >= self.us if self.after else at < self.us

    def sql(self) -> tuple[str, list[object]]:
        return ("e.at >= ?" if self.after else "e.at < ?"), [self.us]


@dataclass(frozen=True)
class _WordTerm(_Term):
    """Consecutive tokens; the last one a prefix unless the word was quoted."""

    tokens: tuple[str, ...]
    prefix: bool

    @property
    def needle(self) -> str:
        """What to look for in a token line (see `_token_line`)."""
        return " " + " ".join(self.tokens) + ("" if self.prefix else " ")

    @property
    def fts_query(self) -> str:
        """One FTS5 phrase: tokens quoted as a string, so no token is syntax."""
        phrase = " ".join(self.tokens).replace('"', '""')
        return f'"{phrase}"' + ("*" if self.prefix else "")

    def test_line(self, line: str) -> bool:
        return self.needle in line


# ---------------------------------------------------------------------------
# Filter
# ---------------------------------------------------------------------------

_FTS_WORDS = (
    "(e.position <= ? AND e.position IN"
    " (SELECT rowid FROM events_fts WHERE events_fts MATCH ?))"
    " OR (e.position > ? AND ({tail}))"
)
_ADK_WORDS = "adk_words(e.message, e.payload, ?)"


@dataclass(frozen=True)
class Filter:
    """A parsed filter expression; build one with `parse_filter`."""

    text: str
    terms: tuple[_Term, ...] = field(default=(), repr=False)

    @property
    def is_empty(self) -> bool:
        """True when the filter matches every event."""
        return not self.terms

    @property
    def has_words(self) -> bool:
        """True when the filter searches text (so SQL needs `adk_words` and the FTS table)."""
        return any(isinstance(t, _WordTerm) for t in self.terms)

    def matches(self, event: Event) -> bool:
        """The live predicate: whether `event` passes every term."""
        words: list[_WordTerm] = []
        for term in self.terms:
            if isinstance(term, _WordTerm):
                words.append(term)
            elif term.test(event) == term.negated:
                return False
        # Words last: tokenizing the event costs more than all other terms (and
        # payload_json may have to be dumped).
        return not words or _words_pass(words, event.message, event.payload_json)

    def matches_words(self, message: str, payload_json: str) -> bool:
        """Whether an event's text passes every free-word term (the other terms aside).

        For a back end whose SQL answers the other terms exactly and whose text
        index only narrows the rows (store.postgres.search): the same check as
        `matches` makes, without building the Event.
        """
        return _words_pass(self.word_terms, message, payload_json)

    @property
    def fts_match(self) -> str | None:
        """The FTS5 query of the wanted words (None without any), for driving a search."""
        wanted = [t for t in self.terms if isinstance(t, _WordTerm) and not t.negated]
        return " AND ".join(w.fts_query for w in wanted) if wanted else None

    def where(self, indexed_upto: int, *, skip_wanted_words: bool = False) -> tuple[str, list[object]]:
        """A parameterized SQL condition over `events e` ("1" when empty).

        Words are looked up in `events_fts` for positions up to
        `indexed_upto` (what the indexer has covered) and checked with
        `adk_words` above it; the connection needs `register_sql_functions`.
        With `skip_wanted_words`, the wanted words are left out: for a query
        that starts from `fts_match` itself (the fast path for rare words).
        """
        clauses, params = self._field_clauses(postgres=False)
        words = [t for t in self.terms if isinstance(t, _WordTerm)]
        wanted = [w for w in words if not w.negated]
        unwanted = [w for w in words if w.negated]
        # All wanted words go into one FTS query (AND), all unwanted ones into
        # another (OR, negated as a whole): at most two index lookups.
        if wanted and not skip_wanted_words:
            sql, values = _words_sql(wanted, "AND", indexed_upto)
            clauses.append(f"({sql})")
            params += values
        if unwanted:
            sql, values = _words_sql(unwanted, "OR", indexed_upto)
            clauses.append(f"NOT ({sql})")
            params += values
        if not clauses:
            return "1", []
        return " AND ".join(f"({c})" for c in clauses), params

    @property
    def word_terms(self) -> tuple[_WordTerm, ...]:
        """The free words and phrases (`tokens`, `prefix`, `negated`), for a back end's own index."""
        return tuple(t for t in self.terms if isinstance(t, _WordTerm))

    def fields_where(self, *, postgres: bool = False) -> tuple[str, list[object]]:
        """The SQL condition (`?` placeholders) of every term but the free words.

        "1" when there is none, as `where` says it. With `postgres`, in
        PostgreSQL's words: a `*`/`?` glob as LIKE (SQLite's GLOB is
        case-sensitive, and so is LIKE on the "C"-collated columns), a negated
        nullable term as IS NOT TRUE, and no condition as TRUE.
        """
        clauses, params = self._field_clauses(postgres=postgres)
        if not clauses:
            return ("TRUE" if postgres else "1"), []
        return " AND ".join(f"({c})" for c in clauses), params

    def _field_clauses(self, *, postgres: bool) -> tuple[list[str], list[object]]:
        clauses: list[str] = []
        params: list[object] = []
        for term in self.terms:
            if isinstance(term, _WordTerm):
                continue
            sql, values = term.sql()
            if postgres and isinstance(term, _GlobTerm) and " GLOB " in sql:
                sql, values = f"e.{term.column} LIKE ?", [_like_pattern(term.value)]
            if term.negated:
                is_not = "IS NOT TRUE" if postgres else "IS NOT 1"
                sql = f"({sql}) {is_not}" if term.nullable else f"NOT ({sql})"
            clauses.append(sql)
            params += values
        return clauses, params


def _words_pass(words: Sequence[_WordTerm], message: str, payload_json: str) -> bool:
    if not words:
        return True
    line = _token_line(message, payload_json)
    return all(w.test_line(line) != w.negated for w in words)


def _like_pattern(glob: str) -> str:
    """A `*`/`?` glob as a LIKE pattern (backslash, LIKE's default escape, quoting `%` and `_`)."""
    out = []
    for c in glob:
        if c in "%_\\":
            out.append("\\" + c)
        else:
            out.append("%" if c == "*" else "_" if c == "?" else c)
    return "".join(out)


def _words_sql(words: list[_WordTerm], joiner: str, indexed_upto: int) -> tuple[str, list[object]]:
    fts = f" {joiner} ".join(w.fts_query for w in words)
    tail = f" {joiner} ".join(_ADK_WORDS for _ in words)
    return _FTS_WORDS.format(tail=tail), [
        indexed_upto,
        fts,
        indexed_upto,
        *(w.needle for w in words),
    ]


# ---------------------------------------------------------------------------
# SQL function for the rows the FTS index has not reached
# ---------------------------------------------------------------------------


def _adk_words(message: str | None, payload: str | None, needle: str | None) -> int:
    if needle is None:
        return 0
    return int(needle in _cached_line(message or "", payload or ""))


# Every word of one filter calls adk_words on the same row in turn; remember
# the last row's tokens so a row is tokenized once, not once per word.
# (One tuple, replaced whole, so threads calling at once can only miss.)
_last_line: tuple[str, str, str] = ("", "", " ")


def _cached_line(message: str, payload: str) -> str:
    global _last_line
    cached = _last_line
    if cached[0] == message and cached[1] == payload:
        return cached[2]
    line = _token_line(message, payload)
    _last_line = (message, payload, line)
    return line


def register_sql_functions(conn: sqlite3.Connection) -> None:
    """Register `adk_words(message, payload, needle)` on `conn`, which `Filter.where` uses."""
    conn.create_function("adk_words", 3, _adk_words, deterministic=True)


# ---------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------

_FIELD_RE = re.compile(r"([A-Za-z]+):")
_RELATIVE_RE = re.compile(r"-(\d{1,9})([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_KIND_GLOB_RE = re.compile(r"[a-z0-9_.*?]+")
_RUNTIME_GLOB_RE = re.compile(r"[a-z0-9._*?-]+")
_LEVELS = {s.value: s.rank for s in Severity}


@dataclass(frozen=True)
class _RawTerm:
    source: str
    negated: bool
    name: str | None
    value: str
    quoted: bool


def _scan(text: str) -> list[_RawTerm]:
    """Split the expression into terms: [-][field:](word | "quoted text")."""
    terms: list[_RawTerm] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        start = i
        negated = text[i] == "-"
        if negated:
            i += 1
        name: str | None = None
        m = _FIELD_RE.match(text, i)
        if m:
            name = m.group(1)
            i = m.end()
        if i < n and text[i] == '"':
            close = text.find('"', i + 1)
            if close < 0:
                raise FilterError(text[start:], "the quote is not closed")
            value, quoted, i = text[i + 1 : close], True, close + 1
            if i < n and not text[i].isspace():
                end = i
                while end < n and not text[end].isspace():
                    end += 1
                raise FilterError(text[start:end], "put a space after the closing quote")
        else:
            end = i
            while end < n and not text[end].isspace():
                end += 1
            value, quoted, i = text[i:end], False, end
        terms.append(_RawTerm(text[start:i], negated, name, value, quoted))
    return terms


def parse_filter(text: str, *, now: datetime | None = None) -> Filter:
    """Parse a filter expression; relative times count back from `now` (default: the clock).

    Raises FilterError naming the first bad term, or FilterTooLarge past
    MAX_TERMS terms or MAX_FILTER_CHARS characters.
    """
    stripped = text.strip()
    if len(stripped) > MAX_FILTER_CHARS:
        raise FilterTooLarge("characters", len(stripped), MAX_FILTER_CHARS, stripped)
    raws = _scan(text)
    if len(raws) > MAX_TERMS:
        raise FilterTooLarge("terms", len(raws), MAX_TERMS, raws[MAX_TERMS].source)
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return Filter(text=text, terms=tuple(_term(raw, now) for raw in raws))


def _term(raw: _RawTerm, now: datetime) -> _Term:
    if raw.name is None:
        return _word(raw)
    name = raw.name.lower()
    if name not in FIELDS:
        raise FilterError(
            raw.source,
            f"unknown field {raw.name!r}; the fields are {', '.join(FIELDS)}"
            " (put the term in quotes to search for it as text)",
        )
    if not raw.value:
        raise FilterError(raw.source, f"{name}: needs a value")
    value = raw.value
    if name == "kind":
        return _glob(raw, "kind", value, _KIND_GLOB_RE, KIND_RE, "run.completed or run.*")
    if name == "runtime":
        return _glob(raw, "runtime_id", value, _RUNTIME_GLOB_RE, RUNTIME_ID_RE, "local or ci-*")
    if name == "worker":
        worker = f"w-{value}" if value.isdigit() else value
        if not WORKER_ID_RE.fullmatch(worker):
            raise FilterError(raw.source, "expected a worker id like w-3 (or just 3)")
        return _EqualsTerm(raw.source, raw.negated, "worker_id", worker)
    if name == "run":
        if not RUN_ID_RE.fullmatch(value):
            raise FilterError(raw.source, "expected a run id (letters, digits, '.', '_', '-')")
        return _EqualsTerm(raw.source, raw.negated, "run_id", value)
    if name == "level":
        rank = _LEVELS.get(value.lower())
        if rank is None:
            raise FilterError(raw.source, f"the levels are {', '.join(_LEVELS)}")
        return _LevelTerm(raw.source, raw.negated, rank)
    return _TimeTerm(raw.source, raw.negated, name == "after", _time(raw, value, now))


def _glob(
    raw: _RawTerm,
    column: str,
    value: str,
    allowed: re.Pattern[str],
    exact: re.Pattern[str],
    example: str,
) -> _GlobTerm:
    # Refusing anything a stored value cannot contain (upper case, `[`, ...)
    # keeps the glob dialects out of the picture: only `*` and `?` remain,
    # which mean the same in SQLite GLOB and in the regex.
    wild = "*" in value or "?" in value
    if not allowed.fullmatch(value) or (not wild and not exact.fullmatch(value)):
        raise FilterError(
            raw.source,
            f"expected something like {example} (lower case; * and ? as wildcards)",
        )
    return _GlobTerm(raw.source, raw.negated, column, value, _glob_regex(value))


def _time(raw: _RawTerm, value: str, now: datetime) -> int:
    m = _RELATIVE_RE.fullmatch(value)
    try:
        if m:
            delta = timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
            return us_from_dt(now - delta)
        at = datetime.fromisoformat(value)
    except (ValueError, OverflowError):
        pass
    else:
        # A date or time without an offset is UTC, like every stored time.
        return us_from_dt(at if at.tzinfo is not None else at.replace(tzinfo=UTC))
    raise FilterError(
        raw.source, "expected a time like -30s, -10m, -2h, -1d, 2026-11-22 or 2026-11-22T10:00"
    )


def _word(raw: _RawTerm) -> _WordTerm:
    tokens = tuple(tokenize(raw.value))
    if not tokens:
        problem = (
            "a lone '-' negates nothing"
            if raw.negated and not raw.value and not raw.quoted
            else "has no letters or digits to search for"
        )
        raise FilterError(raw.source, problem)
    return _WordTerm(raw.source, raw.negated, tokens, prefix=not raw.quoted)
