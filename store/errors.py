"""Every way the store can refuse, each with a message an operator can act on.

`str(error)` is the one line the command line prints; the class is what code
matches on.
"""

from __future__ import annotations

from pathlib import Path


class StoreError(Exception):
    """Base of all store errors."""


class UnusableDatabase(StoreError):
    """The file cannot be used as an agentdeck database; nothing was changed."""

    def __init__(self, path: Path | str, problem: str, advice: str) -> None:
        self.path = Path(path)
        super().__init__(f"{path}: {problem}; {advice}")


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
