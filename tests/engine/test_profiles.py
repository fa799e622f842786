"""Profile file parsing, resolution and live reload."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from engine.profiles import (
    BUILTIN_DEMO,
    BUILTIN_ECHO,
    BuiltinProfile,
    CommandProfile,
    ConfigError,
    ProfileSet,
    ProfileWatcher,
    UnknownProfile,
    load_profiles,
    parse_profiles,
)

FULL = """\
default_profile = "coder"

[profiles.coder]
description = "the coding agent"
command = ["my-agent", "--quiet"]
timeout = 120
cwd = "work"
env = { API_MODE = "batch" }
input = "argument"
max_output_bytes = 2048
grace = 1.5

[profiles.chat]
command = "chat-agent --model 'big one'"
mode = "session"
turn_end = "END"
restart_max = 2
restart_backoff = 0.1
timeout = 0

[profiles.busy]
builtin = "demo"
demo = { pace = 0.2, fail_rate = 0.1 }
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def error_of(text: str, tmp_path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_profiles(write(tmp_path / "agentdeck.toml", text))
    return caught.value


def test_full_file(tmp_path: Path) -> None:
    profiles = load_profiles(write(tmp_path / "agentdeck.toml", FULL))
    coder = profiles.resolve("coder")
    assert isinstance(coder, CommandProfile)
    assert coder.command == ["my-agent", "--quiet"]
    assert coder.timeout == 120
    assert coder.cwd == str(tmp_path / "work")  # relative to the file's folder
    assert coder.env == {"API_MODE": "batch"}
    assert coder.input == "argument" and coder.mode == "per-input"
    assert coder.max_output_bytes == 2048 and coder.grace == 1.5
    assert coder.description == "the coding agent"

    chat = profiles.resolve("chat")
    assert isinstance(chat, CommandProfile)
    assert chat.command == ["chat-agent", "--model", "big one"]
    assert chat.mode == "session" and chat.turn_end == "END"
    assert chat.timeout is None  # 0 means no limit
    assert chat.restart_max == 2 and chat.restart_backoff == 0.1

    busy = profiles.resolve("busy")
    assert isinstance(busy, BuiltinProfile)
    assert busy.builtin == "demo" and busy.demo == {"pace": 0.2, "fail_rate": 0.1}

    assert profiles.default is coder
    assert profiles.resolve(None) is coder
    assert profiles.resolve("default") is coder
    assert profiles.names() == ["default", "builtin:echo", "builtin:demo", "busy", "chat", "coder"]


def test_defaults_of_a_command_profile() -> None:
    profile = parse_profiles('[profiles.a]\ncommand = ["x"]\n').resolve("a")
    assert isinstance(profile, CommandProfile)
    assert profile.timeout == 300
    assert profile.input == "stdin" and profile.mode == "per-input"
    assert profile.turn_end == "<<<end>>>"
    assert profile.max_output_bytes == 1024 * 1024
    assert profile.grace == 3 and profile.restart_max == 5 and profile.restart_backoff == 0.5
    assert profile.restart_backoff_max == 30 and profile.cwd is None and profile.env == {}


def test_builtins_and_the_default_without_a_file(tmp_path: Path) -> None:
    profiles = load_profiles(tmp_path / "missing.toml")
    assert profiles.profiles == {}
    assert profiles.resolve(None) is BUILTIN_ECHO
    assert profiles.resolve("default") is BUILTIN_ECHO
    assert profiles.resolve("builtin:echo") is BUILTIN_ECHO
    assert profiles.resolve("builtin:demo") is BUILTIN_DEMO


def test_default_profile_may_be_a_builtin() -> None:
    assert parse_profiles('default_profile = "builtin:demo"\n').default is BUILTIN_DEMO


def test_unknown_profile_names_the_choices() -> None:
    profiles = parse_profiles('[profiles.coder]\ncommand = "x"\n')
    with pytest.raises(UnknownProfile) as caught:
        profiles.resolve("codr")
    assert isinstance(caught.value, KeyError)
    assert str(caught.value) == (
        "unknown profile 'codr'; choose one of: default, builtin:echo, builtin:demo, coder"
    )
    with pytest.raises(UnknownProfile):
        profiles.resolve("builtin:nope")


def test_profiles_are_frozen() -> None:
    profile = parse_profiles('[profiles.a]\ncommand = "x"\n').resolve("a")
    with pytest.raises(ValueError, match="frozen"):
        profile.name = "b"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            '[profiles.a]\ncommand = "x"\ntimout = 5\n',
            3,
            "profile 'a': unknown key 'timout' (did you mean 'timeout'?)",
        ),
        ('\n\n[profiles.a]\ncommand = "x"\nmode = "sessions"\n', 5, "profile 'a': mode: Input"),
        ("[profiles.a]\ncommand = []\n", 2, "profile 'a': command: List should have at least 1"),
        ('[profiles.a]\ncommand = "x"\ntimeout = -1\n', 3, "timeout: Input should be greater"),
        ('[profiles.a]\ncommand = "x"\n\n[profiles.a.env]\nX = 1\n', 5, "env.X: Input should be"),
        ('[profiles.a]\ndescription = "nothing to run"\n', 1, "needs one of 'command'"),
        ('[profiles.a]\ncommand = "x"\nbuiltin = "echo"\n', 1, "has both 'command'"),
        ('[profiles.a]\nbuiltin = "nope"\n', 2, "builtin: Input should be 'echo' or 'demo'"),
        ('[profiles.a]\nbuiltin = "echo"\ndemo = {}\n', 3, "'demo' settings need"),
        ('[profiles.a]\ncommand = "x"\nname = "b"\n', 3, "unknown key 'name'"),
        ('[profiles."a b"]\ncommand = "x"\n', 1, "a profile name is letters"),
        ('[profiles.default]\ncommand = "x"\n', 1, "not 'default'"),
        ('default_profile = "zz"\n[profiles.a]\ncommand = "x"\n', 1, "default_profile 'zz'"),
        ('[profile.a]\ncommand = "x"\n', 1, "unknown key 'profile' (did you mean 'profiles'?)"),
        ('[profiles.a]\ncommand = "x\n', 2, "not valid TOML"),
        ('[profiles.a]\ncommand = "unclosed \'quote"\n', 2, "cannot split the command"),
        ('[profiles.a]\ncommand = "x"\nturn_end = "a\\nb"\n', 3, "turn_end must be a single"),
    ],
)
def test_errors_name_the_file_and_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    error = error_of(text, tmp_path)
    assert error.line == line
    assert error.path == tmp_path / "agentdeck.toml"
    assert message in error.message
    assert str(error).startswith(f"{tmp_path / 'agentdeck.toml'}:{line}: ")
    assert "\n" not in str(error)


