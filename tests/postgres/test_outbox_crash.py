"""Must-show: SIGKILL during application transactions, 20 rounds on PostgreSQL.

After every kill the application's rows and the log's events agree: each row
``n`` has its event ``o<n>`` and each event its row (both or neither), and the
stream's offsets stay gapless.
"""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from tests.pg import PgCluster
from tests.support import scaled

CHILD = Path(__file__).with_name("outbox_child.py")
ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 20


async def _agree(url: str) -> int:
    """Rows and events in one snapshot: equal sets, gapless offsets. How many."""
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            rows = {r[0] for r in await conn.fetch("SELECT id FROM app_orders")}
            events = await conn.fetch(
                "SELECT id, \"offset\" FROM eventlog.events WHERE stream = 'orders' "
                'ORDER BY "offset"'
            )
            head = await conn.fetchval(
                "SELECT next_offset FROM eventlog.streams WHERE name = 'orders'"
            )
    finally:
        await conn.close()
    ids = {int(e[0][1:]) for e in events}
    assert rows == ids, f"rows without events {rows - ids}, events without rows {ids - rows}"
    assert [e[1] for e in events] == list(range(len(events)))
    assert (head or 0) == len(events)
    return len(rows)


@pytest.mark.postgres
@pytest.mark.slow
async def test_sigkill_during_app_transactions_rows_and_events_agree(
    pg_cluster: PgCluster,
) -> None:
    url = await pg_cluster.create_database()
    rng = random.Random(7)
    counts = []
    for _ in range(ROUNDS):
        child = subprocess.Popen(
            [sys.executable, str(CHILD), url], cwd=ROOT, stdout=subprocess.PIPE
        )
        try:
            assert child.stdout is not None
            line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), scaled(30))
            assert line.strip() == b"ready"
            await asyncio.sleep(rng.uniform(0.05, 0.4))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
            if child.stdout is not None:
                child.stdout.close()
        counts.append(await _agree(url))
    assert counts[-1] > ROUNDS  # transactions committed across the rounds
    assert counts == sorted(counts)
