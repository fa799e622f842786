"""Worker profiles: what a worker runs, read from a TOML file and reloaded live.

The file (``agentdeck.toml`` beside the database, or ``--config``)::

    default_profile = "coder"          # optional; otherwise builtin:echo

    [profiles.coder]                   # a command profile
    command = ["my-agent", "--quiet"]  # or one string, split like a shell would
    timeout = 120                      # seconds per run; 0 means no limit
    cwd = "work"                       # relative to the config file's folder
    env = { API_MODE = "batch" }       # added to the inherited environment
    input = "stdin"                    # or "argument": the input is the last argv item
    mode = "per-input"                 # or "session": one long-lived process per worker

    [profiles.busy]                    # a builtin with settings of its own
    builtin = "demo"
    demo = { pace = 0.2, fail_rate = 0.1 }

A missing file means only the builtins (``builtin:echo``, ``builtin:demo``).
Every mistake is a `ConfigError` naming the file and line.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import inspect
import logging
import os
import re
import shlex
import tomllib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

log = logging.getLogger(__name__)

MIB = 1024 * 1024
PROFILE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_TOP_LEVEL_KEYS = ("default_profile", "profiles")
# Derived from the table, never written in it.
_RESERVED_KEYS = ("name", "kind")


class ConfigError(Exception):
    """The profile file cannot be used; `str()` is one line: file, line, what is wrong."""

    def __init__(self, path: Path | str, line: int | None, message: str) -> None:
        self.path = Path(path)
        self.line = line
        self.message = " ".join(message.split())
        where = f"{self.path}:{line}" if line is not None else f"{self.path}"
        super().__init__(f"{where}: {self.message}")


class UnknownProfile(KeyError):
    """No profile of that name; the message lists the names that exist."""

    def __init__(self, name: str, choices: list[str]) -> None:
        super().__init__(name)
        self.name = name
        self.choices = choices

    def __str__(self) -> str:
        return f"unknown profile {self.name!r}; choose one of: {', '.join(self.choices)}"


class _ProfileModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BuiltinProfile(_ProfileModel):
    """A driver built into agentdeck (`echo` or `demo`), optionally with settings."""

    kind: Literal["builtin"] = "builtin"
    name: str
    description: str = ""
    builtin: Literal["echo", "demo"]
    # Interpreted by the demo driver (pace, fail rate, ...); only valid for `demo`.
    demo: dict[str, Any] = Field(default_factory=dict)


class CommandProfile(_ProfileModel):
    """A configured program: one process per input, or one session process per worker."""

    kind: Literal["command"] = "command"
    name: str
    description: str = ""
    command: list[str] = Field(min_length=1)
    timeout: float | None = Field(default=300.0, ge=0)
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    input: Literal["stdin", "argument"] = "stdin"
    mode: Literal["per-input", "session"] = "per-input"
    turn_end: str = Field(default="<<<end>>>", min_length=1)
    max_output_bytes: int = Field(default=MIB, gt=0)
    grace: float = Field(default=3.0, ge=0)
    restart_max: int = Field(default=5, ge=0)
    restart_backoff: float = Field(default=0.5, gt=0)
    restart_backoff_max: float = Field(default=30.0, gt=0)
    restart_reset_after: float = Field(default=10.0, ge=0)

    @field_validator("command", mode="before")
    @classmethod
    def _split_command_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return shlex.split(value)
            except ValueError as exc:
                raise ValueError(f"cannot split the command string: {exc}") from None
        return value

    @field_validator("command")
    @classmethod
    def _no_empty_argv(cls, value: list[str]) -> list[str]:
        if not value[0].strip():
            raise ValueError("the program name (first item) is empty")
        return value

    @field_validator("timeout")
    @classmethod
    def _zero_means_no_limit(cls, value: float | None) -> float | None:
        return None if value == 0 else value

    @field_validator("turn_end")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if "\n" in value or "\r" in value:
            raise ValueError("turn_end must be a single line")
        return value


Profile = Annotated[BuiltinProfile | CommandProfile, Field(discriminator="kind")]

BUILTIN_ECHO = BuiltinProfile(name="builtin:echo", builtin="echo")
BUILTIN_DEMO = BuiltinProfile(name="builtin:demo", builtin="demo")
BUILTINS: dict[str, BuiltinProfile] = {p.name: p for p in (BUILTIN_ECHO, BUILTIN_DEMO)}


@dataclass(frozen=True)
class ProfileSet:
    """The profiles a runtime can create workers with: the builtins plus the file's."""

    profiles: Mapping[str, BuiltinProfile | CommandProfile] = field(default_factory=dict)
    default_profile: str | None = None
    path: Path | None = None

    def names(self) -> list[str]:
        """Every name `resolve` accepts, builtins first."""
        return ["default", *BUILTINS, *sorted(self.profiles)]

    @property
    def default(self) -> BuiltinProfile | CommandProfile:
        """The profile a worker gets when it asks for none."""
        return self.resolve(self.default_profile) if self.default_profile else BUILTIN_ECHO

    def resolve(self, name: str | None) -> BuiltinProfile | CommandProfile:
        """`None`/"default", `builtin:NAME` or a named profile; else `UnknownProfile`."""
        if name is None or name == "default":
            return self.default
        if name in BUILTINS:
            return BUILTINS[name]
        found = self.profiles.get(name)
        if found is None:
            raise UnknownProfile(name, self.names())
        return found


