"""The console's screens and dialogs, each in a tiny host app: Pilot for keys, snapshots for looks.

Stores are real files driven by a real `Runtime` with the echo driver; seeded
scenes use the stepping clock and counting ids so the SVGs are stable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from textual import events
from textual.app import App
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Button, DataTable, Input, Select, Static, TextArea

from engine.clock import CountingIds, SteppingClock
from engine.runtime import Runtime
from engine.validation import REQUEST_LIMITS, Refusal, worker_request_refusal
from store.database import OpenOptions
from store.event_store import EventStore
from store.models import (
    Capability,
    Diagnostic,
    Limits,
    NamedRef,
    RoleIntent,
    TaskIntent,
    WorkerRef,
    WorkerSpec,
)
from tui.backend import HostedBackend
from tui.feed import ConsoleFeed, FeedBatch
from tui.screens.confirm import ConfirmScreen
from tui.screens.create_worker import CreateWorkerScreen, FormError, parse_capabilities, parse_refs
from tui.screens.diagnostics import DiagnosticsScreen
from tui.screens.export import ExportScreen, check_export_path, with_format
from tui.screens.help import HelpScreen
from tui.screens.live import LiveScreen
from tui.screens.send_input import (
    UNWRAP_ABOVE_CHARS,
    UNWRAPPED_NOTE,
    InputArea,
    SendInputScreen,
)
from tui.screens.worker import WorkerScreen

MARKUP = "[@click=app.quit]x[/] [b]bold[/b] [link=https://example.com]l[/link] \x1b[31mred\x07"
T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


class Host(App[None]):
    """Pushes one screen at start and records what it is dismissed with."""

    def __init__(self, make: Callable[[], Screen[Any]]) -> None:
        super().__init__()
        self._make = make
        self.results: list[Any] = []

    def on_mount(self) -> None:
        self.push_screen(self._make(), self.results.append)


class LiveHost(App[None]):
    """Runs the console feed on `backend` and hands its batches to the screen it pushes."""

    def __init__(self, backend: HostedBackend, make: Callable[[HostedBackend], Screen[Any]]) -> None:
        super().__init__()
        self.backend = backend
        self._make = make
        self.results: list[Any] = []
        self.feed: ConsoleFeed | None = None

    async def on_mount(self) -> None:
        self.feed = ConsoleFeed(self.backend.subscribe, self._deliver)
        self.feed.start(await self.backend.last_position())
        self.push_screen(self._make(self.backend), self.results.append)

    def _deliver(self, batch: FeedBatch) -> None:
        for screen in self.screen_stack:
            if isinstance(screen, LiveScreen):
                screen.apply_batch(batch)

    async def on_unmount(self) -> None:
        if self.feed is not None:
            await self.feed.close()


async def wait_for(pilot: Pilot[Any], cond: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.02)


def screen_text(app: App[Any]) -> str:
    """What the terminal shows, as plain lines."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def run_settled(runtime: Runtime, ref: WorkerRef) -> None:
    """Wait until the worker has no queued or active run."""
    for _ in range(500):
        record = await runtime.store.worker(ref.runtime_id, ref.worker_id)
        assert record is not None
        if record.queued == 0 and (
            record.current_run_status is None or record.current_run_status.terminal
        ):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("run did not finish")


async def hosted(
    path: Path, step: timedelta = timedelta(milliseconds=10)
) -> tuple[EventStore, Runtime]:
    # synchronous=OFF: these tests need no durability, and fsyncs would dominate.
    store = await EventStore.open(
        path, watch=False, index=False, options=OpenOptions(synchronous="OFF")
    )
    runtime = await Runtime.host(
        store, "local", clock=SteppingClock(step=step), ids=CountingIds(), heartbeat_s=3600
    )
    return store, runtime


# ---------------------------------------------------------------------------
# Confirm
# ---------------------------------------------------------------------------


def confirm() -> ConfirmScreen:
    return ConfirmScreen("Stop worker w-1?", f"objective: {MARKUP}", "Stop")


@pytest.mark.parametrize(("keys", "expected"), [("y", True), ("n", False), ("escape", False)])
async def test_confirm_keys(keys: str, expected: bool) -> None:
    app = Host(confirm)
    async with app.run_test() as pilot:
        await pilot.pause()
        await pilot.press(keys)
        await pilot.pause()
    assert app.results == [expected]


