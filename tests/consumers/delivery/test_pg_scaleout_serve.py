"""Three ``eventlog serve`` processes deliver one endpoint's webhooks on one PostgreSQL database.

A slow loopback receiver learns which process sent each request from the
request's source port: while a request is being answered its connection is
open, and exactly one server process holds a socket with that local port
(psutil). Which process feeds the endpoint is read from PostgreSQL: the
session holding the feed lease's advisory lock, and the server process that
holds that session's client port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest
from aiohttp import web

from eventlog.storage.postgres_schema import advisory_key
from tests.consumers.delivery.receiver import Received, Receiver
from tests.pg import PgCluster
from tests.serverproc import ServerProcess
from tests.support import scaled, wait_until

pytestmark = pytest.mark.slow

#: The servers' lease period (``lease_retry``, 1 s): docs/webhooks.md promises
#: a dead process's claims are pending again within two of them.
LEASE_PERIOD = 1.0
HOLD = 0.3  # seconds the receiver takes to answer
MAX_IN_FLIGHT = 3


class Watcher:
    """The receiver's view: which server sent each request, and what was in progress at once."""

    def __init__(self, servers: list[ServerProcess]) -> None:
        self.servers = servers
        self.owner_of_port: dict[int, int] = {}
        self.in_progress: defaultdict[int, int] = defaultdict(int)
        self.senders: set[int] = set()
        self.all_at_once = False  # requests of every server in progress together
        self.most = 0
        self.sent_by: dict[str, set[int]] = defaultdict(set)  # webhook-id -> servers

    def owner(self, port: int) -> int:
        """The index of the server process holding local port ``port``."""
        for index, server in enumerate(self.servers):
            if server.proc is None or server.proc.poll() is not None:
                continue
            try:
                connections = psutil.Process(server.pid).net_connections(kind="tcp")
            except psutil.Error:
                continue
            if any(c.laddr and c.laddr.port == port for c in connections):
                return index
        return -1

    async def behaviour(self, request: web.Request, received: Received) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        port = int(peer[1]) if peer else -1
        if port not in self.owner_of_port:
            self.owner_of_port[port] = await asyncio.to_thread(self.owner, port)
        who = self.owner_of_port[port]
        self.senders.add(who)
        self.sent_by[received.headers["webhook-id"]].add(who)
        self.in_progress[who] += 1
        busy = [i for i, n in self.in_progress.items() if n > 0 and i >= 0]
        self.all_at_once = self.all_at_once or len(busy) == len(self.servers)
        self.most = max(self.most, sum(self.in_progress.values()))
        try:
            await asyncio.sleep(HOLD)
        finally:
            self.in_progress[who] -= 1
        return web.Response(status=204)


@pytest.fixture
def servers(pg_cluster: PgCluster, tmp_path: Path) -> Iterator[tuple[str, list[ServerProcess]]]:
    """Three servers on one fresh database, started at once (and stopped)."""
    url = asyncio.run(pg_cluster.create_database())
    config = tmp_path / "eventlog.toml"
    config.write_text("[webhooks]\nallow_private_targets = true\n")
    # Side by side: schema migrations take an advisory lock, so one creates it.
    started: list[ServerProcess] = []
    try:
        with ThreadPoolExecutor(3) as pool:
            futures = [
                pool.submit(ServerProcess.start, db=url, extra_args=["--config", str(config)])
                for _ in range(3)
            ]
            for future in futures:
                with contextlib.suppress(Exception):
                    started.append(future.result())
        assert len(started) == 3, [f.exception() for f in futures]
        yield url, started
    finally:
        for server in started:
            server.close()