def load_profiles(path: Path | str) -> ProfileSet:
    """Read the profile file; a missing file gives only the builtins."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return ProfileSet(path=path)
    except IsADirectoryError:
        raise ConfigError(path, None, "is a folder, not a TOML file") from None
    except OSError as exc:
        raise ConfigError(path, None, f"cannot read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(path, line, "not UTF-8 text (TOML files must be UTF-8)") from None
    return parse_profiles(text, path)


_TOML_POSITION_RE = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def parse_profiles(text: str, path: Path | str = "agentdeck.toml") -> ProfileSet:
    """Parse the text of a profile file; `path` names it in errors and anchors `cwd`."""
    path = Path(path)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message, line = str(exc), None
        position = _TOML_POSITION_RE.search(message)
        if position:
            line = int(position.group(1))
            message = message[: position.start()]
        elif message.endswith("(at end of document)"):
            line = max(1, len(text.splitlines()))
            message = message.removesuffix("(at end of document)").strip()
        raise ConfigError(path, line, f"not valid TOML: {message}") from None

    where = _Locator(text)
    for key in doc:
        if key not in _TOP_LEVEL_KEYS:
            raise ConfigError(
                path,
                where.top_key(key),
                f"unknown key {key!r}{_did_you_mean(key, _TOP_LEVEL_KEYS)}",
            )

    tables = doc.get("profiles", {})
    if not isinstance(tables, dict):
        raise ConfigError(path, where.top_key("profiles"), "'profiles' must be a table of tables")
    profiles: dict[str, BuiltinProfile | CommandProfile] = {}
    for name, table in tables.items():
        profiles[name] = _parse_profile(name, table, path, where)

    default = doc.get("default_profile")
    if default is not None:
        line = where.top_key("default_profile")
        if not isinstance(default, str):
            raise ConfigError(path, line, "default_profile must be a profile name (a string)")
        if default not in profiles and default not in BUILTINS:
            choices = ", ".join([*BUILTINS, *sorted(profiles)])
            raise ConfigError(
                path,
                line,
                f"default_profile {default!r} is not a profile; choose one of: {choices}",
            )
    return ProfileSet(profiles=profiles, default_profile=default, path=path)


def _parse_profile(
    name: str, table: Any, path: Path, where: _Locator
) -> BuiltinProfile | CommandProfile:
    header = where.table(name)
    label = f"profile {name!r}"
    if not PROFILE_NAME_RE.fullmatch(name) or name == "default":
        raise ConfigError(
            path,
            header,
            f"{label}: a profile name is letters, digits, '-' and '_' (at most 64), "
            "and not 'default'",
        )
    if not isinstance(table, dict):
        raise ConfigError(path, header, f"{label} must be a table ([profiles.{name}])")
    for key in _RESERVED_KEYS:
        if key in table:
            raise ConfigError(path, where.key(name, key), f"{label}: unknown key {key!r}")

    has_builtin, has_command = "builtin" in table, "command" in table
    if not has_builtin and not has_command:
        # Likely a typo of one of them: name the unknown key rather than the missing one.
        known = sorted(
            (set(CommandProfile.model_fields) | set(BuiltinProfile.model_fields))
            - set(_RESERVED_KEYS)
        )
        for key in table:
            if key not in known:
                raise ConfigError(
                    path,
                    where.key(name, key),
                    f"{label}: unknown key {key!r}{_did_you_mean(key, known)}",
                )
    if has_builtin == has_command:
        problem = "has both" if has_builtin else "needs one of"
        raise ConfigError(
            path, header, f"{label} {problem} 'command' (a program to run) and 'builtin'"
        )
    model: type[BuiltinProfile] | type[CommandProfile]
    model = BuiltinProfile if has_builtin else CommandProfile
    if has_builtin and "demo" in table and table.get("builtin") != "demo":
        raise ConfigError(
            path, where.key(name, "demo"), f"{label}: 'demo' settings need builtin = \"demo\""
        )
    values = dict(table)
    cwd = values.get("cwd")
    if isinstance(cwd, str) and cwd:
        expanded = Path(os.path.expandvars(cwd)).expanduser()
        values["cwd"] = str(expanded if expanded.is_absolute() else path.parent / expanded)
    try:
        return model.model_validate({**values, "name": name})
    except ValidationError as exc:
        raise _validation_error(exc, name, model, path, where) from None


def _validation_error(
    exc: ValidationError,
    name: str,
    model: type[BuiltinProfile] | type[CommandProfile],
    path: Path,
    where: _Locator,
) -> ConfigError:
    errors = exc.errors()
    first = errors[0]
    loc = [str(part) for part in first["loc"]]
    key = loc[0] if loc else ""
    allowed = [k for k in model.model_fields if k not in _RESERVED_KEYS]
    if first["type"] == "extra_forbidden":
        message = f"unknown key {key!r}{_did_you_mean(key, allowed)}"
    else:
        reason = str(first["msg"]).removeprefix("Value error, ")
        message = f"{'.'.join(loc)}: {reason}" if loc else reason
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    line = where.key(name, key, loc[1] if len(loc) > 1 else None) if key else where.table(name)
    return ConfigError(path, line, f"profile {name!r}: {message}")


def _did_you_mean(key: str, choices: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(key, choices, n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (known keys: {', '.join(choices)})"


class _Locator:
    """Finds the line of a table or key in the file text (tomllib reports no positions)."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    @staticmethod
    def _name(name: str) -> str:
        quoted = re.escape(name)
        return rf"(?:{quoted}|\"{quoted}\"|'{quoted}')"

    def _find(self, pattern: str, start: int = 0, stop: int | None = None) -> int | None:
        regex = re.compile(pattern)
        for index in range(start, len(self.lines) if stop is None else stop):
            if regex.match(self.lines[index]):
                return index + 1
        return None

    def top_key(self, key: str) -> int | None:
        first_table = self._find(r"\s*\[")
        stop = first_table - 1 if first_table else None
        return self._find(rf"\s*{self._name(key)}\s*[=.]", 0, stop) or self._find(
            rf"\s*\[\[?\s*{self._name(key)}\s*[.\]]"
        )

    def table(self, name: str) -> int | None:
        profile = rf"profiles\s*\.\s*{self._name(name)}"
        return (
            self._find(rf"\s*\[\s*{profile}\s*\]")
            or self._find(rf"\s*\[\s*{profile}\s*\.")
            or self._find(rf"\s*{profile}\s*[=.]")
            or self._find(rf"\s*{self._name(name)}\s*[=.]")
        )

    def key(self, name: str, key: str, sub_key: str | None = None) -> int | None:
        header = self.table(name)
        if header is not None:
            found = self._in_table(header, key)
            if found:
                return found
        sub_table = rf"\s*\[\s*profiles\s*\.\s*{self._name(name)}\s*\.\s*{self._name(key)}\s*\]"
        sub_header = self._find(sub_table)
        if sub_header is not None and sub_key is not None:
            return self._in_table(sub_header, sub_key) or sub_header
        return sub_header or header

    def _in_table(self, header: int, key: str) -> int | None:
        after = self._find(r"\s*\[", header)
        return self._find(rf"\s*{self._name(key)}\s*[=.]", header, after - 1 if after else None)


