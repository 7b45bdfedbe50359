"""The LedgerStore contract, run against every backend's ledger (memory, SQLite, PostgreSQL).

The ``ledger`` fixture takes the suite-wide ``any_log`` (tests/conftest.py),
so every test here runs on every backend; SQLite-only tests at the end take
their own log.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from consumers.delivery import stores
from consumers.delivery.ledger import (
    ClaimRequest,
    ConsumerAdvance,
    DeliveryConflict,
    Enqueue,
    LedgerStore,
    act,
)
from consumers.delivery.model import Attempt, Endpoint, Finished, NewDelivery, new_delivery_id
from consumers.delivery.sqlite_ledger import MemoryLedger, SQLiteLedger
from consumers.delivery.stores import ledger_for, register_ledger
from eventlog import EventLog, NewEvent, StorageError
from eventlog.storage.capabilities import Capabilities
from eventlog.storage.memory import MemoryStorage
from eventlog.storage.sqlite import SQLiteStorage
from tests.consumers.delivery.calls import claim, enqueue, finish

NOW = 1_700_000_000.0


@pytest.fixture
async def ledger(any_log: EventLog) -> tuple[LedgerStore, EventLog]:
    """The ledger that goes with each backend's log, opened, over a stream ``events``
    holding the offsets the rows name (a consumer advances at most to its head)."""
    await any_log.append_batch("events", [NewEvent(type="t", data=o) for o in range(5)])
    store = ledger_for(any_log)
    await store.open()
    return store, any_log


def rows(
    *offsets: int, key: str | None = None, replay: bool = False, at: float = NOW
) -> list[NewDelivery]:
    return [
        NewDelivery(
            id=new_delivery_id(),
            stream="events",
            offset=o,
            event_id=f"e{o}",
            event_type="t",
            key=key,
            next_attempt_at=at,
            replay=replay,
        )
        for o in offsets
    ]


async def sqlite_ledger(log: EventLog) -> SQLiteLedger:
    """An open SQLite ledger on ``log``'s storage."""
    assert isinstance(log.storage, SQLiteStorage)
    store = SQLiteLedger(log.storage)
    await store.open()
    return store


def done(d_id: str, status: str = "delivered", next_at: float | None = None) -> Finished:
    return Finished(
        delivery_id=d_id,
        endpoint_id="ep",
        attempt=Attempt(
            delivery_id=d_id,
            number=0,
            started=NOW,
            duration=0.01,
            status=200,
            error=None,
            verdict="delivered",
            response="ok",
        ),
        status=status,  # type: ignore[arg-type]
        attempts=1,
        rate_limited=0,
        next_attempt_at=next_at,
        now=NOW,
    )


async def test_enqueue_stores_rows_and_advances_the_consumer_together(
    ledger: tuple[LedgerStore, EventLog],
) -> None:
    store, log = ledger
    inserted = await enqueue(
        store, "ep", rows(0, 1, 2), consumer=ConsumerAdvance("webhook.ep", "events", 3), now=NOW
    )
    assert inserted == 3
    assert await log.storage.get_offset("webhook.ep", "events") == 3
    assert [d.offset for d in await store.deliveries("ep")] == [0, 1, 2]
    assert all(d.status == "pending" for d in await store.deliveries("ep"))


async def test_one_write_enqueues_records_and_claims_the_rows_it_just_enqueued(
    ledger: tuple[LedgerStore, EventLog],
) -> None:
    store, log = ledger
    await enqueue(store, "ep", rows(0), consumer=None, now=NOW)
    (first,) = (await claim(store, "ep", "concurrent", NOW, 10)).rows
    done = Finished(
        delivery_id=first.id,
        endpoint_id="ep",
        attempt=Attempt(
            delivery_id=first.id,
            number=0,
            started=NOW,
            duration=0.01,
            status=204,
            error=None,
            verdict="delivered",
        ),
        status="delivered",
        attempts=1,
        rate_limited=0,
        next_attempt_at=None,
        now=NOW,
    )
    advance = ConsumerAdvance("webhook.ep", "events", 3)
    inserted, (claimed,) = await store.write(
        [Enqueue("ep", rows(1, 2), advance)], [done], [ClaimRequest("ep", "concurrent", 10)], NOW
    )
    assert inserted == [2]
    assert [d.offset for d in claimed.rows] == [1, 2]  # the rows of the same transaction
    assert await log.storage.get_offset("webhook.ep", "events") == 3
    statuses = {d.offset: d.status for d in await store.deliveries("ep")}
    assert statuses == {0: "delivered", 1: "in_flight", 2: "in_flight"}


async def test_live_rows_are_never_enqueued_twice_but_replays_are(
    ledger: tuple[LedgerStore, EventLog],
) -> None:
    store, _ = ledger
    await enqueue(store, "ep", rows(0, 1), consumer=None, now=NOW)
    assert await enqueue(store, "ep", rows(1, 2), consumer=None, now=NOW) == 1
    assert await enqueue(store, "ep", rows(1, 2, replay=True), consumer=None, now=NOW) == 2
    offsets = [d.offset for d in await store.deliveries("ep")]
    assert offsets == [0, 1, 2, 1, 2]