async def test_confirm_is_safe_by_default() -> None:
    app = Host(confirm)
    async with app.run_test() as pilot:
        await pilot.pause()
        assert app.focused is not None and app.focused.id == "confirm-no"
        text = screen_text(app)
        # The body is literal (and wraps).
        assert "[@click=app.quit]x[/] [b]bold[/b]" in text
        assert "[link=https://example.com]l[/link]" in text
        assert "␛[31mred␇" in text
        await pilot.press("enter")
        await pilot.pause()
    assert app.results == [False]


async def test_confirm_enter_on_yes() -> None:
    app = Host(confirm)
    async with app.run_test() as pilot:
        await pilot.pause()
        await pilot.press("left")
        assert app.focused is not None and app.focused.id == "confirm-yes"
        await pilot.press("enter")
        await pilot.pause()
    assert app.results == [True]


# ---------------------------------------------------------------------------
# Create worker
# ---------------------------------------------------------------------------


def test_parse_capabilities_and_refs() -> None:
    assert parse_capabilities("shell, web: read docs ,") == [
        Capability(name="shell"),
        Capability(name="web", reason="read docs"),
    ]
    assert parse_refs("src=/a, data = s3://b", "workspace_refs", "workspace ref") == [
        NamedRef(name="src", reference="/a"),
        NamedRef(name="data", reference="s3://b"),
    ]
    with pytest.raises(FormError, match="'nope' has no '='"):
        parse_refs("src=/a, nope", "mount_refs", "mount ref")
    with pytest.raises(FormError, match="no name"):
        parse_capabilities(": why")


def submitting(
    create: Callable[[WorkerSpec], Awaitable[str | None]],
) -> Callable[[WorkerSpec], Awaitable[str | Refusal | None]]:
    """`submit` as the console wires it: the engine's verdict first, then the create."""

    async def submit(spec: WorkerSpec) -> str | Refusal | None:
        refusal = worker_request_refusal(spec)
        if refusal is not None:
            return refusal
        return await create(spec)

    return submit


def creator(seen: list[WorkerSpec], problem: str | None = None) -> Callable[[], Screen[Any]]:
    async def create(spec: WorkerSpec) -> str | None:
        seen.append(spec)
        return problem

    return lambda: CreateWorkerScreen(["default", "coder"], submitting(create))


async def choose(pilot: Pilot[Any], select_id: str, value: str) -> None:
    select = pilot.app.screen.query_one(select_id, Select)
    select.value = value
    await pilot.pause()


async def test_create_blank_objective_is_refused_inline() -> None:
    seen: list[WorkerSpec] = []
    app = Host(creator(seen))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await choose(pilot, "#cw-intent", "task")
        screen = app.screen
        assert screen.query_one("#cw-row-objective").display
        assert not screen.query_one("#cw-row-purpose").display
        await pilot.press("ctrl+s")
        await pilot.pause()
        error = screen.query_one("#cw-error", Static)
        assert error.display
        assert "task objective must not be empty" in str(error.visual)
        assert app.focused is screen.query_one("#cw-objective")
        assert app.focused.has_class("-invalid")
        # A bad ref names the item; still nothing is returned.
        await pilot.press(*"ship it")
        screen.query_one("#cw-workspace_refs", Input).value = "src=/a, broken"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "workspace ref 'broken' has no '='" in str(error.visual)
        assert app.focused is screen.query_one("#cw-workspace_refs")
        assert app.results == []
        assert seen == []
        await pilot.press("escape")
        await pilot.pause()
    assert app.results == [None]


