"""Must-show 2 of issue 16: the chaos of ``test_chaos`` on three ``eventlog serve``
processes sharing one PostgreSQL database, the 8 workers spread over them (worker
``i`` talks to server ``i % 3``), two of the servers SIGKILLed once each.

Any process serves any worker's claim and ack: claims of rows fed by one process
are acked through whichever process the worker talks to. Scale in the suite:
10,000 events over 1,000 keys, a worker killed about every second.
``EVENTLOG_CHAOS_EVENTS=20000`` runs the issue's full scale: 26.0 s here at a
load average of 10 (of which 8.3 s were the two servers' restarts).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import asyncpg
import pytest

from tests.consumers.shared.chaos import CONSUMER, check_records, run_chaos
from tests.pg import PgCluster
from tests.serverproc import ServerProcess
from tests.support import scaled

EVENTS = int(os.environ.get("EVENTLOG_CHAOS_EVENTS", "10000"))
KEYS = 1_000


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
            servers, tmp_path, events=EVENTS, keys=KEYS, kill_every=1.0, deadline=scaled(120)
        )
    finally:
        for server in servers:
            server.stop()
    print(
        f"\n{EVENTS} events, {KEYS} keys, 3 servers: done in {result.seconds:.1f} s, "
        f"{result.worker_kills} worker kills, {result.server_kills} server kills "
        f"(restarts took {', '.join(f'{t:.1f}' for t in result.restart_seconds)} s)"
    )
    info = result.info
    assert (info["ack_floor"], info["pending"], info["claimed"], info["parked"]) == (
        EVENTS,
        0,
        0,
        0,
    ), info
    assert result.server_kills == 2
    counts = check_records(result.files, EVENTS, KEYS)
    print(counts)
    assert asyncio.run(ledger_counts(url)) == (EVENTS, EVENTS, EVENTS)
