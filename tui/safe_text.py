"""Untrusted text to display: worker output, event messages and payloads, shown literally.

Everything here returns a `rich.text.Text` built from plain strings and
`Style` objects, never from markup, so `[@click=app.quit]x[/]`, `[b]` or
`[link=…]` appear exactly as typed and do nothing. (Textual converts a `Text`
to `Content` span by span; a span whose style is a *string* would be parsed
there, which is why no style here is ever a string.)

What happens to each kind of character, so a program the operator does not
control cannot drive the terminal, hide text or fake the screen:

- C0 controls (U+0000–U+001F but tab and newline) and DEL become their
  Unicode "control picture" (`␛` for ESC, `␇` for BEL, `␈` for backspace,
  `␍` for a lone carriage return, `␡` for DEL) in `CONTROL_STYLE`. The rest of
  an escape sequence is ordinary printable text and stays, so `\\x1b[31m`
  reads `␛[31m` and an OSC 52 clipboard write reads `␛]52;c;…␇`: visible,
  inert.
- C1 controls (U+0080–U+009F, which some terminals take as CSI/OSC) and
  invisible format characters — bidi embeddings, overrides and isolates
  (U+202A–U+202E, U+2066–U+2069, LRM/RLM/ALM), zero-width space/joiners
  (U+200B–U+200D, U+2060, U+FEFF), soft hyphen, tag characters
  (U+E0000–U+E007F), line/paragraph separators, Hangul fillers, and most
  variation selectors — become their Python escape (`\\x9b`, `\\u202e`,
  `\\U000e0041`) in `CONTROL_STYLE`. Nothing is dropped silently, so what the
  operator reads is what the program sent. (U+FE0E/U+FE0F, the emoji and text
  presentation selectors, are kept: they are everywhere in ordinary emoji.)
- Lone surrogates — what `errors="surrogateescape"` makes of invalid UTF-8 —
  become U+FFFD.
- Tabs expand to spaces at `tab_size` stops.
- Newlines: `multi_line` keeps them (a CRLF pair is one newline);
  `one_line` shows each as a dim `⏎` so a message stays on its row.

`one_line(text, width)` cuts what does not fit with a trailing `…`; callers
keep the full text for the full view.

Text leaving the program goes through this module too, so one character set
(`UNSAFE_CHARACTERS`) decides everywhere: `clean` for plain sinks (the
`agentdeck events` line, CSV cells, file names, the clipboard) and
`json_dumps` for JSON, which must stay exact: it writes every unsafe
character as a `\\uXXXX` escape (astral ones as a surrogate pair), so
decoding gives back the very string while a terminal or viewer showing the
JSON never meets the raw character.
"""

from __future__ import annotations

import json
import re
from typing import Any

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text

__all__ = [
    "CONTROL_STYLE",
    "ELLIPSIS",
    "NEWLINE_MARK",
    "NEWLINE_STYLE",
    "UNSAFE_CHARACTERS",
    "clean",
    "json_dumps",
    "multi_line",
    "one_line",
]

CONTROL_STYLE = Style(reverse=True)
"""How a made-visible control or invisible character is shown."""

NEWLINE_STYLE = Style(dim=True)
NEWLINE_MARK = "⏎"
ELLIPSIS = "…"
REPLACEMENT = "\ufffd"

# Everything that is not shown as itself. Categories Cc, Cf, Zl, Zp and Cs
# of Unicode 14 (Python 3.11) plus the 15.0 additions to the Egyptian
# format controls; tests/ui/test_safe_text.py checks the list against the
# running interpreter's unicodedata so a newer Python cannot slip one past.
UNSAFE_CHARACTERS = (
    "\x00-\x1f\x7f-\x9f"  # C0 (tab and newline included: handled apart), DEL, C1
    "\u00ad"  # soft hyphen
    "\u034f"  # combining grapheme joiner
    "\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2"  # Arabic format marks, ALM
    "\u115f\u1160\u3164\uffa0"  # Hangul fillers: letters that render blank
    "\u180e"  # Mongolian vowel separator
    "\u200b-\u200f"  # zero-width space, ZWNJ, ZWJ, LRM, RLM
    "\u2028-\u202e"  # line/paragraph separators, bidi embeddings and overrides
    "\u2060-\u2064\u2066-\u206f"  # word joiner, invisible operators, bidi isolates
    "\ufe00-\ufe0d"  # variation selectors 1-14 (15 and 16 pick text/emoji style)
    "\ufeff"  # zero-width no-break space / BOM
    "\ufff9-\ufffb"  # interlinear annotation
    "\ud800-\udfff"  # lone surrogates: undecodable bytes
    "\U000110bd\U000110cd"
    "\U00013430-\U0001343f"
    "\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a"
    "\U000e0000-\U000e007f"  # tag characters (invisible ASCII look-alikes)
    "\U000e0100-\U000e01ef"  # variation selectors supplement
)

# A CRLF pair is matched first so it counts as one newline.
_SPECIAL = re.compile(f"\r\n|[{UNSAFE_CHARACTERS}]")
_UNSAFE = re.compile(f"[{UNSAFE_CHARACTERS}]")