async def feeding_server(url: str, servers: list[ServerProcess], endpoint_id: str) -> int | None:
    """The index of the server that holds the endpoint's feed lease, if any."""
    key = advisory_key("eventlog", "lease", f"delivery-feed:webhook.{endpoint_id}")
    conn = await asyncpg.connect(url)
    try:
        port = await conn.fetchval(
            "SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1 AND l.objid = $2",
            (key >> 32) & 0xFFFFFFFF,
            key & 0xFFFFFFFF,
        )
    finally:
        await conn.close()
    if port is None:
        return None
    found = Watcher(servers).owner(int(port))
    return None if found < 0 else found


async def in_flight_of(url: str, pid: int) -> int:
    """Deliveries still claimed by process ``pid`` (``claimed_by = <host>:<pid>:<random>``)."""
    conn = await asyncpg.connect(url)
    try:
        n = await conn.fetchval(
            "SELECT count(*) FROM eventlog.webhook_deliveries "
            "WHERE status = 'in_flight' AND split_part(claimed_by, ':', 2) = $1",
            str(pid),
        )
    finally:
        await conn.close()
    return int(n)


async def append(client: httpx.AsyncClient, server: ServerProcess, first: int, n: int) -> None:
    body = [{"type": "order.created", "data": {"n": i}} for i in range(first, first + n)]
    response = await client.post(f"{server.url}/api/streams/orders/events", json=body)
    assert response.status_code == 201, response.text


async def test_three_serve_processes_share_sending_and_take_over_a_killed_ones_deliveries(
    servers: tuple[str, list[ServerProcess]],
) -> None:
    url, procs = servers
    watcher = Watcher(procs)
    receiver = await Receiver(behaviour=watcher.behaviour).start()
    try:
        async with httpx.AsyncClient(timeout=scaled(30)) as client:
            # Created through process 0; 1 and 2 hear of it (no restart).
            created = await client.post(
                f"{procs[0].url}/api/webhooks",
                json={
                    "id": "orders",
                    "url": receiver.url(),
                    "stream": "orders",
                    "retry": "short",
                    "max_in_flight": MAX_IN_FLIGHT,
                },
            )
            assert created.status_code == 201, created.text
            for i, server in enumerate(procs):
                await append(client, server, 20 * i, 20)

            # Mid-delivery, with every process sending: SIGKILL the feeder.
            await wait_until(lambda: watcher.all_at_once, 15, what="all three sending at once")
            feeder = await feeding_server(url, procs, "orders")
            assert feeder is not None
            await wait_until(lambda: watcher.in_progress[feeder] > 0, 10, what="feeder sending")
            victim = procs[feeder]
            victim.kill()
            killed = time.monotonic()
            survivors = [s for s in procs if s is not victim]

            # Its claims are pending again within two lease periods, while the others run.
            while await in_flight_of(url, victim.pid) > 0:
                assert time.monotonic() - killed < 2 * LEASE_PERIOD + scaled(1.0)
                await asyncio.sleep(0.05)
            # The feeder moves on too: events appended now are delivered as well.
            await append(client, survivors[0], 60, 10)
            await wait_until(
                lambda: len(delivered_offsets(receiver)) == 70, 20, what="every event delivered"
            )
            assert all(s.proc is not None and s.proc.poll() is None for s in survivors)
    finally:
        await receiver.stop()

    assert watcher.senders == {0, 1, 2}  # the endpoint made through 0 sends from 1 and 2
    assert watcher.most > MAX_IN_FLIGHT  # more at once than one process may send
    ids: defaultdict[int, set[str]] = defaultdict(set)
    for r in receiver.requests:
        ids[json.loads(r.body)["offset"]].add(r.headers["webhook-id"])
    assert sorted(ids) == list(range(70))
    assert all(len(v) == 1 for v in ids.values())  # one webhook-id per event
    resent = [i for i, who in watcher.sent_by.items() if len(who) > 1]
    assert all(feeder in watcher.sent_by[i] for i in resent)  # only the victim's were resent


def delivered_offsets(receiver: Receiver) -> set[int]:
    """Offsets of the events the receiver has seen."""
    return {json.loads(r.body)["offset"] for r in receiver.requests}