async def test_create_shows_validator_error_then_returns_spec() -> None:
    seen: list[WorkerSpec] = []
    problems = iter(["unknown profile 'coder'", None])

    async def create(spec: WorkerSpec) -> str | None:
        seen.append(spec)
        return next(problems)

    app = Host(lambda: CreateWorkerScreen(["coder"], submitting(create)))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.screen
        await choose(pilot, "#cw-intent", "role")
        await choose(pilot, "#cw-profile", "coder")
        values = {
            "role": "reviewer",
            "purpose": "review [b]diffs[/b]",
            "capabilities": "git, web: read docs",
            "config_bundle": "bundle-7",
            "workspace_refs": "src=/srv/src",
            "mount_refs": "cache=/var/cache",
        }
        for field, value in values.items():
            screen.query_one(f"#cw-{field}", Input).value = value
        screen.query_one("#cw-mount_refs", Input).focus()
        await pilot.press("enter")  # enter in the last field submits
        await pilot.pause()
        error = screen.query_one("#cw-error", Static)
        assert "unknown profile 'coder'" in str(error.visual)
        assert app.results == []
        await pilot.click("#cw-create")
        await pilot.pause()
    expected = WorkerSpec(
        intent=RoleIntent(role="reviewer", purpose="review [b]diffs[/b]"),
        profile="coder",
        config_bundle="bundle-7",
        capabilities=[Capability(name="git"), Capability(name="web", reason="read docs")],
        workspace_refs=[NamedRef(name="src", reference="/srv/src")],
        mount_refs=[NamedRef(name="cache", reference="/var/cache")],
    )
    assert app.results == [expected]
    assert seen == [expected, expected]


async def test_create_task_by_typing() -> None:
    seen: list[WorkerSpec] = []
    app = Host(creator(seen))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await choose(pilot, "#cw-intent", "task")
        app.screen.query_one("#cw-objective").focus()
        await pilot.press(*"fix it", "enter")  # enter moves on to the next field
        assert app.focused is not None and app.focused.id == "cw-profile"
        await pilot.press("ctrl+s")
        await pilot.pause()
    assert app.results == [WorkerSpec(intent=TaskIntent(objective="fix it"))]


# The form's fields as the engine limits them: (intent, form field, over-limit text, what the
# refusal names). Each value is typed into the form, so the form's parsing is exercised too.
_X = "x"
OVER_LIMIT_FIELDS = [
    ("task", "objective", _X * (REQUEST_LIMITS.objective_bytes + 1), "task objective is 16.0 KiB"),
    ("assistant", "purpose", _X * (REQUEST_LIMITS.purpose_bytes + 1), "purpose is 4.0 KiB"),
    ("role", "role", _X * (REQUEST_LIMITS.name_bytes + 1), "role name is 129 bytes"),
    ("role", "purpose", _X * (REQUEST_LIMITS.purpose_bytes + 1), "purpose is 4.0 KiB"),
    (
        "assistant",
        "config_bundle",
        _X * (REQUEST_LIMITS.config_bundle_bytes + 1),
        "config bundle id is 257 bytes",
    ),
    (
        "assistant",
        "capabilities",
        "git, " + _X * (REQUEST_LIMITS.name_bytes + 1),
        "capability 2 name is 129 bytes",
    ),
    (
        "assistant",
        "capabilities",
        "web: " + _X * (REQUEST_LIMITS.reason_bytes + 1),
        "capability 1 reason is 513 bytes",
    ),
    (
        "assistant",
        "capabilities",
        ", ".join(f"c{i}" for i in range(REQUEST_LIMITS.capabilities + 1)),
        "33 capabilities requested, over the limit of 32",
    ),
    (
        "assistant",
        "workspace_refs",
        _X * (REQUEST_LIMITS.name_bytes + 1) + "=/src",
        "workspace ref 1 name is 129 bytes",
    ),
    (
        "assistant",
        "workspace_refs",
        "src=" + _X * (REQUEST_LIMITS.reference_bytes + 1),
        "workspace ref 1 reference is 2.0 KiB",
    ),
    (
        "assistant",
        "mount_refs",
        ", ".join(f"m{i}=/m" for i in range(REQUEST_LIMITS.mount_refs + 1)),
        "33 mount refs requested, over the limit of 32",
    ),
    (
        "assistant",
        "mount_refs",
        "cache=" + _X * (REQUEST_LIMITS.reference_bytes + 1),
        "mount ref 1 reference is 2.0 KiB",
    ),
]


