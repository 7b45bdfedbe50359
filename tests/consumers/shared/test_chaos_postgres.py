"""Must-show 2 of issue 16: the chaos of ``test_chaos`` on three ``eventlog serve``
processes sharing one PostgreSQL database, the 8 workers spread over them (worker
``i`` talks to server ``i % 3``), two of the servers SIGKILLed once each.

Any process serves any worker's claim and ack: claims of rows fed by one process
are acked through whichever process the worker talks to. The issue's scale:
20,000 events over 1,000 keys, a worker killed about every 0.5 s
(``EVENTLOG_CHAOS_EVENTS`` sets another size). 4,000 events took 3.3 s on a quiet
machine (so a kill every 1.2 s, as before, left only 2 worker kills).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import asyncpg
import pytest

from tests.consumers.shared.chaos import CONSUMER, run_chaos
from tests.pg import PgCluster
from tests.serverproc import ServerProcess
from tests.support import scaled

EVENTS = int(os.environ.get("EVENTLOG_CHAOS_EVENTS", "20000"))
KEYS = 1_000 if EVENTS >= 10_000 else 400


async def ledger_counts(url: str) -> tuple[int, int, int]:
    conn = await asyncpg.connect(url)
    try:
        schema = await conn.fetchval(
            "SELECT table_schema FROM information_schema.tables "
            "WHERE table_name = 'webhook_deliveries' LIMIT 1"
        )
        row = await conn.fetchrow(
            f'SELECT count(*), count(DISTINCT "offset"), '
            f"count(*) FILTER (WHERE status = 'delivered') "
            f"FROM {schema}.webhook_deliveries WHERE endpoint_id = $1",
            f"shared:{CONSUMER}",
        )
    finally:
        await conn.close()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


@pytest.mark.slow
@pytest.mark.timeout(scaled(240))
def test_three_serve_processes_share_one_consumer_through_kills(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    url = asyncio.run(pg_cluster.create_database())
    servers: list[ServerProcess] = []
    try:
        for _ in range(3):
            servers.append(ServerProcess.start(db=url))
        result = run_chaos(
            servers, tmp_path, events=EVENTS, keys=KEYS, kill_every=0.5, deadline=scaled(120)
        )
    finally:
        for server in servers:
            server.stop()
    result.check(EVENTS, KEYS, "3 servers")
    assert asyncio.run(ledger_counts(url)) == (EVENTS, EVENTS, EVENTS)