def test_bad_toml_reports_the_line_of_the_mistake(tmp_path: Path) -> None:
    error = error_of('[profiles.a]\ncommand = "x"\ntimeout = = 3\n', tmp_path)
    assert error.line == 3
    assert str(error) == f"{tmp_path / 'agentdeck.toml'}:3: not valid TOML: Invalid value"


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "agentdeck.toml"
    path.write_bytes(b'[profiles.a]\ncommand = "\xff"\n')
    with pytest.raises(ConfigError, match=r":2: not UTF-8"):
        load_profiles(path)


def test_a_folder_is_not_a_profile_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a folder"):
        load_profiles(tmp_path)


# -- live reload -----------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.changes: list[ProfileSet] = []
        self.errors: list[ConfigError] = []

    def on_change(self, profiles: ProfileSet) -> None:
        self.changes.append(profiles)

    async def on_error(self, error: ConfigError) -> None:  # async callbacks work too
        self.errors.append(error)


async def eventually(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_watcher_reloads_and_keeps_the_last_good_set(tmp_path: Path) -> None:
    path = write(tmp_path / "agentdeck.toml", '[profiles.a]\ncommand = "x"\n')
    seen = Recorder()
    watcher = ProfileWatcher(path, seen.on_change, seen.on_error, poll_interval=0.2)
    async with watcher:
        assert watcher.profiles.names()[-1] == "a"
        await asyncio.sleep(0.1)

        write(path, '[profiles.a]\ncommand = "x"\n[profiles.b]\nbuiltin = "demo"\n')
        await eventually(lambda: len(seen.changes) == 1)
        assert seen.changes[0].resolve("b").name == "b"
        assert watcher.profiles is seen.changes[0]

        write(path, '[profiles.a]\ncommand = "x"\n\n[profiles.b]\nbuiltn = "demo"\n')
        await eventually(lambda: len(seen.errors) == 1)
        assert seen.errors[0].line == 5
        assert "builtn" in str(seen.errors[0])
        assert watcher.profiles is seen.changes[0]  # the last good set stays

        write(path, 'default_profile = "c"\n[profiles.c]\ncommand = "y"\n')
        await eventually(lambda: len(seen.changes) == 2)
        assert watcher.profiles.default.name == "c"

        path.unlink()  # no file: only the builtins
        await eventually(lambda: len(seen.changes) == 3)
        assert watcher.profiles.profiles == {}
        assert watcher.profiles.default is BUILTIN_ECHO
    assert len(seen.errors) == 1


async def test_watcher_sees_a_file_saved_by_rename(tmp_path: Path) -> None:
    path = tmp_path / "agentdeck.toml"
    seen = Recorder()
    async with ProfileWatcher(path, seen.on_change, seen.on_error) as watcher:
        assert watcher.profiles.profiles == {}  # missing file: builtins only
        await asyncio.sleep(0.1)
        staged = write(tmp_path / ".agentdeck.toml.swp", '[profiles.z]\ncommand = "z"\n')
        staged.replace(path)
        await eventually(lambda: len(seen.changes) == 1)
        assert seen.changes[0].names()[-1] == "z"
    assert not seen.errors


async def test_watcher_with_a_bad_file_at_start_reports_it_and_keeps_builtins(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "agentdeck.toml", "[profiles.a]\n")
    seen = Recorder()
    watcher = ProfileWatcher(path, seen.on_change, seen.on_error)
    profiles = await watcher.start()
    try:
        assert profiles.profiles == {} and profiles.default is BUILTIN_ECHO
        assert len(seen.errors) == 1 and seen.errors[0].line == 1
    finally:
        await watcher.stop()


async def test_watcher_stops_promptly_and_ignores_other_files(tmp_path: Path) -> None:
    path = write(tmp_path / "agentdeck.toml", '[profiles.a]\ncommand = "x"\n')
    seen = Recorder()
    watcher = ProfileWatcher(path, seen.on_change, seen.on_error)
    await watcher.start()
    await asyncio.sleep(0.1)
    write(tmp_path / "other.toml", "not = [valid")
    await asyncio.sleep(0.3)
    started = time.monotonic()
    await watcher.stop()
    assert time.monotonic() - started < 1.0
    assert not seen.changes and not seen.errors
    await watcher.stop()  # twice is fine