@pytest.mark.parametrize(
    ("intent", "field", "value", "named"),
    OVER_LIMIT_FIELDS,
    ids=[
        f"{intent}-{named.split(' is ')[0].split(' requested')[0]}"
        for intent, _, _, named in OVER_LIMIT_FIELDS
    ],
)
async def test_create_refuses_every_over_limit_field_inline(
    intent: str, field: str, value: str, named: str
) -> None:
    """Issue 7 item 8: the engine's refusal points at the field, names it, and keeps the form."""
    created: list[WorkerSpec] = []

    async def create(spec: WorkerSpec) -> str | None:
        created.append(spec)
        return None

    # The real engine check, as the console wires it.
    app = Host(lambda: CreateWorkerScreen(["default"], submitting(create)))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await choose(pilot, "#cw-intent", intent)
        if intent == "task" and field != "objective":
            app.screen.query_one("#cw-objective", Input).value = "ship it"
        if intent == "role" and field != "role":
            app.screen.query_one("#cw-role", Input).value = "reviewer"
        screen = app.screen
        assert isinstance(screen, CreateWorkerScreen)
        target = screen.query_one(f"#cw-{field}", Input)
        target.value = value
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert screen.error is not None and screen.error.startswith(f"✗ {named}")
        assert "over the limit" in screen.error
        assert app.focused is target and target.has_class("-invalid")
        assert target.value == value  # kept as typed
        assert created == [] and app.results == []


async def test_create_shows_the_create_refusal_inline_and_closes_on_success() -> None:
    """Issue 7 item 8: the form creates; a failure stays inline with the form as typed."""
    answers = iter(["runtime local is stopped; its data stays readable but it accepts no changes"])
    created: list[WorkerSpec] = []

    async def create(spec: WorkerSpec) -> str | None:
        created.append(spec)
        return next(answers, None)

    app = Host(lambda: CreateWorkerScreen(["default"], submitting(create)))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await choose(pilot, "#cw-intent", "task")
        screen = app.screen
        assert isinstance(screen, CreateWorkerScreen)
        screen.query_one("#cw-objective", Input).value = "triage CI"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: screen.error is not None)
        assert screen.error == (
            "✗ runtime local is stopped; its data stays readable but it accepts no changes"
        )
        assert app.results == [] and app.screen is screen and not screen.creating
        assert screen.query_one("#cw-objective", Input).value == "triage CI"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.results != [])
    spec = WorkerSpec(intent=TaskIntent(objective="triage CI"))
    assert created == [spec, spec]
    assert app.results == [spec]


# ---------------------------------------------------------------------------
# Send input
# ---------------------------------------------------------------------------


async def test_send_input_refuses_blank_then_sends() -> None:
    app = Host(lambda: SendInputScreen("local/w-1 [b]x[/b]"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert app.focused is screen.query_one("#si-content", TextArea)
        await pilot.press("space", "enter", "ctrl+s")
        await pilot.pause()
        assert screen.query_one("#si-error").display
        assert app.results == []
        await pilot.press(*"hello", "enter", *"there")
        await choose(pilot, "#si-role", "system")
        await pilot.press("ctrl+s")
        await pilot.pause()
    assert app.results == [("system", " \nhello\nthere")]


async def test_send_input_escape_cancels() -> None:
    app = Host(lambda: SendInputScreen("local/w-1"))
    async with app.run_test() as pilot:
        await pilot.pause()
        await pilot.press(*"draft", "escape")
        await pilot.pause()
    assert app.results == [None]


async def test_send_input_over_the_limit_is_refused_inline_and_kept() -> None:
    """Issue 7 item 8: over the runtime's limit, the dialog says so inline and keeps the text."""
    sent: list[tuple[str, str]] = []

    async def send(role: str, content: str) -> str | None:
        sent.append((role, content))
        return None

    app = Host(lambda: SendInputScreen("local/w-1", Limits(max_input_bytes=8), send))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, SendInputScreen)
        await pilot.press(*"nine char")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert screen.error is not None
        assert "input is 9 bytes, over the limit of 8 bytes; send it in parts" in screen.error
        assert screen.content == "nine char"
        assert sent == [] and app.results == []
        await pilot.press("backspace")  # editing clears the refusal
        assert screen.error is None
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.results != [])
    assert sent == [("user", "nine cha")]
    assert app.results == [("user", "nine cha")]


