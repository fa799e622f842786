"""Doorbells: a commit in one process wakes the other processes' change feeds at once.

SQLite has no NOTIFY. Without help, another process learns of a commit from
the file watcher (watchfiles on the WAL, which waits for the writes to go
quiet: about 10 ms) or the `data_version` poll (250 ms). A command answered
through the inbox crosses two processes and back, so those waits add up.

Each store that follows the file binds a Unix datagram socket in a folder
that every process opening the same file (as the same user) finds from the
file's real path; after each commit a writer sends one empty datagram to
every socket there but its own. A socket whose owner is gone refuses the
datagram and is removed. Bells are hints like the watcher's: a lost or
unsent one only means the watcher's latency, so every failure here is quiet.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

LISTING_TTL_S = 1.0  # how long a writer trusts its list of bells (new ones join within it)
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes; longer folders go without bells


def bell_folder(db: Path, base: Path | None = None) -> Path:
    """The folder of the bells of database `db`: one per file and user."""
    real = os.path.realpath(db)
    digest = hashlib.sha1(real.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    root = base or Path(tempfile.gettempdir())
    return root / f"agentdeck-bells-{os.getuid()}" / digest


class Doorbell:
    """This process's bell for one database: rings the others, and is rung by them."""

    def __init__(self, db: Path, base: Path | None = None) -> None:
        self.folder = bell_folder(db, base)
        self.path: Path | None = None
        self._listener: socket.socket | None = None
        self._sender: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._peers: list[str] = []
        self._listed_at = -LISTING_TTL_S

    def listen(self, on_ring: Callable[[], None]) -> bool:
        """Bind this process's bell; `on_ring()` runs in the loop when another rings it."""
        path = self.folder / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.sock"
        if len(str(path)) > MAX_SOCKET_PATH:
            return False
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.bind(str(path))
        except OSError:
            return False
        loop = asyncio.get_running_loop()

        def rung() -> None:
            with contextlib.suppress(OSError):
                while sock.recv(64) is not None:  # drain: many rings, one hint
                    pass
            on_ring()

        loop.add_reader(sock.fileno(), rung)
        self._listener, self.path, self._loop = sock, path, loop
        return True

    def ring(self) -> None:
        """Tell every other process following this file that something was committed."""
        now = time.monotonic()
        if now - self._listed_at > LISTING_TTL_S:
            self._listed_at = now
            try:
                found = list(self.folder.iterdir())
            except OSError:
                found = []
            self._peers = [str(p) for p in found if p != self.path]
        if not self._peers:
            return
        if self._sender is None:
            try:
                self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sender.setblocking(False)
            except OSError:
                return
        for peer in list(self._peers):
            try:
                self._sender.sendto(b"", peer)
            except OSError as exc:
                if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
                    # Its process is gone (or closed it): nobody will ring it again.
                    self._peers.remove(peer)
                    with contextlib.suppress(OSError):
                        Path(peer).unlink()
                # EAGAIN: that bell is full of rings already; it will wake anyway.

    def close(self) -> None:
        if self._listener is not None:
            if self._loop is not None and not self._loop.is_closed():
                with contextlib.suppress(Exception):
                    self._loop.remove_reader(self._listener.fileno())
            self._listener.close()
            self._listener = None
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
            with contextlib.suppress(OSError):
                self.folder.rmdir()  # only when no one else follows the file now
            self.path = None
        if self._sender is not None:
            self._sender.close()
            self._sender = None
