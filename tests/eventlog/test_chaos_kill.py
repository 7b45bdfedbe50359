"""SIGKILL of an embedded log (SQLite, PostgreSQL) under 256 producers mixing every kind of append.

Rounds default to 4 (``EVENTLOG_CHAOS_ROUNDS`` sets more for a soak): each
starts :mod:`tests.eventlog.chaos_child` on the same file, kills it at a random
moment, and checks the file (:func:`tests.chaos.check_stored`).
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from tests import forked
from tests.chaos import Ack, check_stored, parse_acks
from tests.support import scaled

ROOT = Path(__file__).resolve().parents[2]


async def _rounds(tmp_path: Path, db: Path | str) -> None:
    rng = random.Random(4321)
    rounds = int(os.environ.get("EVENTLOG_CHAOS_ROUNDS", "4"))
    acks: list[Ack] = []
    stored = 0
    for n in range(rounds):
        out = tmp_path / f"child-{n}.out"
        args = [str(db), str(n)]
        child = forked.start("tests.eventlog.chaos_child", args, cwd=ROOT, stdout=out)
        try:
            child.wait_for_line(b"ready", scaled(30))
            time.sleep(rng.uniform(0.3, 1.5))
        finally:
            child.kill()
            assert child.wait(scaled(10)) == -9
        round_acks = parse_acks(child.output().decode().splitlines())
        assert round_acks, "the child acknowledged nothing before it was killed"
        acks += round_acks
        stored = await check_stored(db, ["chaos-a", "chaos-b"], acks)
    backend = "postgresql" if str(db).startswith("postgresql") else "sqlite"
    print(f"chaos on {backend}: {rounds} kills, {len(acks)} acknowledged appends, {stored} events")


@pytest.mark.slow
async def test_sigkill_under_256_mixed_producers_loses_and_reorders_nothing(
    tmp_path: Path,
) -> None:
    await _rounds(tmp_path, tmp_path / "chaos.db")


@pytest.mark.slow
async def test_on_postgres_sigkill_under_256_mixed_producers_loses_nothing(
    tmp_path: Path, pg_url: str
) -> None:
    await _rounds(tmp_path, pg_url)
