"""SIGKILL at random moments loses no acknowledged event and no committed offset."""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path

import pytest

from eventlog import EventLog
from tests import forked
from tests.support import scaled

ROOT = Path(__file__).resolve().parents[2]


def run_until_killed(db: Path, delay: float, out: Path) -> list[str]:
    child = forked.start("tests.eventlog.crash_child", [str(db)], cwd=ROOT, stdout=out)
    try:
        child.wait_for_line(b"ready", scaled(30))
        time.sleep(delay)
    finally:
        child.kill()
        child.wait(scaled(10))
    return child.output().decode().splitlines()[1:]  # after "ready"


@pytest.mark.slow
async def test_sigkill_never_loses_acknowledged_events_or_commits(tmp_path: Path) -> None:
    db = tmp_path / "crash.db"
    rng = random.Random(1234)
    acked: dict[int, str] = {}
    last_commit = 0
    for _round in range(12):
        lines = run_until_killed(db, rng.uniform(0.1, 0.6), tmp_path / f"child-{_round}.out")
        for line in lines:
            parts = line.split()
            if len(parts) == 3 and parts[0] == "ack":
                offset, event_id = int(parts[1]), parts[2]
                assert acked.setdefault(offset, event_id) == event_id, "offset reused"
            elif len(parts) == 2 and parts[0] == "commit":
                last_commit = max(last_commit, int(parts[1]))
            # A torn last line (killed mid-write) is expected and ignored.

        conn = sqlite3.connect(db)
        rows = conn.execute(
            "SELECT offset, id FROM events WHERE stream = 'crash' ORDER BY offset"
        ).fetchall()
        (committed,) = conn.execute(
            "SELECT offset FROM consumer_offsets WHERE name = 'crash-consumer'"
        ).fetchone() or (0,)
        conn.close()
        stored = dict(rows)
        assert [o for o, _ in rows] == list(range(len(rows))), "offsets are not gapless"
        assert len(set(stored.values())) == len(stored), "an event was duplicated"
        missing = {o: i for o, i in acked.items() if stored.get(o) != i}
        assert not missing, f"acknowledged events lost: {list(missing)[:5]}"
        assert committed >= last_commit, "a committed consumer offset was lost"

    print(f"{len(acked)} acknowledged events over 12 kills, consumer at {committed}")
    assert len(acked) > 100, "the child barely appended; the test proved little"
    # The consumer resumes from its committed offset after the last crash.
    async with EventLog.open(db) as log:
        consumer = log.consumer("crash-consumer", "crash")
        events = await consumer.poll(1)
        assert events
        assert events[0].offset == committed
