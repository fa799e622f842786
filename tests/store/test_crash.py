"""Crash test: SIGKILL a real writer process at random moments, reopen, check everything."""

from __future__ import annotations

import asyncio
import collections
import os
import random
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from store.event_store import EventStore
from tests.store.support import child_env, program, read_all

ROUNDS = 22
SEED = int(os.environ.get("AGENTDECK_CRASH_SEED", "20261122"))


@dataclass(frozen=True)
class Ack:
    runtime_id: str
    burst: str
    n: int
    first_position: int
    last_position: int
    last_seq: int


def _acks(out: Path) -> list[Ack]:
    acks = []
    for line in out.read_text().splitlines(keepends=True):
        if line.startswith("ack ") and line.endswith("\n"):
            _, runtime_id, burst, n, first, last, seq = line.split()
            acks.append(Ack(runtime_id, burst, int(n), int(first), int(last), int(seq)))
    return acks


def _wait_ready(out: Path, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while "ready" not in out.read_text():
        assert proc.poll() is None, f"the writer exited early with {proc.returncode}"
        assert time.monotonic() < deadline, "the writer never got ready"
        time.sleep(0.005)


async def _check(db: Path, acked: dict[str, Ack]) -> int:
    """Reopen as a writer would after a crash; everything acknowledged must be there."""
    async with await EventStore.open(db, watch=False, index=False) as store:
        report = await store.verify()
        assert report.ok, report.problems
        log = await read_all(store)
    assert [e.position for e in log] == list(range(1, len(log) + 1))
    bursts: dict[str, list[tuple[int, int, int, int, str]]] = collections.defaultdict(list)
    per_runtime: dict[str, list[int]] = collections.defaultdict(list)
    for e in log:
        per_runtime[e.runtime_id].append(e.seq)
        burst, of = e.message.split()  # "BURST I/N" (crash_writer.burst_events)
        i, n = of.split("/")
        bursts[burst].append((int(i), int(n), e.position, e.seq, e.runtime_id))
    for runtime_id, seqs in per_runtime.items():
        assert seqs == list(range(1, len(seqs) + 1)), f"{runtime_id}: seq gap"
    # No partial transaction: every burst in the log is complete and contiguous.
    for burst, rows in bursts.items():
        n = rows[0][1]
        assert [r[0] for r in rows] == list(range(n)), f"burst {burst} is partial: {rows}"
        assert [r[2] for r in rows] == list(range(rows[0][2], rows[0][2] + n))
    # Every acknowledged append is present, where its writer was told it was.
    for ack in acked.values():
        rows = bursts.get(ack.burst)
        assert rows is not None, f"acknowledged burst {ack.burst} is gone"
        assert (len(rows), rows[0][2], rows[-1][2], rows[-1][3], rows[0][4]) == (
            ack.n, ack.first_position, ack.last_position, ack.last_seq, ack.runtime_id,
        )
    return len(log)


class _Writer:
    """One crash_writer.py process, started ahead of its round (imports take a while)."""

    def __init__(self, folder: Path, db: Path, round_no: int, seed: int) -> None:
        self.round_no = round_no
        self.out = folder / f"round-{round_no}.out"
        self.err = folder / f"round-{round_no}.err"
        with self.out.open("w") as stdout, self.err.open("w") as stderr:
            self.proc = subprocess.Popen(
                program("crash_writer.py", db, round_no, seed),
                stdin=subprocess.PIPE, stdout=stdout, stderr=stderr, env=child_env(),
            )

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()

    def kill(self) -> list[Ack]:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.proc.returncode == -signal.SIGKILL, (
            f"round {self.round_no}: the writer died by itself: {self.err.read_text()}"
        )
        return _acks(self.out)


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing_acknowledged(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    db = tmp_path / "crash.db"
    acked: dict[str, Ack] = {}
    rounds_with_acks = 0
    early_kills = 0
    total = 0
    # Two writers wait ahead (imports done, store not yet open) so start-up costs
    # overlap the checks.
    upcoming = collections.deque(
        _Writer(tmp_path, db, n, rng.randrange(1 << 30)) for n in range(min(2, ROUNDS))
    )
    try:
        for round_no in range(ROUNDS):
            writer = upcoming.popleft()
            try:
                writer.go()
                if rng.random() < 0.2:
                    # Now and then kill it while it is still opening (creating, migrating,
                    # recovering the file left by the previous kill).
                    early_kills += 1
                    time.sleep(rng.uniform(0.0, 0.05))
                else:
                    _wait_ready(writer.out, writer.proc)
                    time.sleep(rng.uniform(0.01, 0.25))
            finally:
                acks = writer.kill()
            if round_no + 2 < ROUNDS:
                upcoming.append(_Writer(tmp_path, db, round_no + 2, rng.randrange(1 << 30)))
            rounds_with_acks += bool(acks)
            for ack in acks:
                assert ack.burst not in acked
                acked[ack.burst] = ack
            total = asyncio.run(_check(db, acked))
    finally:
        for waiting in upcoming:
            waiting.proc.kill()
            waiting.proc.wait()
            assert waiting.proc.stdin is not None
            waiting.proc.stdin.close()
    # The kills really landed while appends were in flight, not only at start-up.
    assert rounds_with_acks >= ROUNDS // 2, f"only {rounds_with_acks} rounds appended anything"
    assert len(acked) > 100 and total >= sum(a.n for a in acked.values())
    print(f"{ROUNDS} kills ({early_kills} while opening), {len(acked)} acknowledged bursts, "
          f"{total} events in the log")
