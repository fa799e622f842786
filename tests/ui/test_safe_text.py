"""Untrusted text is shown literally: no markup, no escapes, nothing invisible."""

from __future__ import annotations

import io
import json
import re
import sys
import unicodedata

from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console
from rich.style import Style
from rich.text import Text
from textual.app import App, ComposeResult
from textual.widgets import Label, Static

from tui.safe_text import (
    CONTROL_STYLE,
    ELLIPSIS,
    NEWLINE_MARK,
    UNSAFE_CHARACTERS,
    clean,
    json_dumps,
    multi_line,
    one_line,
)

EVIL_MARKUP = "[@click=app.quit]x[/] [b]bold[/b] [link=https://evil.example]here[/link]"

# Characters that must never reach the terminal as themselves.
FORBIDDEN_CATEGORIES = {"Cc", "Cf", "Zl", "Zp", "Cs"}


def _styled(text: Text) -> list[tuple[str, Style | str]]:
    return [(text.plain[s.start : s.end], s.style) for s in text.spans]


def _assert_inert(text: Text) -> None:
    """Every style is one of ours: an object (never parsed), with no link or action."""
    for span in text.spans:
        assert isinstance(span.style, Style)
        assert not span.style.link
        assert not span.style.meta
    assert not text.style or isinstance(text.style, Style)


# -- markup -------------------------------------------------------------------


def test_markup_is_kept_as_typed() -> None:
    for render in (one_line, multi_line):
        text = render(EVIL_MARKUP)
        assert text.plain == EVIL_MARKUP
        assert text.spans == []
        _assert_inert(text)


# -- escape sequences and control characters ----------------------------------


def test_csi_sequence_is_made_visible() -> None:
    text = one_line("a\x1b[31mred\x1b[0m")
    assert text.plain == "a␛[31mred␛[0m"
    assert _styled(text) == [("␛", CONTROL_STYLE), ("␛", CONTROL_STYLE)]
    assert "\x1b" not in text.plain


def test_osc_52_clipboard_write_is_made_visible() -> None:
    text = multi_line("\x1b]52;c;aGVsbG8=\x07tail")
    assert text.plain == "␛]52;c;aGVsbG8=␇tail"
    assert "\x1b" not in text.plain and "\x07" not in text.plain


def test_other_c0_controls_and_del_become_control_pictures() -> None:
    text = one_line("nul\x00 bs\x08 bell\x07 vt\x0b ff\x0c del\x7f")
    assert text.plain == "nul␀ bs␈ bell␇ vt␋ ff␌ del␡"
    assert all(style == CONTROL_STYLE for _, style in _styled(text))


def test_lone_carriage_return_is_visible_and_crlf_is_one_newline() -> None:
    assert one_line("progress 10%\rprogress 99%").plain == "progress 10%␍progress 99%"
    assert multi_line("one\r\ntwo\rthree").plain == "one\ntwo␍three"
    assert one_line("one\r\ntwo").plain == f"one{NEWLINE_MARK}two"


def test_c1_controls_are_escaped() -> None:
    # U+009B is CSI for terminals that take 8-bit controls.
    text = one_line("x\x9b31my\x85z")
    assert text.plain == "x\\x9b31my\\x85z"
    assert _styled(text) == [("\\x9b", CONTROL_STYLE), ("\\x85", CONTROL_STYLE)]


def test_bidi_overrides_and_isolates_are_escaped() -> None:
    # The classic "exe.txt" spoof: an RLO makes "txt.exe" read backwards.
    text = one_line("invoice\u202etxt.exe \u2066iso\u2069 \u200fmark")
    assert text.plain == "invoice\\u202etxt.exe \\u2066iso\\u2069 \\u200fmark"
    for ch in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069":
        assert one_line(ch).plain == f"\\u{ord(ch):04x}"


def test_zero_width_and_tag_characters_are_escaped() -> None:
    text = one_line("a\u200bb\u200cc\u200dd\u2060e\ufefff")
    assert text.plain == "a\\u200bb\\u200cc\\u200dd\\u2060e\\ufefff"
    # Tag characters spell hidden ASCII; shown, not hidden.
    assert one_line("hi\U000e0041").plain == "hi\\U000e0041"


