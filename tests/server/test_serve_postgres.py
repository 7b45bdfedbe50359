"""Three ``eventlog serve`` processes on one PostgreSQL database.

Producers append through all three at once; every acknowledged event must be
stored exactly once at the offset it was acknowledged with, offsets per
stream must be gapless, and a firehose client on one process must see the
events appended through the others (LISTEN/NOTIFY wakes its hub). A named
consumer declared in the config file runs in exactly one of the processes
and moves to another when that one is killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
import websockets

from tests.pg import PgCluster
from tests.serverproc import ServerProcess
from tests.support import scaled, wait_until

pytestmark = pytest.mark.slow

STREAMS = ["orders", "payments"]


@pytest.fixture(scope="module")
def servers(pg_cluster: PgCluster) -> Iterator[list[ServerProcess]]:
    """Three servers on one fresh database (the first creates the schema)."""
    url = asyncio.run(pg_cluster.create_database())
    started: list[ServerProcess] = []
    try:
        for _ in range(3):
            started.append(ServerProcess.start(db=url))
        yield started
    finally:
        for server in started:
            server.stop()


async def produce(
    client: httpx.AsyncClient, base: str, who: str, rounds: int
) -> list[tuple[str, int, str]]:
    """Append single events and small batches; return ``(stream, offset, id)`` acks."""
    acks: list[tuple[str, int, str]] = []
    for i in range(rounds):
        stream = STREAMS[i % len(STREAMS)]
        ids = [f"{who}-{i}-{j}" for j in range(1 + i % 3)]
        body = [{"type": "t", "id": x, "data": {"who": who, "i": i}} for x in ids]
        response = await client.post(f"{base}/api/streams/{stream}/events", json=body)
        assert response.status_code == 201, response.text
        offsets = response.json()["offsets"]
        acks.extend((stream, o, x) for o, x in zip(offsets, ids, strict=True))
    return acks


async def test_three_servers_share_one_log_with_gapless_offsets_and_live_firehose(
    servers: list[ServerProcess],
) -> None:
    # The firehose serves existing streams: create "orders" through server 1.
    async with httpx.AsyncClient(timeout=scaled(10)) as client:
        seed = await client.post(
            f"{servers[1].url}/api/streams/orders/events",
            json={"type": "t", "id": "seed", "data": {"who": "seed"}},
        )
    assert seed.status_code == 201
    firehose_url = f"{servers[0].ws_url}/api/streams/orders/firehose?from=beginning"
    seen: list[dict[str, object]] = []
    async with websockets.connect(firehose_url) as ws:

        async def listen(expected: int) -> None:
            while len(seen) < expected:
                seen.append(msgspec.json.decode(await ws.recv()))

        async with httpx.AsyncClient(timeout=scaled(30)) as client:
            tasks = [
                produce(client, server.url, f"s{n}-p{p}", 30)
                for n, server in enumerate(servers)
                for p in range(4)
            ]
            results = await asyncio.gather(*tasks)
            acks = [("orders", 0, "seed")] + [a for r in results for a in r]
            stored: dict[str, dict[int, str]] = {}
            for stream in STREAMS:
                # Read back through a server none of the producers favoured.
                page = await client.get(
                    f"{servers[2].url}/api/streams/{stream}/events",
                    params={"from": 0, "limit": 10_000},
                )
                assert page.status_code == 200
                events = page.json()["events"]
                assert [e["offset"] for e in events] == list(range(len(events)))
                stored[stream] = {e["offset"]: e["id"] for e in events}
        assert len(acks) == sum(len(s) for s in stored.values())
        assert len({(s, i) for s, _, i in acks}) == len(acks)
        for stream, offset, event_id in acks:
            assert stored[stream][offset] == event_id
        # The firehose on server 0 saw every order, appended through any server.
        await asyncio.wait_for(listen(len(stored["orders"])), scaled(20))
    assert [e["offset"] for e in seen] == list(range(len(stored["orders"])))
    assert {e["id"] for e in seen} == set(stored["orders"].values())
    whos = {str(e["data"]["who"]).split("-")[0] for e in seen}  # type: ignore[index]
    assert whos == {"seed", "s0", "s1", "s2"}


async def test_long_poll_on_one_server_wakes_on_append_through_another(
    servers: list[ServerProcess],
) -> None:
    async with httpx.AsyncClient(timeout=scaled(30)) as client:
        poll = asyncio.create_task(
            client.get(
                f"{servers[1].url}/api/streams/alerts/events",
                params={"from": 0, "wait": 20},
            )
        )
        await wait_until(lambda: servers[1].connections() > 0, what="the poll accepted")
        assert not poll.done()
        response = await client.post(
            f"{servers[2].url}/api/streams/alerts/events", json={"type": "t", "data": 1}
        )
        assert response.status_code == 201
        page = await asyncio.wait_for(poll, scaled(10))
        assert [e["data"] for e in page.json()["events"]] == [1]


def consumed(server: ServerProcess) -> set[int]:
    """Offsets the server's ``audit`` consumer (built-in ``log`` kind) has handled."""
    return {
        int(m)
        for m in re.findall(r'logger=eventlog\.consumers msg="orders@(\d+) ', server.output())
    }


