"""Every way the store can refuse, each with a message an operator can act on.

`str(error)` is the one line the command line prints; the class is what code
matches on.
"""

from __future__ import annotations

import shlex
from pathlib import Path


class StoreError(Exception):
    """Base of all store errors."""


class UnusableDatabase(StoreError):
    """The file cannot be used as an agentdeck database; nothing was changed."""

    def __init__(self, path: Path | str, problem: str, advice: str) -> None:
        self.path = Path(path)
        super().__init__(f"{path}: {problem}; {advice}")


class MissingDatabase(UnusableDatabase):
    """Nothing to read yet: no file at the path, or a file agentdeck never set up.

    Raised only when opening to read (`events`, `verify`, the console's
    `--read-only`); a writer creates the database instead. The advice names the
    one command that creates it, which is right whichever of those was run.
    """

    def __init__(self, path: Path | str, why: str = "the file does not exist") -> None:
        super().__init__(
            path,
            f"no agentdeck database here yet ({why})",
            "check the path, or create one by starting the console once: "
            f"agentdeck --db {shlex.quote(str(path))}",
        )


class CannotOpenDatabase(UnusableDatabase):
    """SQLite could not open the file (or its -wal/-shm) at all."""

    def __init__(self, path: Path | str, detail: str) -> None:
        super().__init__(path, f"cannot be opened ({detail})", "check the path and its permissions")


class NotADatabase(UnusableDatabase):
    def __init__(self, path: Path | str) -> None:
        super().__init__(
            path, "not a SQLite database", "point --db at an agentdeck database or a new file name"
        )


class ForeignDatabase(UnusableDatabase):
    def __init__(self, path: Path | str) -> None:
        super().__init__(
            path,
            "a SQLite database that agentdeck did not create",
            "point --db at an agentdeck database or a new file name",
        )


class CorruptDatabase(UnusableDatabase):
    def __init__(self, path: Path | str, detail: str = "") -> None:
        extra = f" ({detail})" if detail else ""
        super().__init__(
            path,
            f"the database is damaged{extra}",
            "restore it from a backup or move it aside to start a new one",
        )


class NewerSchema(UnusableDatabase):
    def __init__(self, path: Path | str, found: int, supported: int) -> None:
        self.found = found
        self.supported = supported
        super().__init__(
            path,
            f"written by a newer agentdeck (schema {found}, this one knows up to {supported})",
            "upgrade agentdeck to open it",
        )


class NetworkFileSystem(UnusableDatabase):
    def __init__(self, path: Path | str, fstype: str) -> None:
        super().__init__(
            path,
            f"on a network file system ({fstype}), where SQLite's WAL locking is unsafe",
            "put the database on a local disk",
        )


class ReadOnlyDatabase(UnusableDatabase):
    def __init__(self, path: Path | str, why: str) -> None:
        super().__init__(
            path,
            f"cannot be written ({why})",
            "fix its permissions, or open it with --read-only to watch",
        )


class DatabaseLocked(StoreError):
    def __init__(self, path: Path | str, waited_s: float) -> None:
        self.path = Path(path)
        super().__init__(
            f"{path}: locked by another process for more than {waited_s:g}s; "
            "wait for it to finish or close the program holding it"
        )


class DiskFull(StoreError):
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        super().__init__(
            f"{path}: the disk is full, nothing was written; free some space and retry"
        )


class DiskIOError(StoreError):
    """The operating system reported a read or write failure under SQLite."""

    def __init__(self, path: Path | str, detail: str) -> None:
        self.path = Path(path)
        super().__init__(
            f"{path}: an I/O error ({detail}): the disk may be failing, removed or full; "
            "nothing was written; check the disk and its free space, then retry"
        )


class OutOfMemory(StoreError):
    """SQLite could not allocate memory (SQLITE_NOMEM, which Python raises as MemoryError)."""

    def __init__(self, path: Path | str, detail: str) -> None:
        self.path = Path(path)
        super().__init__(
            f"{path}: SQLite ran out of memory ({detail}); nothing was written; "
            "free some memory (close other programs) and retry"
        )