def test_emoji_presentation_selector_is_kept() -> None:
    assert one_line("ok \u2714\ufe0f").plain == "ok \u2714\ufe0f"


def test_invalid_utf8_is_replaced() -> None:
    decoded = b"ok \xff\xfe done".decode("utf-8", errors="surrogateescape")
    assert multi_line(decoded).plain == "ok \ufffd\ufffd done"
    assert one_line("\ud800").plain == "\ufffd"


def test_tabs_expand_to_stops() -> None:
    assert one_line("a\tb").plain == "a       b"
    assert one_line("abc\tx", tab_size=4).plain == "abc x"
    assert multi_line("ab\tc\n\td", tab_size=4).plain == "ab  c\n    d"
    # Made-visible characters take their shown width into account.
    assert one_line("\x1b\tx", tab_size=4).plain == "␛   x"


def test_no_forbidden_character_survives_any_category() -> None:
    """Every Cc/Cf/Zl/Zp/Cs code point this Python knows is shown as something else."""
    missed = []
    for code in range(sys.maxunicode + 1):
        ch = chr(code)
        if unicodedata.category(ch) not in FORBIDDEN_CATEGORIES:
            continue
        for render in (one_line, multi_line):
            plain = render(f"a{ch}b").plain
            if ch in plain and ch != "\n":
                missed.append((hex(code), render.__name__))
    assert missed == []


@given(st.text())
def test_output_is_always_printable(value: str) -> None:
    for text in (one_line(value), multi_line(value)):
        _assert_inert(text)
        for ch in text.plain:
            if ch == "\n":
                continue
            assert unicodedata.category(ch) not in FORBIDDEN_CATEGORIES, hex(ord(ch))
    assert "\n" not in one_line(value).plain


# -- cutting ------------------------------------------------------------------


def test_one_line_cuts_with_ellipsis_and_keeps_short_text() -> None:
    long = "word " * 40
    cut = one_line(long, 20)
    assert cut.cell_len == 20
    assert cut.plain.endswith(ELLIPSIS)
    assert cut.plain[:-1] == long[:19]
    assert one_line("short", 20).plain == "short"
    assert one_line(long).plain == long.rstrip("\n")  # no width: nothing cut


def test_one_line_cuts_by_cells_not_characters() -> None:
    cut = one_line("日本語のテキスト", 7)
    assert cut.cell_len <= 7
    assert cut.plain.endswith(ELLIPSIS)


def test_one_line_keeps_newlines_visible() -> None:
    text = one_line("first\nsecond")
    assert text.plain == f"first{NEWLINE_MARK}second"
    assert "\n" not in text.plain


def test_multi_line_keeps_lines() -> None:
    text = multi_line("line one\nline [b]two[/b]\n")
    assert text.plain == "line one\nline [b]two[/b]\n"
    assert text.spans == []


def test_clean_gives_the_same_characters_as_a_string() -> None:
    value = "a\x1b[2J\tb\u202ec\udcff\r\nd"
    assert clean(value) == multi_line(value).plain
    assert clean(value, newlines=False) == one_line(value).plain
    assert clean("plain") == "plain"


def test_style_argument_is_applied_without_parsing() -> None:
    text = one_line("[red]x[/red]", style=Style(bold=True))
    assert text.plain == "[red]x[/red]"
    assert text.style == Style(bold=True)


# -- JSON: exact, yet nothing unsafe written raw ---------------------------------

UNSAFE = re.compile(f"[{UNSAFE_CHARACTERS}]")
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def test_json_dumps_escapes_each_kind_of_unsafe_character() -> None:
    """Issue 7 item 11: C1, DEL, bidi, zero-width and tags become \\u escapes; text stays readable."""
    value = {"m": "é \x1b[2J\x7f\x9b\x9d\u202e\u200b\u2028\U000e0041 ok", "\u202ekey": 1}
    text = json_dumps(value)
    assert text == (
        '{"m": "é \\u001b[2J\\u007f\\u009b\\u009d\\u202e\\u200b\\u2028\\udb40\\udc41 ok",'
        ' "\\u202ekey": 1}'
    )
    assert json.loads(text) == value
    assert json_dumps(value, compact=True) == text.replace('", "', '","').replace(": ", ":")