async def test_named_consumer_runs_in_one_server_and_moves_when_it_is_killed(
    pg_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "eventlog.toml"
    config.write_text('[[consumers]]\nname = "audit"\nkind = "log"\nstream = "orders"\n')
    started: list[ServerProcess] = []
    try:
        for _ in range(3):
            started.append(ServerProcess.start(db=pg_url, extra_args=["--config", str(config)]))
        async with httpx.AsyncClient(timeout=scaled(30)) as client:

            async def append(server: ServerProcess, first: int) -> None:
                body = [{"type": "t", "data": first + i} for i in range(10)]
                r = await client.post(f"{server.url}/api/streams/orders/events", json=body)
                assert r.status_code == 201, r.text

            await append(started[1], 0)
            await wait_until(
                lambda: any(set(range(10)) <= consumed(s) for s in started),
                15,
                what="the first delivery",
            )
            await asyncio.sleep(scaled(1.5))  # the others keep trying to take the lease
            holders = [s for s in started if consumed(s)]
            assert len(holders) == 1
            holder = holders[0]
            holder.kill()
            survivors = [s for s in started if s is not holder]
            await append(survivors[0], 10)
            await wait_until(
                lambda: set(range(10, 20)) <= set().union(*(consumed(s) for s in survivors)),
                15,
                what="the takeover",
            )
            assert len([s for s in survivors if consumed(s)]) == 1
            # At least once: nothing skipped across the move.
            assert set(range(20)) <= set().union(*(consumed(s) for s in started))
    finally:
        for server in started:
            server.stop()


async def test_server_answers_503_while_postgresql_is_down_and_recovers(
    own_cluster: PgCluster,
) -> None:
    url = await own_cluster.create_database()
    with ServerProcess.start(db=url) as server:
        async with httpx.AsyncClient(timeout=scaled(30)) as client:
            events = f"{server.url}/api/streams/orders/events"
            assert (await client.post(events, json={"type": "t", "data": 0})).status_code == 201
            await asyncio.to_thread(own_cluster.pause)
            try:
                down = await client.post(events, json={"type": "t", "data": 1})
                assert down.status_code == 503
                assert down.json()["error"]["code"] == "storage_error"
                read = await client.get(events, params={"from": 0})
                assert read.status_code == 503
                assert "postgresql" in read.json()["error"]["message"]
            finally:
                await asyncio.to_thread(own_cluster.resume)
            up = await client.post(events, json={"type": "t", "data": 2})
            assert up.status_code == 201
            assert up.json()["offsets"] == [1]  # nothing half-written while it was down
            page = (await client.get(events, params={"from": 0})).json()
            assert [e["data"] for e in page["events"]] == [0, 2]