async def test_concurrent_claim_takes_due_rows_and_says_when_to_look_again(
    ledger: tuple[LedgerStore, EventLog],
) -> None:
    store, _ = ledger
    await enqueue(store, "ep", rows(0, 1, 2) + rows(3, at=NOW + 50), consumer=None, now=NOW)
    claimed = await claim(store, "ep", "concurrent", NOW, 2)
    assert [d.offset for d in claimed.rows] == [0, 1]
    assert all(d.status == "in_flight" for d in claimed.rows)
    assert claimed.wake_at == NOW + 50
    again = await claim(store, "ep", "concurrent", NOW, 10)
    assert [d.offset for d in again.rows] == [2]
    assert (await claim(store, "ep", "concurrent", NOW, 10)).rows == []


async def test_a_concurrent_claim_returns_the_stored_rows_exactly(
    ledger: tuple[LedgerStore, EventLog],
) -> None:
    """Every field as stored (floats to the last bit, a key, a replay flag), but
    ``in_flight`` as of the claim: the SQLite ledger reads them back as one JSON value."""
    store, _ = ledger
    due = NOW + 0.123456789012
    new = rows(0, key="k-1", replay=True, at=due) + rows(1, at=due - 1e-6)
    await enqueue(store, "ep", new, consumer=None, now=NOW - 1 / 3)
    claimed = (await claim(store, "ep", "concurrent", due + 1 / 7, 10)).rows
    assert [d.id for d in claimed] == [new[1].id, new[0].id]  # earliest due first
    stored = {d.id: d for d in await store.deliveries("ep")}
    assert claimed == [stored[d.id] for d in claimed]
    first = claimed[1]
    assert (first.key, first.replay, first.next_attempt_at) == ("k-1", True, due)
    assert (first.created, first.updated, first.status) == (NOW - 1 / 3, due + 1 / 7, "in_flight")


async def test_ordered_claim_is_blocked_by_an_unfinished_head(
    ledger: tuple[LedgerStore, EventLog],
) -> None:
    store, _ = ledger
    await enqueue(store, "ep", rows(0, 1, 2), consumer=None, now=NOW)
    head = (await claim(store, "ep", "ordered", NOW, 10)).rows
    assert [d.offset for d in head] == [0]
    assert (await claim(store, "ep", "ordered", NOW, 10)).rows == []
    await finish(store, [done(head[0].id, "pending", NOW + 30)])
    blocked = await claim(store, "ep", "ordered", NOW, 10)
    assert blocked.rows == []
    assert blocked.wake_at == NOW + 30
    retried = await claim(store, "ep", "ordered", NOW + 30, 10)
    assert [d.offset for d in retried.rows] == [0]
    await finish(store, [done(retried.rows[0].id)])
    assert [d.offset for d in (await claim(store, "ep", "ordered", NOW + 30, 10)).rows] == [1]


async def test_per_key_claim_orders_within_a_key_only(
    ledger: tuple[LedgerStore, EventLog],
) -> None:
    store, _ = ledger
    await enqueue(
        store, "ep", rows(0, 1, key="a") + rows(2, 3, key="b") + rows(4, 5), consumer=None, now=NOW
    )
    first = await claim(store, "ep", "per-key", NOW, 10)
    assert sorted(d.offset for d in first.rows) == [0, 2, 4, 5]
    assert (await claim(store, "ep", "per-key", NOW, 10)).rows == []
    by_offset = {d.offset: d for d in first.rows}
    await finish(store, [done(by_offset[2].id)])
    assert [d.offset for d in (await claim(store, "ep", "per-key", NOW, 10)).rows] == [3]


async def test_finish_records_attempts_and_ignores_rows_no_longer_in_flight(
    ledger: tuple[LedgerStore, EventLog],
) -> None:
    store, _ = ledger
    await enqueue(store, "ep", rows(0), consumer=None, now=NOW)
    (d,) = (await claim(store, "ep", "concurrent", NOW, 1)).rows
    await finish(store, [done(d.id, "pending", NOW + 1)])
    await finish(store, [done(d.id)])  # not in flight any more: ignored
    got = await store.delivery("ep", d.id)
    assert got is not None
    delivery, attempts = got
    assert delivery.status == "pending"
    assert [a.number for a in attempts] == [1]
    (d,) = (await claim(store, "ep", "concurrent", NOW + 1, 1)).rows
    await finish(store, [done(d.id)])
    got = await store.delivery("ep", d.id)
    assert got is not None
    assert got[0].status == "delivered"
    assert [a.number for a in got[1]] == [1, 2]
    assert await store.delivery("other", d.id) is None


async def test_recover_returns_in_flight_rows_to_pending(
    ledger: tuple[LedgerStore, EventLog],
) -> None:
    store, _ = ledger
    await enqueue(store, "ep", rows(0, 1), consumer=None, now=NOW)
    await claim(store, "ep", "concurrent", NOW, 10)
    assert (await store.counts())["ep"].in_flight == 2
    assert await store.recover(NOW + 5) == 2
    counts = (await store.counts())["ep"]
    assert (counts.pending, counts.in_flight, counts.oldest_pending) == (2, 0, NOW)
    assert len((await claim(store, "ep", "concurrent", NOW + 5, 10)).rows) == 2


