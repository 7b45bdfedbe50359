"""Delivery shared by several processes on one PostgreSQL database.

Claims carry the claiming process's owner token; rows claimed by a process
that died go back to ``pending`` while the others run (the orphan sweep,
docs/webhooks.md "Several server processes"); every engine claims and sends,
not only the one that feeds; an endpoint stored, changed or deleted through
one engine reaches the others without a restart. Engines on their own
storages are separate processes as far as PostgreSQL can tell (own
connections, advisory locks and LISTEN session); the test with real ``serve``
processes is tests/consumers/delivery/test_pg_scaleout_serve.py.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from aiohttp import web

from consumers.delivery.engine import DeliveryEngine
from consumers.delivery.feeder import new_delivery
from consumers.delivery.ledger import ConsumerAdvance
from consumers.delivery.model import Endpoint
from consumers.delivery.postgres_ledger import PostgresLedger
from consumers.delivery.retry import AttemptResult, Classification
from consumers.delivery.stores import ledger_for
from consumers.webhook import WEBHOOK, EndpointSpec, build_endpoint
from eventlog import EventLog, NewEvent
from eventlog.storage.postgres import PostgresStorage
from tests.consumers.delivery.calls import claim, enqueue
from tests.consumers.delivery.receiver import Received, Receiver
from tests.support import scaled, wait_until

CHILD = Path(__file__).with_name("pg_claim_child.py")
#: The engine's default lease period (``lease_retry``): docs/webhooks.md promises 2x.
LEASE_PERIOD = 1.0


@pytest.fixture
async def pg_log(pg_url: str) -> AsyncIterator[EventLog]:
    """A log on a fresh PostgreSQL database."""
    async with EventLog.open(pg_url, retention_interval=0) as log:
        yield log


def engine_on(
    log: EventLog, attempts: Counter[str] | None = None, name: str = ""
) -> DeliveryEngine:
    """An engine; ``attempts[name]`` counts the attempts it makes."""

    def count(ep: Endpoint, c: Classification, r: AttemptResult, status: str) -> None:
        if attempts is not None:
            attempts[name] += 1

    return DeliveryEngine(
        log, ledger_for(log), kinds={"webhook": WEBHOOK}, allow_private=True, on_attempt=count
    )


def endpoint(url: str, **spec: object) -> Endpoint:
    return build_endpoint(
        EndpointSpec(url=url, stream="orders", retry="short", **spec),  # type: ignore[arg-type]
        now=time.time(),
        head=0,
    )


async def test_every_engine_claims_and_sends_not_only_the_feeding_one(
    two_logs: tuple[EventLog, EventLog],
) -> None:
    in_progress = 0
    most = 0

    async def slow(request: web.Request, received: Received) -> web.StreamResponse:
        nonlocal in_progress, most
        in_progress += 1
        most = max(most, in_progress)
        try:
            await asyncio.sleep(0.3)
        finally:
            in_progress -= 1
        return web.Response(status=204)

    receiver = await Receiver(behaviour=slow).start()
    attempts: Counter[str] = Counter()
    engines = [engine_on(log, attempts, name) for log, name in zip(two_logs, "ab", strict=True)]
    try:
        for engine in engines:
            await engine.start()
        ep = endpoint(receiver.url(), max_in_flight=4)
        await engines[0].put_endpoint(ep)
        await two_logs[0].append_batch(
            "orders", [NewEvent(type="t", data={"n": n}) for n in range(24)]
        )
        await receiver.wait_for(24, timeout=scaled(15))
        await wait_until(lambda: sum(attempts.values()) == 24, 5, what="24 attempts recorded")
    finally:
        for engine in engines:
            await engine.close()
        await receiver.stop()
    # Both engines sent, so the receiver saw more at once than one engine allows.
    assert attempts["a"] > 0, attempts
    assert attempts["b"] > 0, attempts
    assert most > 4, most
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 24


async def test_endpoint_changes_through_one_engine_reach_the_other_without_a_restart(
    pg_url: str, two_logs: tuple[EventLog, EventLog], receiver: Receiver
) -> None:
    log_a, log_b = two_logs
    a, b = engine_on(log_a), engine_on(log_b)
    await a.start()
    await b.start()
    third: DeliveryEngine | None = None
    try:
        ep = endpoint(receiver.url("/one"))
        await a.put_endpoint(ep)
        changed = msgspec.structs.replace(ep, url=receiver.url("/two"))
        await a.put_endpoint(changed)
        await a.close()  # only b is left to feed and send
        await log_a.append("orders", {"n": 0}, type="t")
        started = time.monotonic()
        await receiver.wait_for(1, timeout=scaled(5))
        assert time.monotonic() - started < scaled(3)
        assert [r.path for r in receiver.requests] == ["/two"]
        assert b.feeding() == {ep.id}

        # Deleted through another engine: b stops it within a second.
        third = engine_on(log_a)
        await third.start()
        assert await third.delete_endpoint(ep.id)
        await wait_until(lambda: not b.feeding(), 1, what="the deletion reached b")
    finally:
        for engine in (a, b, third):
            if engine is not None:
                await engine.close()


async def claimed_by(log: EventLog) -> dict[str | None, int]:
    """In-flight rows per owner token."""
    storage = log.storage
    assert isinstance(storage, PostgresStorage)
    rows = await storage.query(
        lambda c: c.fetch(
            f"SELECT claimed_by, count(*) FROM {storage.schema}.webhook_deliveries "
            "WHERE status = 'in_flight' GROUP BY claimed_by"
        )
    )
    return {owner: int(n) for owner, n in rows}


async def test_rows_claimed_by_a_killed_process_are_sent_within_two_lease_periods(
    pg_url: str, pg_log: EventLog, receiver: Receiver
) -> None:
    store = ledger_for(pg_log)
    assert isinstance(store, PostgresLedger)
    await store.open()
    now = time.time()
    ep = build_endpoint(
        EndpointSpec(url=receiver.url(), stream="orders", retry="short"), now=now, head=0
    )
    await store.put_endpoint(ep)
    await pg_log.append_batch("orders", [NewEvent(type="t", data={"n": n}) for n in range(20)])
    events = await pg_log.read("orders", 0, 100)
    rows = [new_delivery(e, now, replay=False) for e in events]
    advance = ConsumerAdvance(ep.consumer_name, "orders", 20)
    assert await enqueue(store, ep.id, rows, consumer=advance, now=now) == 20

    with subprocess.Popen(
        [sys.executable, str(CHILD), pg_url, ep.id], stdout=subprocess.PIPE, text=True
    ) as child:
        try:
            assert child.stdout is not None
            line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), scaled(20))
            token, count = line.split()
            assert count == "20"
            # The claim says which process holds it: host, pid, a random part.
            assert token.split(":")[1] == str(child.pid)
            assert await claimed_by(pg_log) == {token: 20}

            engine = DeliveryEngine(pg_log, store, kinds={"webhook": WEBHOOK}, allow_private=True)
            await engine.start()
            try:
                # The holder is alive: a sweep leaves its claims alone.
                assert await store.sweep(time.time()) == {}
                assert await claimed_by(pg_log) == {token: 20}
                assert receiver.requests == []

                child.send_signal(signal.SIGKILL)
                killed = time.monotonic()
                await receiver.wait_for(20, timeout=scaled(10))
                elapsed = time.monotonic() - killed
                assert token not in await claimed_by(pg_log)
            finally:
                await engine.close()
        finally:
            child.kill()
    # Back to pending by the running engine's sweep, then claimed and sent.
    assert elapsed <= 2 * LEASE_PERIOD + scaled(0.5), elapsed
    webhook_ids = [r.headers["webhook-id"] for r in receiver.requests]
    assert sorted(webhook_ids) == sorted(r.id for r in rows)  # the same id per event


async def test_claims_without_an_owner_are_left_to_their_own_expiry(pg_log: EventLog) -> None:
    # A shared consumer's worker claims rows through rewrite(): in flight,
    # without an owner, expiring by ack_wait. Neither sweep may take them.
    store = ledger_for(pg_log)
    assert isinstance(store, PostgresLedger)
    await store.open()
    now = time.time()
    await pg_log.append_batch("orders", [NewEvent(type="t", data=n) for n in range(2)])
    rows = [new_delivery(e, now, replay=False) for e in await pg_log.read("orders", 0, 10)]
    await enqueue(store, "ep", rows, consumer=None, now=now)
    storage = pg_log.storage
    assert isinstance(storage, PostgresStorage)
    await storage.transact(
        lambda c: c.execute(
            f"UPDATE {storage.schema}.webhook_deliveries SET status = 'in_flight' WHERE id = $1",
            rows[0].id,
        )
    )
    mine = await claim(store, "ep", "concurrent", now, 10)
    assert [d.id for d in mine.rows] == [rows[1].id]
    assert await store.sweep(now) == {}
    assert await claimed_by(pg_log) == {None: 1, store.token: 1}
    assert await store.recover(now) == 1  # at start-up: this owner's own claims only
    assert await claimed_by(pg_log) == {None: 1}