def test_json_dumps_keeps_lone_surrogates_exact() -> None:
    """Issue 7 item 11: an undecodable byte (a lone surrogate) is escaped, not raw nor lost."""
    decoded = b"ok \xff".decode("utf-8", errors="surrogateescape")
    text = json_dumps([decoded, "\ud800"])
    assert text == '["ok \\udcff", "\\ud800"]'
    assert json.loads(text) == [decoded, "\ud800"]
    text.encode("utf-8")  # printable on a UTF-8 stream: no raw surrogate left


def test_json_dumps_escapes_every_forbidden_code_point() -> None:
    """Issue 7 item 11: no Cc/Cf/Zl/Zp/Cs character this Python knows reaches JSON output raw."""
    missed = []
    for code in range(sys.maxunicode + 1):
        ch = chr(code)
        if unicodedata.category(ch) not in FORBIDDEN_CATEGORIES:
            continue
        text = json_dumps(f"a{ch}b")
        if ch in text or json.loads(text) != f"a{ch}b":
            missed.append(hex(code))
    assert missed == []


@given(JSON_VALUES)
def test_json_dumps_round_trips_and_shows_nothing_unsafe(value: object) -> None:
    """Issue 7 item 11: decoding gives back exactly the value; no unsafe character is written."""
    for compact in (False, True):
        text = json_dumps(value, compact=compact)
        assert json.loads(text) == value
        assert UNSAFE.search(text) is None
        assert "\n" not in text


# -- through real widgets ------------------------------------------------------


def screen_text(app: App[None]) -> str:
    """What the terminal shows, as plain text (the snapshot renderer, without the SVG)."""
    width, height = app.size
    console = Console(
        width=width, height=height, file=io.StringIO(), force_terminal=True,
        color_system="truecolor", record=True, legacy_windows=False,
    )
    console.print(
        app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    )
    return console.export_text()


class EvilApp(App[None]):
    """A Static and a Label fed worker text that tries every trick."""

    def __init__(self, *, safe: bool = True) -> None:
        super().__init__()
        self.safe = safe

    def compose(self) -> ComposeResult:
        evil = "[@click=app.quit]CLICKME[/]"
        yield Static(one_line(evil) if self.safe else evil, id="static")
        yield Label(multi_line("[b]bold?[/b]\n\x1b[31mred?\x1b]52;c;aGk=\x07"), id="label")
        yield Static(one_line("[link=https://evil.example]link[/link] \u202eRTL"), id="link")


async def test_widgets_show_markup_literally_and_clicks_do_nothing() -> None:
    app = EvilApp()
    async with app.run_test(size=(60, 8)) as pilot:
        await pilot.pause()
        shown = screen_text(app)
        assert "[@click=app.quit]CLICKME[/]" in shown
        assert "[b]bold?[/b]" in shown
        assert "␛[31mred?" in shown
        assert "␛]52;c;aGk=␇" in shown
        assert "[link=https://evil.example]link[/link]" in shown
        assert "\\u202eRTL" in shown
        assert "\x1b" not in shown
        # Click every cell where the fake link is, and press enter on it.
        for x in (0, 1, 9, 17, 20, 25):
            await pilot.click("#static", offset=(x, 0))
        await pilot.click("#link", offset=(3, 0))
        await pilot.press("enter")
        await pilot.pause()
        assert app.is_running
        assert app.return_code is None


async def test_click_would_quit_if_markup_were_interpreted() -> None:
    """The control: the same click on the same text as markup does quit (so the test above bites)."""
    app = EvilApp(safe=False)
    async with app.run_test(size=(60, 8)) as pilot:
        await pilot.pause()
        assert "CLICKME" in screen_text(app)
        assert "[@click" not in screen_text(app)
        await pilot.click("#static", offset=(2, 0))
        await pilot.pause()
        assert app.return_code == 0  # app.quit ran