async def test_send_input_shows_the_send_refusal_inline_and_waits_while_in_flight() -> None:
    """Issue 7 item 8: the dialog sends; a failure stays inline; keys wait while in flight."""
    release = asyncio.Event()
    answers = iter(["worker w-1 is [b]stopped[/b] and takes no more input", None])
    calls: list[tuple[str, str]] = []

    async def send(role: str, content: str) -> str | None:
        calls.append((role, content))
        await release.wait()
        return next(answers)

    app = Host(lambda: SendInputScreen("local/w-1", Limits(), send))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, SendInputScreen)
        await pilot.press(*"hello")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: len(calls) == 1)
        # In flight: a second ctrl+s sends nothing more, escape does not leave,
        # and the text cannot change under the send.
        assert screen.sending
        assert screen.query_one("#si-send", Button).disabled
        await pilot.press("ctrl+s", "escape", "x")
        await pilot.pause()
        assert len(calls) == 1 and app.results == [] and app.screen is screen
        assert screen.content == "hello"
        release.set()
        await wait_for(pilot, lambda: screen.error is not None)
        # Shown literally (no markup), the text kept, the dialog usable again.
        assert screen.error == "✗ worker w-1 is [b]stopped[/b] and takes no more input"
        assert screen.content == "hello" and not screen.sending
        assert app.results == []
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.results != [])
    assert calls == [("user", "hello"), ("user", "hello")]
    assert app.results == [("user", "hello")]