def _visible(ch: str) -> tuple[str, Style | None]:
    """What to show for one unsafe character (not tab or newline)."""
    code = ord(ch)
    if code < 0x20:
        return chr(0x2400 + code), CONTROL_STYLE  # the control pictures block
    if code == 0x7F:
        return "\u2421", CONTROL_STYLE  # ␡
    if 0xD800 <= code <= 0xDFFF:
        return REPLACEMENT, None
    if code <= 0xFF:
        return f"\\x{code:02x}", CONTROL_STYLE
    if code <= 0xFFFF:
        return f"\\u{code:04x}", CONTROL_STYLE
    return f"\\U{code:08x}", CONTROL_STYLE


def _pieces(
    text: str, *, newlines: bool, tab_size: int, control_style: Style
) -> list[tuple[str, Style | None]]:
    """Split `text` into display pieces: (string, style or None for plain)."""
    out: list[tuple[str, Style | None]] = []
    plain: list[str] = []
    column = 0  # cells since the last newline, only needed for tab stops
    last = 0

    def flush() -> None:
        if plain:
            out.append(("".join(plain), None))
            plain.clear()

    for match in _SPECIAL.finditer(text):
        start = match.start()
        if start > last:
            chunk = text[last:start]
            plain.append(chunk)
            column += cell_len(chunk)
        last = match.end()
        ch = match.group()
        if ch == "\t":
            spaces = tab_size - column % tab_size if tab_size > 0 else 1
            plain.append(" " * spaces)
            column += spaces
        elif ch in ("\n", "\r\n"):
            if newlines:
                plain.append("\n")
            else:
                flush()
                out.append((NEWLINE_MARK, NEWLINE_STYLE))
            column = 0
        else:
            shown, style = _visible(ch)
            if style is None:
                plain.append(shown)
            else:
                flush()
                out.append((shown, control_style))
            column += cell_len(shown)
    if last < len(text):
        plain.append(text[last:])
    flush()
    return out


def _build(
    text: str,
    *,
    newlines: bool,
    style: Style | None,
    tab_size: int,
    control_style: Style | None,
) -> Text:
    base: Style | str = style or ""
    if not _SPECIAL.search(text):
        return Text(text, style=base, end="")
    result = Text(style=base, end="")
    for piece, piece_style in _pieces(
        text, newlines=newlines, tab_size=tab_size, control_style=control_style or CONTROL_STYLE
    ):
        result.append(piece, piece_style)
    return result


def one_line(
    text: str,
    width: int | None = None,
    *,
    style: Style | None = None,
    tab_size: int = 8,
    control_style: Style | None = None,
) -> Text:
    """`text` safe for one row: newlines shown as `⏎`, cut to `width` cells with `…`."""
    result = _build(
        text, newlines=False, style=style, tab_size=tab_size, control_style=control_style
    )
    result.no_wrap = True
    if width is not None and result.cell_len > width:
        result.truncate(max(width, 0), overflow="ellipsis")
    return result


def multi_line(
    text: str,
    *,
    style: Style | None = None,
    tab_size: int = 8,
    control_style: Style | None = None,
) -> Text:
    """`text` safe for a block (transcripts, payloads): newlines kept, CRLF made one."""
    return _build(text, newlines=True, style=style, tab_size=tab_size, control_style=control_style)


def clean(text: str, *, newlines: bool = True, tab_size: int = 8) -> str:
    """The same cleaning as plain characters, for sinks that take `str` and never markup.

    For file names, the clipboard or a log line. Do not hand the result to
    anything that parses markup (a `Static` given a `str`, `notify` without
    `markup=False`, `border_title`): pass `one_line`/`multi_line` there.
    """
    if not _SPECIAL.search(text):
        return text
    return "".join(
        piece
        for piece, _ in _pieces(text, newlines=newlines, tab_size=tab_size, control_style=Style())
    )


def _json_escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code > 0xFFFF:
        # JSON's \u takes four hex digits: an astral code point is written as
        # its UTF-16 pair, which every JSON decoder joins back into one.
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def json_dumps(value: Any, *, compact: bool = False, sort_keys: bool = False) -> str:
    """`value` as one line of JSON that decodes to exactly `value` and shows no unsafe character.

    Like `json.dumps(value, ensure_ascii=False)` (readable text stays
    readable), except that every character of `UNSAFE_CHARACTERS` (DEL, C1,
    bidi, zero-width, tags, lone surrogates, ...) is a `\\uXXXX` escape;
    `json` itself already escapes C0. Such characters can only sit inside
    JSON strings, so escaping them in the encoded text is escaping them in
    the strings. (Python holding a high and a low surrogate as two separate
    characters is the one string no JSON can give back: decoders join the
    pair. Stored text cannot hold it; it is not valid UTF-8.)
    """
    separators = (",", ":") if compact else None
    text = json.dumps(value, ensure_ascii=False, separators=separators, sort_keys=sort_keys)
    return _UNSAFE.sub(_json_escape, text)
