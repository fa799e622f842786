"""Doorbells: after a commit, a writer wakes the other processes following the same file."""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest

from store import catalog
from store.catalog import DiagnosticRaised
from store.doorbell import Doorbell, bell_folder
from store.event_store import EventStore


@pytest.fixture
def bells() -> Iterator[Path]:
    """A folder of its own for this test's bells: short, as socket paths must be
    (pytest's tmp_path is too deep for one)."""
    folder = Path(tempfile.mkdtemp(prefix="bells-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


async def test_a_ring_wakes_every_other_bell_of_the_file_but_not_its_own(
    tmp_path: Path, bells: Path
) -> None:
    db = tmp_path / "a.db"
    rung: dict[str, asyncio.Event] = {"a": asyncio.Event(), "b": asyncio.Event()}
    a, b, other_file = Doorbell(db, bells), Doorbell(db, bells), Doorbell(tmp_path / "b.db", bells)
    try:
        assert a.listen(rung["a"].set) and b.listen(rung["b"].set)
        other_rung = asyncio.Event()
        assert other_file.listen(other_rung.set)
        a.ring()
        await asyncio.wait_for(rung["b"].wait(), 5)
        await asyncio.sleep(0.05)  # let any stray datagram be read
        assert not rung["a"].is_set(), "a bell rang itself"
        assert not other_rung.is_set(), "a bell of another database rang"
    finally:
        for bell in (a, b, other_file):
            bell.close()
    assert not bell_folder(db, bells).exists(), "the last bell to close removes the folder"


def test_a_bell_left_by_a_dead_process_is_removed_on_the_next_ring(
    tmp_path: Path, bells: Path
) -> None:
    db = tmp_path / "a.db"
    folder = bell_folder(db, bells)
    folder.mkdir(parents=True)
    dead = folder / "999999-deadbeef.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(dead))
    sock.close()  # the file stays, as when a process is SIGKILLed
    ringer = Doorbell(db, bells)
    ringer.ring()
    ringer.close()
    assert not dead.exists()


async def test_a_folder_too_deep_for_a_socket_path_goes_without_bells(tmp_path: Path) -> None:
    bell = Doorbell(tmp_path / "a.db", tmp_path / ("x" * 120))
    assert not bell.listen(lambda: None)
    bell.ring()  # nothing to ring, and no error
    bell.close()


async def test_a_store_following_a_file_has_a_bell_and_removes_it_when_closed(
    tmp_path: Path,
) -> None:
    db = tmp_path / "a.db"
    follower = await EventStore.open(db)
    writer = await EventStore.open(db, watch=False)  # writes, rings, is not rung
    folder = bell_folder(db)
    try:
        assert len(list(folder.iterdir())) == 1
        with follower.subscribe(await follower.last_position()) as sub:
            event = catalog.event(
                "diagnostic.raised", DiagnosticRaised(code="t", message="rung"),
                event_id=uuid4(), at=datetime.now(UTC),
            )
            [committed] = await writer.append("rt", None, [event])
            [seen] = await asyncio.wait_for(sub.next_batch(), 5)
            assert seen.event_id == committed.event_id
    finally:
        await writer.close()
        await follower.close()
    assert not folder.exists()
