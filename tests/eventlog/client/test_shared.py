"""Shared-consumer workers through the client, against a real server (SHARED_API.md)."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from eventlog import ConsumerNotFound, NewEvent
from eventlog.client import AsyncClient, Client
from eventlog.errors import Conflict, InvalidInput, NotFound
from tests.eventlog.client.proxy import proxy
from tests.serverthread import ServerThread
from tests.support import scaled


async def fill(client: AsyncClient, n: int) -> None:
    await client.append_batch(
        "orders", [NewEvent(type="order.created", data={"i": i}, key=f"k{i % 3}") for i in range(n)]
    )


async def test_workers_share_the_events_and_each_is_acked_once(client: AsyncClient) -> None:
    await fill(client, 30)
    info = await client.declare_shared("mailer", "orders", ack_wait=10, start="beginning")
    assert (info.name, info.stream, info.head, info.ack_floor) == ("mailer", "orders", 30, 0)
    handled: Counter[int] = Counter()
    by_worker: Counter[str] = Counter()
    acked: set[int] = set()

    async def worker(name: str) -> None:
        async for claim in client.claims("mailer", worker=name, max=4, wait=1):
            assert claim.event.offset == claim.offset
            assert claim.event.json() == {"i": claim.offset}
            handled[claim.offset] += 1
            by_worker[name] += 1
            await asyncio.sleep(0.05)  # a handler that takes time: the others get work
            await claim.ack()
            acked.add(claim.offset)
            if len(acked) >= 30:  # every claim is acked: no worker holds one when cancelled
                return

    tasks = [asyncio.create_task(worker(f"w{i}")) for i in range(3)]
    _, pending = await asyncio.wait(tasks, timeout=scaled(30), return_when="FIRST_COMPLETED")
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert handled == Counter(range(30))
    info = await client.shared_info("mailer")
    assert (info.ack_floor, info.pending, info.claimed) == (30, 0, 0)
    assert await client.committed_offset("mailer", "orders") == 30  # the ack floor
    assert len(by_worker) >= 2  # the work spread


async def test_nack_redelivers_and_in_progress_extends(client: AsyncClient) -> None:
    await fill(client, 1)
    await client.declare_shared("mailer", "orders", ack_wait=5, start="beginning")
    [first] = await client.claim("mailer", worker="w1", max=5, wait=1)
    assert (first.offset, first.attempt) == (0, 1)
    extended = await first.in_progress()
    assert extended >= first.expires
    await first.nack()
    [again] = await client.claim("mailer", worker="w2", wait=5)
    assert (again.offset, again.attempt, again.worker) == (0, 2, "w2")
    assert await client.ack("mailer", [again], worker="w2") == 1
    assert await client.claim("mailer", worker="w2", wait=0) == []


async def test_bad_claims_are_the_servers_codes_on_the_trees_branches(
    client: AsyncClient,
) -> None:
    await fill(client, 2)
    await client.declare_shared("mailer", "orders", ack_wait=10, start="beginning")
    claims = await client.claim("mailer", worker="w1", max=2, wait=1)
    await claims[0].ack()
    caught: dict[str, Exception] = {}
    for name, attempt in {
        "already_acked": claims[0].ack(),
        "claim_not_held": client.ack("mailer", [claims[1].id], worker="w2"),
        "claim_not_found": client.ack("mailer", ["c-nope"], worker="w1"),
        "invalid_delay": claims[1].nack(delay=-1),
    }.items():
        with pytest.raises((Conflict, NotFound, InvalidInput)) as info:
            await attempt
        caught[name] = info.value
    assert {k: (type(v).__name__, getattr(v, "code", "")) for k, v in caught.items()} == {
        "already_acked": ("Conflict", "already_acked"),
        "claim_not_held": ("Conflict", "claim_not_held"),
        "claim_not_found": ("NotFound", "claim_not_found"),
        "invalid_delay": ("InvalidInput", "invalid_delay"),
    }
    await client.commit_offset("plain", "orders", 0)
    with pytest.raises(Conflict) as not_shared:
        await client.claim("plain", worker="w1", wait=0)
    with pytest.raises(ConsumerNotFound):
        await client.claim("nobody", worker="w1", wait=0)
    assert not_shared.value.code == "consumer_not_shared"


async def test_an_ack_whose_answer_was_lost_is_retried_and_counts_once(
    server: ServerThread, client: AsyncClient
) -> None:
    await fill(client, 1)
    await client.declare_shared("mailer", "orders", start="beginning")
    [claim] = await client.claim("mailer", worker="w1", wait=5)
    async with proxy(server.port, ["drop_answer"]) as p, AsyncClient(p.url) as lossy:
        # acked by the first attempt; the retry finds it already_acked: done
        assert await lossy.ack("mailer", [claim.id], worker="w1") == 1
    assert p.log[:2] == ["drop_answer", "pass"]
    info = await client.shared_info("mailer")
    assert (info.ack_floor, info.claimed, info.pending) == (1, 0, 0)


def test_the_sync_client_works_claims_the_same_way(server: ServerThread) -> None:
    with Client(server.url) as client:
        client.append_batch("orders", [NewEvent(type="t", data=i) for i in range(5)])
        client.declare_shared("mailer", "orders", start="beginning")
        seen = []
        for claim in client.claims("mailer", worker="w1", max=2, wait=1):
            seen.append(claim.event.json())
            claim.ack()
            if len(seen) == 5:
                break
        assert seen == [0, 1, 2, 3, 4]
        assert client.shared_info("mailer").ack_floor == 5
        assert isinstance(client.claim("mailer", worker="w1", wait=0), list)
