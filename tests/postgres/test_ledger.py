"""The webhook delivery ledger on PostgreSQL.

The unchanged ``LedgerStore`` contract of tests/webhooks/test_ledger.py runs
here behind a PostgreSQL ``ledger`` fixture; the tests below add what only a
shared database has: several processes claiming from one ledger.
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
from tests.webhooks.test_ledger import (
    NOW,
    rows,
    test_concurrent_claim_takes_due_rows_and_says_when_to_look_again,
    test_endpoints_round_trip_and_delete_cascades,
    test_enqueue_stores_rows_and_advances_the_consumer_together,
    test_finish_records_attempts_and_ignores_rows_no_longer_in_flight,
    test_listing_pages_by_sequence,
    test_live_rows_are_never_enqueued_twice_but_replays_are,
    test_operator_retry_and_skip,
    test_ordered_claim_is_blocked_by_an_unfinished_head,
    test_per_key_claim_orders_within_a_key_only,
    test_recover_returns_in_flight_rows_to_pending,
)

__all__ = [  # the contract, collected here against PostgreSQL
    "test_concurrent_claim_takes_due_rows_and_says_when_to_look_again",
    "test_endpoints_round_trip_and_delete_cascades",
    "test_enqueue_stores_rows_and_advances_the_consumer_together",
    "test_finish_records_attempts_and_ignores_rows_no_longer_in_flight",
    "test_listing_pages_by_sequence",
    "test_live_rows_are_never_enqueued_twice_but_replays_are",
    "test_operator_retry_and_skip",
    "test_ordered_claim_is_blocked_by_an_unfinished_head",
    "test_per_key_claim_orders_within_a_key_only",
    "test_recover_returns_in_flight_rows_to_pending",
]


@pytest.fixture
async def ledger(pg_url: str) -> AsyncIterator[tuple[LedgerStore, EventLog]]:
    """The contract's fixture, on PostgreSQL."""
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
    await a.enqueue("ep", rows(*range(200)), consumer=None, now=NOW)
    claimed: list[str] = []

    async def worker(ledger: PostgresLedger) -> None:
        while True:
            got = (await ledger.claim("ep", "concurrent", NOW, 7)).rows
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
    await a.enqueue("ep", rows(0, 1, 2), consumer=None, now=NOW)
    results = await asyncio.gather(
        a.claim("ep", "ordered", NOW, 10), b.claim("ep", "ordered", NOW, 10)
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
        await holder.enqueue("ep", rows(0, 1), consumer=None, now=NOW)
        assert len((await holder.claim("ep", "concurrent", NOW, 10)).rows) == 2
        assert await other.recover(NOW) == 0  # the holder is alive: its sends go on
        await holder_storage.close()  # the holder's process is gone
        assert await other.recover(NOW + 1) == 2
        assert len((await other.claim("ep", "concurrent", NOW + 1, 10)).rows) == 2
    finally:
        await holder_storage.close()
        await other_storage.close()


async def test_enqueue_is_all_or_nothing(ledger: tuple[LedgerStore, EventLog]) -> None:
    store, log = ledger
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
        await store.enqueue(
            "ep", broken, consumer=ConsumerAdvance("webhook.ep", "events", 2), now=NOW
        )
    assert await log.storage.get_offset("webhook.ep", "events") is None
    assert await store.deliveries("ep") == []
