"""LedgerStore.rewrite, the pulled-delivery operation, on every backend's ledger."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import pytest

from consumers.delivery.ledger import LedgerStore, Pick, Rewrite
from consumers.delivery.model import Delivery
from consumers.delivery.stores import ledger_for
from eventlog import EventLog
from eventlog.errors import Conflict
from tests.consumers.delivery import calls
from tests.consumers.delivery.test_ledger import NOW, rows


@pytest.fixture
async def ledger(any_log: EventLog) -> LedgerStore:
    store = ledger_for(any_log)
    await store.open()
    return store


async def enqueue(store: LedgerStore, endpoint: str, *offsets: int) -> list[str]:
    new = rows(*offsets)
    await calls.enqueue(store, endpoint, new, consumer=None, now=NOW)
    return [r.id for r in new]


def claim_all(rows: list[Delivery]) -> Rewrite[list[int]]:
    new = [
        msgspec.structs.replace(
            d, status="in_flight", attempts=d.attempts + 1, next_attempt_at=NOW + 30, updated=NOW
        )
        for d in rows
    ]
    return Rewrite(new, [d.offset for d in rows])


async def test_rewrite_of_the_active_window_stores_the_decision_in_seq_order(
    ledger: LedgerStore,
) -> None:
    await enqueue(ledger, "a", 0, 1, 2)
    await enqueue(ledger, "b", 0)
    assert await ledger.rewrite("a", Pick(active=2), claim_all) == [0, 1]
    stored = await ledger.deliveries("a")
    assert [(d.status, d.attempts, d.next_attempt_at) for d in stored] == [
        ("in_flight", 1, NOW + 30),
        ("in_flight", 1, NOW + 30),
        ("pending", 0, NOW),
    ]
    # in-flight rows stay in the window; finished ones leave it
    delivered = msgspec.structs.replace(stored[0], status="delivered", updated=NOW + 1)
    assert await ledger.rewrite("a", Pick(active=10), lambda r: Rewrite([delivered], len(r))) == 3
    assert await ledger.rewrite("a", Pick(active=10), lambda r: Rewrite([], [d.offset for d in r]))
    assert [d.status for d in await ledger.deliveries("b")] == ["pending"]


async def test_rewrite_by_ids_sees_only_that_endpoints_rows_whatever_their_status(
    ledger: LedgerStore,
) -> None:
    a0, a1 = await enqueue(ledger, "a", 0, 1)
    (b0,) = await enqueue(ledger, "b", 0)
    await ledger.rewrite("a", Pick(ids=(a0,)), claim_all)
    seen = await ledger.rewrite(
        "a",
        Pick(ids=(a1, a0, b0, "msg_unknown", a0)),
        lambda r: Rewrite([], [(d.id, d.status) for d in r]),
    )
    assert seen == [(a0, "in_flight"), (a1, "pending")]


async def test_a_refused_rewrite_writes_nothing(ledger: LedgerStore) -> None:
    ids = await enqueue(ledger, "a", 0, 1)

    def refuse(rows: list[Delivery]) -> Rewrite[None]:
        raise Conflict("no")

    with pytest.raises(Conflict):
        await ledger.rewrite("a", Pick(ids=tuple(ids)), refuse)
    assert [d.status for d in await ledger.deliveries("a")] == ["pending", "pending"]


def offsets(rows: list[Delivery]) -> Rewrite[list[int]]:
    return Rewrite([], [d.offset for d in rows])


def later(by: float) -> Callable[[list[Delivery]], Rewrite[None]]:
    def decide(rows: list[Delivery]) -> Rewrite[None]:
        return Rewrite([msgspec.structs.replace(d, next_attempt_at=NOW + by) for d in rows], None)

    return decide


async def test_a_due_pick_reads_the_due_rows_and_the_pending_one_due_next(
    ledger: LedgerStore,
) -> None:
    ids = await enqueue(ledger, "a", 0, 1, 2, 3, 4)
    await ledger.rewrite("a", Pick(ids=(ids[0],)), claim_all)  # claimed until NOW + 30
    await ledger.rewrite("a", Pick(ids=(ids[1],)), claim_all)
    await ledger.rewrite("a", Pick(ids=(ids[1],)), later(20))  # claimed until NOW + 20
    await ledger.rewrite("a", Pick(ids=(ids[2],)), later(10))  # pending, due at NOW + 10
    # due: 3 and 4 (only one wanted); next to become due: 2
    assert await ledger.rewrite("a", Pick(active=1, due=NOW), offsets) == [2, 3]
    # due: 2, 3, 4 (two wanted); no pending row is due later (claims expiring are not looked for)
    assert await ledger.rewrite("a", Pick(active=2, due=NOW + 15), offsets) == [2, 3]
    assert await ledger.rewrite("a", Pick(active=9, due=NOW + 30), offsets) == [0, 1, 2, 3, 4]
    assert await ledger.rewrite("b", Pick(active=9, due=NOW), offsets) == []
