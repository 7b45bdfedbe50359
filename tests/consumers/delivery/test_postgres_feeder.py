"""Webhook delivery with two engines ("processes") on one PostgreSQL database.

Each engine has its own storage (its own connections, so its own advisory
locks, exactly as two server processes). The endpoint's feeder must run in one
of them only, every event must reach a real loopback receiver exactly once
per ``webhook-id``, and when the feeding engine stops, the other takes over.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

from consumers.delivery.engine import DeliveryEngine
from consumers.delivery.pump import feeder_lease
from consumers.delivery.stores import ledger_for
from consumers.webhook import WEBHOOK, EndpointSpec, build_endpoint
from eventlog import EventLog, NewEvent
from eventlog.storage.leases import leases_for
from tests.consumers.delivery.receiver import Receiver
from tests.support import wait_until

LEASE_RETRY = 0.2


def engine_on(log: EventLog) -> DeliveryEngine:
    return DeliveryEngine(
        log,
        ledger_for(log),
        kinds={"webhook": WEBHOOK},
        allow_private=True,
        lease_retry=LEASE_RETRY,
    )


def webhook_ids(receiver: Receiver) -> Counter[str]:
    return Counter(r.headers["webhook-id"] for r in receiver.requests)


async def append(log: EventLog, n: int, start: int) -> None:
    for i in range(start, start + n, 50):
        await log.append_batch(
            "orders", [NewEvent(type="order.created", data={"n": j}) for j in range(i, i + 50)]
        )


async def test_one_engine_feeds_each_endpoint_and_the_other_takes_over(
    pg_url: str, two_logs: tuple[EventLog, EventLog], receiver: Receiver
) -> None:
    log_a, log_b = two_logs
    engines = [engine_on(log_a), engine_on(log_b)]
    await engines[0].start()
    endpoint = build_endpoint(
        EndpointSpec(url=f"http://127.0.0.1:{receiver.port}/hook", stream="orders", retry="short"),
        now=time.time(),
        head=0,
    )
    await engines[0].put_endpoint(endpoint)
    await engines[1].start()  # loads the stored endpoint
    try:
        # Producers write through both "processes".
        await asyncio.gather(append(log_a, 200, 0), append(log_b, 200, 200))
        await wait_until(lambda: len(webhook_ids(receiver)) == 400, timeout=30)

        # Exactly one engine feeds, and the lease says so to a third party.
        feeding = [e.feeding() for e in engines]
        assert sorted(map(len, feeding)) == [0, 1], feeding
        holder = 0 if feeding[0] else 1
        assert feeding[holder] == {endpoint.id}
        async with EventLog.open(pg_url, retention_interval=0) as third:
            assert await leases_for(third.storage).acquire_lease(feeder_lease(endpoint)) is None

        # Exactly once per webhook-id, and one webhook-id per event.
        counts = webhook_ids(receiver)
        assert set(counts.values()) == {1}
        assert len(receiver.requests) == 400
        offsets = sorted(_event_offset(r.body) for r in receiver.requests)
        assert offsets == list(range(400))
        assert await log_a.storage.get_offset(endpoint.consumer_name, "orders") == 400

        # The holder stops: the other engine takes the feeder over.
        other = engines[1 - holder]
        await engines[holder].close()
        await wait_until(lambda: other.feeding() == {endpoint.id}, timeout=10)
        await append(log_a, 100, 400)
        await wait_until(lambda: len(webhook_ids(receiver)) == 500, timeout=30)
        await asyncio.sleep(0.3)  # a late duplicate would show up now
        assert set(webhook_ids(receiver).values()) == {1}
        assert sorted(_event_offset(r.body) for r in receiver.requests) == list(range(500))
        assert await log_b.storage.get_offset(endpoint.consumer_name, "orders") == 500
    finally:
        for engine in engines:
            await engine.close()


async def test_the_feeder_lease_is_per_endpoint(
    two_logs: tuple[EventLog, EventLog], receiver: Receiver
) -> None:
    """Two endpoints: each is fed once in all; either engine may feed either."""
    log_a, log_b = two_logs
    engines = [engine_on(log_a), engine_on(log_b)]
    await engines[0].start()
    endpoints = [
        build_endpoint(
            EndpointSpec(url=f"http://127.0.0.1:{receiver.port}/{n}", stream="orders"),
            now=time.time(),
            head=0,
        )
        for n in ("one", "two")
    ]
    for ep in endpoints:
        await engines[0].put_endpoint(ep)
    await engines[1].start()
    try:
        await append(log_b, 100, 0)
        await wait_until(lambda: len(webhook_ids(receiver)) == 200, timeout=30)
        fed = engines[0].feeding() | engines[1].feeding()
        assert fed == {ep.id for ep in endpoints}
        assert not engines[0].feeding() & engines[1].feeding()
        assert set(webhook_ids(receiver).values()) == {1}
        per_path = Counter(r.path for r in receiver.requests)
        assert per_path == {"/one": 100, "/two": 100}
    finally:
        for engine in engines:
            await engine.close()


def _event_offset(body: bytes) -> int:
    offset = json.loads(body)["offset"]
    assert isinstance(offset, int)
    return offset