async def test_operator_retry_and_skip(ledger: tuple[LedgerStore, EventLog]) -> None:
    store, _ = ledger
    await enqueue(store, "ep", rows(0, 1), consumer=None, now=NOW)
    a, b = (await claim(store, "ep", "concurrent", NOW, 10)).rows
    with pytest.raises(DeliveryConflict):
        await act(store, "ep", a.id, "retry", NOW)
    await finish(store, [done(a.id, "failed"), done(b.id, "pending", NOW + 100)])
    retried = await act(store, "ep", a.id, "retry", NOW + 1)
    assert retried is not None
    assert (retried.status, retried.budget_start, retried.next_attempt_at) == (
        "pending",
        1,
        NOW + 1,
    )
    skipped = await act(store, "ep", b.id, "skip", NOW + 1)
    assert skipped is not None
    assert skipped.status == "failed"
    with pytest.raises(DeliveryConflict):
        await act(store, "ep", b.id, "skip", NOW + 2)
    assert await act(store, "ep", "msg_unknown", "retry", NOW) is None
    assert [d.id for d in await store.deliveries("ep", status="failed")] == [b.id]


async def test_listing_pages_by_sequence(ledger: tuple[LedgerStore, EventLog]) -> None:
    store, _ = ledger
    await enqueue(store, "ep", rows(*range(10)), consumer=None, now=NOW)
    first = await store.deliveries("ep", limit=4)
    assert [d.offset for d in first] == [0, 1, 2, 3]
    rest = await store.deliveries("ep", from_seq=first[-1].seq + 1, limit=100)
    assert [d.offset for d in rest] == [4, 5, 6, 7, 8, 9]


async def test_endpoints_round_trip_and_delete_cascades(
    ledger: tuple[LedgerStore, EventLog],
) -> None:
    store, _ = ledger
    ep = Endpoint(id="ep", url="http://127.0.0.1:9/", types=["a.*"], headers={"X-Key": "k"})
    await store.put_endpoint(ep)
    assert await store.get_endpoint("ep") == ep
    await enqueue(store, "ep", rows(0), consumer=None, now=NOW)
    assert [e.id for e in await store.endpoints()] == ["ep"]
    assert await store.delete_endpoint("ep")
    assert not await store.delete_endpoint("ep")
    assert await store.get_endpoint("ep") is None
    assert await store.deliveries("ep") == []


async def test_sqlite_enqueue_is_all_or_nothing(tmp_path: Path) -> None:
    async with EventLog.open(tmp_path / "events.db") as log:
        store = await sqlite_ledger(log)
        broken = [
            *rows(0),
            NewDelivery(
                id=new_delivery_id(),
                stream="events",
                offset=[1],  # type: ignore[arg-type]  # cannot be bound: the insert fails
                event_id="e1",
                event_type="t",
                key=None,
                next_attempt_at=NOW,
            ),
        ]
        with pytest.raises(StorageError):
            await enqueue(
                store, "ep", broken, consumer=ConsumerAdvance("webhook.ep", "events", 2), now=NOW
            )
        assert await log.storage.get_offset("webhook.ep", "events") is None
        assert await store.deliveries("ep") == []


async def test_sqlite_ledger_survives_reopening(tmp_path: Path) -> None:
    async with EventLog.open(tmp_path / "events.db") as log:
        store = await sqlite_ledger(log)
        await enqueue(
            store, "ep", rows(0, 1), consumer=ConsumerAdvance("webhook.ep", "events", 2), now=NOW
        )
        await claim(store, "ep", "concurrent", NOW, 1)
    async with EventLog.open(tmp_path / "events.db") as log:
        store = await sqlite_ledger(log)
        assert await log.storage.get_offset("webhook.ep", "events") == 2
        assert await store.recover(NOW) == 1
        assert [d.status for d in await store.deliveries("ep")] == ["pending", "pending"]


class Durable(MemoryStorage):
    """A stand-in for a durable backend that has no database for a ledger."""

    def __init__(self) -> None:
        super().__init__()
        self.capabilities = Capabilities(kind="elsewhere", durable=True)


def test_a_backend_without_a_ledger_is_refused_not_given_a_memory_one() -> None:
    class Elsewhere(MemoryStorage):
        pass

    assert isinstance(ledger_for(EventLog(Elsewhere())), MemoryLedger)
    with pytest.raises(ValueError, match="no delivery ledger"):
        ledger_for(EventLog(Durable()))


def test_a_registered_ledger_serves_the_backend_kind_it_was_registered_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stores, "_registry", {})
    made: list[EventLog] = []

    def factory(log: EventLog) -> LedgerStore:
        made.append(log)
        return MemoryLedger(log)

    register_ledger("elsewhere", factory)
    log = EventLog(Durable())
    assert isinstance(ledger_for(log), MemoryLedger)
    assert made == [log]