class ValueTooBig(StoreError):
    """One string or blob is over SQLite's size limit."""

    def __init__(self, path: Path | str, detail: str) -> None:
        self.path = Path(path)
        super().__init__(
            f"{path}: a value is larger than SQLite can store ({detail}); nothing was written; "
            "send smaller input or output"
        )


class QueryTooComplex(StoreError):
    """SQLite refused to run a statement (SQLITE_ERROR): too deep, too many variables..."""

    def __init__(self, path: Path | str, detail: str) -> None:
        self.path = Path(path)
        super().__init__(
            f"{path}: SQLite could not run the query ({detail}); it is probably too complex: "
            "narrow the filter (fewer terms) and retry"
        )


class DatabaseFailure(StoreError):
    """A SQLite failure no other class covers; it does not mean the file is damaged."""

    def __init__(self, path: Path | str, code: str, detail: str) -> None:
        self.path = Path(path)
        self.code = code
        super().__init__(
            f"{path}: the database refused the operation ({code}: {detail}); retry, and if it "
            f"keeps failing check the file with: agentdeck --db {shlex.quote(str(path))} verify"
        )


class StoreClosed(StoreError):
    def __init__(self) -> None:
        super().__init__("the store is closed")


class SequenceConflict(StoreError):
    """The runtime's log moved past the sequence the appender expected."""

    def __init__(self, runtime_id: str, expected: int, actual: int) -> None:
        self.runtime_id = runtime_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"runtime {runtime_id}: expected last seq {expected} but the log is at {actual}; "
            "another writer got there first, re-read and retry"
        )


class AppendRejected(StoreError):
    """The log refused an append for a reason other than its sequence."""


class InvalidEvent(AppendRejected):
    """An event the catalog refuses: an unknown kind, or a payload that does not fit it."""

    def __init__(self, kind: str, problem: str) -> None:
        self.kind = kind
        self.problem = problem
        super().__init__(f"event kind {kind!r} refused: {problem}; nothing was written")


class HostFenced(AppendRejected):
    """A host's append refused because it no longer holds the runtime's lease."""

    def __init__(self, runtime_id: str) -> None:
        self.runtime_id = runtime_id
        super().__init__(
            f"runtime {runtime_id} is hosted by another process now; this host's write was "
            "refused and nothing was written"
        )


class CommandAlreadySettled(AppendRejected):
    """An outcome for a command that is not pending (answered already, or never issued)."""

    def __init__(self, command_id: str, status: str | None) -> None:
        self.command_id = command_id
        self.status = status
        state = f"is already {status}" if status else "was never issued"
        super().__init__(
            f"command {command_id} {state}; its outcome and the events with it were not written"
        )


class DuplicateEvent(StoreError):
    def __init__(self, event_id: str) -> None:
        self.event_id = event_id
        super().__init__(f"event {event_id} is already in the log")


class LimitTooLarge(StoreError):
    def __init__(self, what: str, requested: int, maximum: int) -> None:
        self.what = what
        self.requested = requested
        self.maximum = maximum
        super().__init__(f"{what} limit {requested} is over the maximum of {maximum}")


class FilterError(StoreError, ValueError):
    """A malformed filter expression; the message names the bad term."""

    def __init__(self, term: str, problem: str) -> None:
        self.term = term
        self.problem = problem
        super().__init__(f"bad filter term {term!r}: {problem}")


class FilterTooLarge(FilterError):
    """A filter over the parser's size limits.

    `term` is the first term past the term limit, or the whole text when the
    text itself is too long.
    """

    def __init__(self, what: str, found: int, maximum: int, term: str) -> None:
        self.found = found
        self.maximum = maximum
        self.term = term
        self.problem = f"at most {maximum} {what}"
        # Not FilterError's "bad filter term ...": no single term is at fault, and
        # quoting a 1000-term filter back at the operator helps nobody.
        StoreError.__init__(
            self, f"the filter is too long ({found} {what}): at most {maximum} {what}; narrow the filter"
        )