async def test_send_input_unwraps_a_large_paste_before_it_lands() -> None:
    """Issue 7 item 8: a paste over 64 KiB turns soft wrap off first (wrap costs seconds)."""
    app = Host(lambda: SendInputScreen("local/w-1"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        area = app.screen.query_one("#si-content", InputArea)
        assert area.soft_wrap
        seen: list[bool] = []
        # Record the wrap the text is inserted with: the area's own paste handler
        # runs after InputArea.on_paste, so wrap must already be off by then.
        original = area._replace_via_keyboard

        def replace(*args: Any, **kwargs: Any) -> Any:
            seen.append(area.soft_wrap)
            return original(*args, **kwargs)

        area._replace_via_keyboard = replace  # type: ignore[method-assign]
        prose = "lorem ipsum dolor " * (UNWRAP_ABOVE_CHARS // 18 + 1)
        app.post_message(events.Paste(prose))
        await wait_for(pilot, lambda: len(area.text) == len(prose))
        assert seen == [False]
        assert not area.soft_wrap and area.border_subtitle == UNWRAPPED_NOTE
        # Small again: wrapped again.
        area.text = "short"
        await pilot.pause()
        assert area.soft_wrap and area.border_subtitle == ""


# ---------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------


def test_export_path_rules(tmp_path: Path) -> None:
    assert with_format(str(tmp_path / "e.jsonl"), "csv") == str(tmp_path / "e.csv")
    assert with_format("notes.txt", "csv") == "notes.txt"
    assert check_export_path(str(tmp_path / "e.csv")) == tmp_path / "e.csv"
    assert "does not exist" in str(check_export_path(str(tmp_path / "missing" / "e.csv")))
    assert "is a folder" in str(check_export_path(str(tmp_path)))
    assert "give a file path" in str(check_export_path("  "))


async def test_export_refuses_missing_folder_then_returns(tmp_path: Path) -> None:
    app = Host(lambda: ExportScreen(tmp_path / "nowhere" / "events.jsonl", "kind:run.* [b]"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert "kind:run.* [b]" in screen_text(app)
        await pilot.press("enter")
        await pilot.pause()
        error = screen.query_one("#ex-error", Static)
        assert error.display and "does not exist" in str(error.visual)
        assert app.results == []
        path_input = screen.query_one("#ex-path", Input)
        path_input.value = str(tmp_path / "events.jsonl")
        await choose(pilot, "#ex-format", "csv")
        assert path_input.value == str(tmp_path / "events.csv")
        path_input.focus()
        await pilot.press("enter")
        await pilot.pause()
    assert app.results == [(tmp_path / "events.csv", "csv")]


async def test_export_escape_cancels(tmp_path: Path) -> None:
    app = Host(lambda: ExportScreen(tmp_path / "events.csv", ""))
    async with app.run_test() as pilot:
        await pilot.pause()
        assert app.screen.query_one("#ex-format", Select).value == "csv"
        await pilot.press("escape")
        await pilot.pause()
    assert app.results == [None]


# ---------------------------------------------------------------------------
# Help
# ---------------------------------------------------------------------------


async def test_help_opens_and_closes() -> None:
    app = Host(HelpScreen)
    async with app.run_test(size=(80, 24)) as pilot:
        for key in ["escape", "q", "question_mark", "f1"]:
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("j", "G", "g")
            await pilot.press(key)
            await pilot.pause()
            assert type(app.screen) is not HelpScreen, key
            app.push_screen(HelpScreen(), app.results.append)
    assert app.results == [None] * 4


def test_help_lists_every_key() -> None:
    from tui.screens.help import help_text

    text = help_text()
    for key in ["`n`", "`i`", "`s`", "`c`", "`x`", "`/`", "`f`", "`p`", "`tab`", "`shift+tab`",
                "`j`", "`k`", "`g`", "`G`", "`enter`", "`esc`", "`d`", "`y`", "OSC 52", "`E`",
                "`?`", "`F1`", "`ctrl+p`", "`q`", "kind:run.*", "worker:w-3", "runtime:ci",
                "run:ID", "level:error", "after:-10m", "before:", '"quoted phrase"', "-term",
                "at least", "`worker:3` means `w-3`"]:  # fmt: skip
        assert key in text, key


# ---------------------------------------------------------------------------
# Diagnostics
# ---------------------------------------------------------------------------


async def test_diagnostics_from_a_real_store(tmp_path: Path) -> None:
    store, runtime = await hosted(tmp_path / "d.db")
    try:
        await runtime.create_worker(WorkerSpec(intent=TaskIntent(objective="x")))
        app = Host(lambda: DiagnosticsScreen("local", runtime.diagnostics))
        async with app.run_test(size=(100, 24)) as pilot:
            screen = app.screen
            assert isinstance(screen, DiagnosticsScreen)
            await wait_for(pilot, lambda: screen.loaded)
            table = screen.query_one(DataTable)
            assert table.row_count == 2
            text = screen_text(app)
            assert "INFO" in text
            assert "worker.tools_less" in text and "runtime.local_default_resources" in text
            assert not screen.query_one("#diag-empty").display
            # r reloads: a second worker adds two more rows.
            await runtime.create_worker(WorkerSpec())
            await pilot.press("r")
            await wait_for(pilot, lambda: table.row_count == 4)
            await pilot.press("escape")
            await pilot.pause()
        assert app.results == [None]
    finally:
        await runtime.close()
        await store.close()


async def test_diagnostics_empty_and_failing_loads() -> None:
    async def nothing() -> list[Diagnostic]:
        return []

    app = Host(lambda: DiagnosticsScreen("ci", nothing))
    async with app.run_test() as pilot:
        screen = app.screen
        assert isinstance(screen, DiagnosticsScreen)
        await wait_for(pilot, lambda: screen.loaded)
        assert "no diagnostics" in screen_text(app)

    async def broken() -> list[Diagnostic]:
        raise RuntimeError("database is locked")

    app = Host(lambda: DiagnosticsScreen("ci", broken))
    async with app.run_test() as pilot:
        await pilot.pause(0.1)
        assert "could not load diagnostics: database is locked" in screen_text(app)


# ---------------------------------------------------------------------------
# Worker view
# ---------------------------------------------------------------------------


def entry_texts(screen: WorkerScreen) -> list[str]:
    return [entry.content for entry in screen.transcript.entries]


async def test_worker_view_reads_the_store_and_follows_live(tmp_path: Path) -> None:
    store, runtime = await hosted(tmp_path / "w.db")
    try:
        worker = await runtime.create_worker(
            WorkerSpec(
                intent=TaskIntent(objective="watch the [b]logs[/b]"),
                capabilities=[Capability(name="shell", reason="run tests")],
                workspace_refs=[NamedRef(name="src", reference="/srv/src")],
            )
        )
        ref = worker.ref
        await runtime.send_input(ref, "first question")
        await run_settled(runtime, ref)
        # A console that only watches (--read-only): the panel says so first.
        watching = HostedBackend(
            store=store, runtime_id="local", observer_reason="opened with --read-only"
        )
        app = LiveHost(watching, lambda backend: WorkerScreen(backend, ref))
        async with app.run_test(size=(100, 40)) as pilot:
            screen = app.screen
            assert isinstance(screen, WorkerScreen)
            assert screen.ref == ref
            await wait_for(pilot, lambda: screen.loaded)
            await pilot.pause()
            text = screen_text(app)
            for shown in ["w-1", "● running", "objective watch the [b]logs[/b]",
                          "shell: run tests", "src=/srv/src", "read-only: opened with --read-only",
                          "✓ completed", "first question", "echo: first question"]:  # fmt: skip
                assert shown in text, shown
            assert screen.query_one(DataTable).row_count == 1

            # Live: input sent by the engine appears without any key press,
            # and worker-provided markup stays literal.
            await runtime.send_input(ref, MARKUP)
            await wait_for(pilot, lambda: f"echo: {MARKUP}" in entry_texts(screen))
            await wait_for(pilot, lambda: screen.query_one(DataTable).row_count == 2)
            await wait_for(pilot, lambda: "transcript 4" in screen_text(app))
            await pilot.pause(0.2)
            lines = screen_text(app).splitlines()
            literal = "[@click=app.quit]x[/] [b]bold[/b] [link=https://example.com]l[/link]"
            hits = [(y, line.index(literal)) for y, line in enumerate(lines) if literal in line]
            assert len(hits) >= 2, lines
            assert "␛[31mred␇" in "\n".join(lines)
            for y, x in hits:
                for dx in range(len(literal)):
                    style = app.screen.get_style_at(x + dx, y)
                    assert not style.meta.get("@click") and not style.link
            # Clicking where the "link" would be does nothing.
            y, x = hits[-1]
            await pilot.click(offset=(x + len("[@click=app.quit]"), y))
            await pilot.pause()
            assert app.is_running and isinstance(app.screen, WorkerScreen)

            # Stopping the worker shows up in the detail panel.
            await runtime.stop_worker(ref)
            await wait_for(pilot, lambda: "■ stopped" in screen_text(app))
            await pilot.press("escape")
            await pilot.pause()
        assert app.results == [None]
    finally:
        await runtime.close()
        await store.close()


async def test_worker_view_pages_back(tmp_path: Path) -> None:
    store, runtime = await hosted(tmp_path / "p.db")
    try:
        worker = await runtime.create_worker(WorkerSpec())
        for n in range(260):  # 520 entries: one page and a bit
            await runtime.send_input(worker.ref, f"message {n}")
            if n % 50 == 49:
                await run_settled(runtime, worker.ref)
        await run_settled(runtime, worker.ref)
        app = LiveHost(HostedBackend(store=store, runtime_id="x"), lambda b: WorkerScreen(b, worker.ref))
        async with app.run_test(size=(80, 24)) as pilot:
            screen = app.screen
            assert isinstance(screen, WorkerScreen)
            view = screen.transcript
            await wait_for(pilot, lambda: screen.loaded and view.loaded)
            assert len(view.entries) == 200
            assert view.entries[0].sequence == 321 and view.entries[-1].sequence == 520
            assert view.earlier == 320
            await pilot.press("left_square_bracket")
            await wait_for(pilot, lambda: view.earlier == 120)
            view.scroll_to(y=0, animate=False, immediate=True)  # at the top, one more page
            await wait_for(pilot, lambda: view.earlier == 0)
            await pilot.pause()
            assert len(view.entries) == 520
            assert entry_texts(screen)[0] == "message 0"
            await pilot.pause(0.1)
            assert view.scroll_y > 0  # still where the operator was, the older entries above
            assert "earlier entries" not in screen_text(app)
    finally:
        await runtime.close()
        await store.close()


async def test_worker_view_of_a_missing_worker_says_so(tmp_path: Path) -> None:
    store, runtime = await hosted(tmp_path / "m.db")
    try:
        ref = WorkerRef(runtime_id="local", worker_id="w-9")
        app = LiveHost(HostedBackend(store=store, runtime_id="local"), lambda b: WorkerScreen(b, ref))
        async with app.run_test() as pilot:
            screen = app.screen
            assert isinstance(screen, WorkerScreen)
            await wait_for(pilot, lambda: screen.loaded)
            await pilot.pause()
            assert "worker local/w-9 is not in the store" in screen_text(app)
    finally:
        await runtime.close()
        await store.close()
