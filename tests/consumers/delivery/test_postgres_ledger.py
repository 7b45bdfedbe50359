"""The webhook delivery ledger on PostgreSQL: what only a shared database has.

The ``LedgerStore`` contract runs on PostgreSQL with every other backend in
tests/consumers/delivery/test_ledger.py (its fixture is parametrised over all of them);
the tests here add several processes claiming from one ledger.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from consumers.delivery.ledger import ConsumerAdvance, LedgerStore
from consumers.delivery.model import NewDelivery, new_delivery_id
from consumers.delivery.postgres_ledger import PostgresLedger
from eventlog import EventLog, StorageError
from eventlog.storage.postgres import PostgresStorage
from tests.consumers.delivery.calls import claim, enqueue
from tests.consumers.delivery.test_ledger import NOW, rows


@pytest.fixture
async def pg_ledger(pg_url: str) -> AsyncIterator[tuple[LedgerStore, EventLog]]:
    """A ledger on a PostgreSQL log."""
    async with EventLog.open(pg_url, retention_interval=0) as log:
        assert isinstance(log.storage, PostgresStorage)
        store = PostgresLedger(log.storage)
        await store.open()
        yield store, log


@pytest.fixture
async def two(pg_url: str) -> AsyncIterator[tuple[PostgresLedger, PostgresLedger]]:
    """Two ledgers on two storages: two processes, as far as PostgreSQL can tell."""
    storages = [PostgresStorage(pg_url), PostgresStorage(pg_url)]
    for s in storages:
        await s.open()
    ledgers = (PostgresLedger(storages[0]), PostgresLedger(storages[1]))
    for ledger in ledgers:
        await ledger.open()
    try:
        yield ledgers
    finally:
        for s in storages:
            await s.close()


async def test_processes_claiming_at_once_get_disjoint_deliveries(
    two: tuple[PostgresLedger, PostgresLedger],
) -> None:
    a, b = two
    await enqueue(a, "ep", rows(*range(200)), consumer=None, now=NOW)
    claimed: list[str] = []

    async def worker(ledger: PostgresLedger) -> None:
        while True:
            got = (await claim(ledger, "ep", "concurrent", NOW, 7)).rows
            if not got:
                return
            claimed.extend(d.id for d in got)

    await asyncio.gather(*(worker(x) for x in (a, b, a, b)))
    assert len(claimed) == 200
    assert len(set(claimed)) == 200  # nothing claimed twice


async def test_ordered_head_in_flight_in_one_process_blocks_the_other(
    two: tuple[PostgresLedger, PostgresLedger],
) -> None:
    a, b = two
    await enqueue(a, "ep", rows(0, 1, 2), consumer=None, now=NOW)
    results = await asyncio.gather(
        claim(a, "ep", "ordered", NOW, 10), claim(b, "ep", "ordered", NOW, 10)
    )
    assert sorted(len(r.rows) for r in results) == [0, 1]
    assert [d.offset for r in results for d in r.rows] == [0]


async def test_recover_leaves_a_live_process_alone_and_takes_back_a_dead_ones(
    pg_url: str,
) -> None:
    holder_storage = PostgresStorage(pg_url)
    other_storage = PostgresStorage(pg_url)
    await holder_storage.open()
    await other_storage.open()
    try:
        holder, other = PostgresLedger(holder_storage), PostgresLedger(other_storage)
        await holder.open()
        await other.open()
        await enqueue(holder, "ep", rows(0, 1), consumer=None, now=NOW)
        assert len((await claim(holder, "ep", "concurrent", NOW, 10)).rows) == 2
        assert await other.recover(NOW) == 0  # the holder is alive: its sends go on
        await holder_storage.close()  # the holder's process is gone
        assert await other.recover(NOW + 1) == 2
        assert len((await claim(other, "ep", "concurrent", NOW + 1, 10)).rows) == 2
    finally:
        await holder_storage.close()
        await other_storage.close()


async def test_enqueue_is_all_or_nothing(pg_ledger: tuple[LedgerStore, EventLog]) -> None:
    store, log = pg_ledger
    broken = [
        *rows(0),
        NewDelivery(
            id=new_delivery_id(),
            stream="events",
            offset="not a number",  # type: ignore[arg-type]  # cannot be encoded
            event_id="e1",
            event_type="t",
            key=None,
            next_attempt_at=NOW,
        ),
    ]
    with pytest.raises((StorageError, TypeError, ValueError)):
        await enqueue(
            store, "ep", broken, consumer=ConsumerAdvance("webhook.ep", "events", 2), now=NOW
        )
    assert await log.storage.get_offset("webhook.ep", "events") is None
    assert await store.deliveries("ep") == []