OnChange = Callable[[ProfileSet], Awaitable[None] | None]
OnError = Callable[[ConfigError], Awaitable[None] | None]


class ProfileWatcher:
    """Keeps a `ProfileSet` current with its file, reporting each change or mistake.

    Watches the file's folder (non-recursive, filtered to the file name) with
    watchfiles, so an editor that saves by renaming still counts, and also
    compares the file's stat now and then, which covers a change made before
    the watch began and file systems without notifications. A bad file is
    reported to `on_error` and the last good set is kept.
    """

    def __init__(
        self,
        path: Path | str,
        on_change: OnChange,
        on_error: OnError | None = None,
        *,
        step_ms: int = 50,
        poll_interval: float = 1.0,
        force_polling: bool | None = None,
    ) -> None:
        self.path = Path(path)
        self._on_change = on_change
        self._on_error = on_error
        self._step_ms = step_ms
        self._poll_interval = poll_interval
        self._force_polling = force_polling
        self._current = ProfileSet(path=self.path)
        self._signature: tuple[int, int, int] | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def profiles(self) -> ProfileSet:
        """The last good set (only the builtins until the file loads)."""
        return self._current

    async def start(self) -> ProfileSet:
        """Load the file and begin watching; a bad file goes to `on_error`, builtins are kept."""
        if self._task is not None:
            return self._current
        self._stop.clear()
        self._signature = self._stat()
        try:
            self._current = await asyncio.to_thread(load_profiles, self.path)
        except ConfigError as error:
            await self._report(self._on_error, error)
        self._task = asyncio.create_task(self._watch(), name=f"profile-watcher:{self.path}")
        return self._current

    async def stop(self) -> None:
        """Stop watching; returns once the watch task has ended."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stop.set()
        done, _ = await asyncio.wait({task}, timeout=1.0 + self._step_ms / 1000)
        if not done:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def __aenter__(self) -> ProfileWatcher:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def reload(self, *, force: bool = True) -> ProfileSet:
        """Re-read the file now (without `force`, only if its stat changed)."""
        signature = self._stat()
        if not force and signature == self._signature:
            return self._current
        self._signature = signature
        try:
            loaded = await asyncio.to_thread(load_profiles, self.path)
        except ConfigError as error:
            await self._report(self._on_error, error)
            return self._current
        if loaded != self._current:
            self._current = loaded
            await self._report(self._on_change, loaded)
        return self._current

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    async def _watch(self) -> None:
        from watchfiles import awatch  # imported here: only a watching process pays for it

        folder, name = self.path.parent, self.path.name

        def wanted(_change: object, changed: str) -> bool:
            return Path(changed).name == name

        while not self._stop.is_set():
            if not folder.is_dir():
                await self.reload(force=False)
                await self._sleep(self._poll_interval)
                continue
            try:
                async for changes in awatch(
                    folder,
                    watch_filter=wanted,
                    step=self._step_ms,
                    stop_event=self._stop,
                    rust_timeout=max(1, int(self._poll_interval * 1000)),
                    yield_on_timeout=True,
                    recursive=False,
                    force_polling=self._force_polling,
                ):
                    await self.reload(force=bool(changes))
                    if not folder.is_dir():
                        break
            except (OSError, RuntimeError) as exc:
                # The folder vanished or the notifier gave up: fall back to polling for a while.
                log.debug("watching %s failed: %s", folder, exc)
                await self.reload(force=False)
                await self._sleep(self._poll_interval)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stop.wait()

    @staticmethod
    async def _report(callback: Callable[[Any], Awaitable[None] | None] | None, value: Any) -> None:
        if callback is None:
            return
        try:
            result = callback(value)
            if inspect.isawaitable(result):
                await result
        except Exception:
            # A broken callback must not end the watch; the next change is still reported.
            # Debug level: a traceback must never reach an operator's terminal.
            log.debug("profile watcher callback failed", exc_info=True)
