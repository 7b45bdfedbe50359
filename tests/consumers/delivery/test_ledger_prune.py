"""Delivery history retention: ``LedgerStore.prune`` on every backend's ledger, and the
engine pruning on its own (real SQLite files)."""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
import pytest

from consumers.delivery.engine import DeliveryEngine
from consumers.delivery.ledger import LedgerStore, act
from consumers.delivery.stores import ledger_for
from consumers.delivery_setup import start_engine
from consumers.notify.spec import NotificationsConfig
from consumers.webhook import WEBHOOK, WebhooksConfig
from eventlog import EventLog
from eventlog.storage.sqlite import SQLiteStorage
from tests.consumers.delivery.calls import claim, enqueue, finish
from tests.consumers.delivery.test_ledger import NOW, done, rows
from tests.support import wait_until

DAY = 86400.0


@pytest.fixture
async def ledger(any_log: EventLog) -> LedgerStore:
    store = ledger_for(any_log)
    await store.open()
    return store


async def finished(
    store: LedgerStore, endpoint: str, status: str, at: float, *offsets: int
) -> None:
    """Rows of ``endpoint`` at ``offsets``, claimed and finished as ``status`` at ``at``."""
    await enqueue(store, endpoint, rows(*offsets), consumer=None, now=NOW)
    claimed = (await claim(store, endpoint, "concurrent", NOW, len(offsets))).rows
    assert len(claimed) == len(offsets)
    outcome = [
        msgspec.structs.replace(done(d.id, status), endpoint_id=endpoint, now=at) for d in claimed
    ]
    await finish(store, outcome)


async def test_prune_deletes_old_finished_rows_with_their_attempts_only(
    ledger: LedgerStore,
) -> None:
    store = ledger
    await finished(store, "ep", "delivered", NOW, 0, 1)
    await finished(store, "ep", "failed", NOW + 1, 2)
    await finished(store, "ep", "delivered", NOW + 10 * DAY, 3)  # recent
    await finished(store, "shared:c", "delivered", NOW, 0)  # a shared consumer's acked row
    await enqueue(store, "ep", rows(4), consumer=None, now=NOW - DAY)  # pending, old
    await enqueue(store, "ep", rows(5, at=NOW + 99 * DAY), consumer=None, now=NOW - DAY)
    (in_flight,) = (await claim(store, "ep", "concurrent", NOW, 1)).rows  # offset 4
    gone = {d.id for d in await store.deliveries("ep") if d.offset in (0, 1, 2)}

    assert await store.prune(NOW + 5 * DAY, 1000) == 4
    left = {d.offset: d.status for d in await store.deliveries("ep")}
    assert left == {3: "delivered", 4: "in_flight", 5: "pending"}
    assert await store.deliveries("shared:c") == []
    assert all([await store.delivery("ep", i) is None for i in gone])
    kept = await store.delivery("ep", (await store.deliveries("ep", status="delivered"))[0].id)
    assert kept is not None
    assert len(kept[1]) == 1  # its attempt stays
    counts = (await store.counts())["ep"]
    assert (counts.pending, counts.in_flight) == (1, 1)
    assert in_flight.offset == 4
    assert await store.prune(NOW + 5 * DAY, 1000) == 0


async def test_prune_deletes_at_most_limit_rows_oldest_first(ledger: LedgerStore) -> None:
    store = ledger
    for i in range(5):
        await finished(store, "ep", "delivered", NOW + i, i)
    assert await store.prune(NOW + DAY, 2) == 2
    assert [d.offset for d in await store.deliveries("ep")] == [2, 3, 4]
    assert await store.prune(NOW + DAY, 2) == 2
    assert await store.prune(NOW + DAY, 2) == 1
    assert await store.deliveries("ep") == []


async def test_a_retried_row_leaves_history_and_is_kept(ledger: LedgerStore) -> None:
    store = ledger
    await finished(store, "ep", "failed", NOW, 0)
    (d,) = await store.deliveries("ep")
    await act(store, "ep", d.id, "retry", NOW + 1)
    assert await store.prune(NOW + DAY, 100) == 0
    assert [r.status for r in await store.deliveries("ep")] == ["pending"]


async def test_engine_prunes_at_start_and_in_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("consumers.delivery.history.PRUNE_CHUNK", 3)
    async with EventLog.open(tmp_path / "events.db") as log:
        store = ledger_for(log)
        await store.open()
        await finished(store, "ep", "delivered", NOW, *range(7))
        await finished(store, "ep", "delivered", NOW + 20 * DAY, 7)
        clock = lambda: NOW + 31 * DAY  # noqa: E731
        passes: list[tuple[float, int, int]] = []
        prune = store.prune

        async def spy(before: float, limit: int) -> int:
            passes.append((before, limit, n := await prune(before, limit)))
            return n

        monkeypatch.setattr(store, "prune", spy)
        engine = DeliveryEngine(log, store, kinds={"webhook": WEBHOOK}, clock=clock)
        await engine.start()
        try:
            await wait_until(lambda: len(passes) >= 3, what="three prune passes")
            # 30 days before the clock, 3 rows a transaction until a pass comes short
            assert passes == [(NOW + DAY, 3, 3), (NOW + DAY, 3, 3), (NOW + DAY, 3, 1)]
            assert [d.offset for d in await store.deliveries("ep")] == [7]
            assert isinstance(log.storage, SQLiteStorage)
            attempts = await log.storage.query(
                lambda c: c.execute("SELECT delivery_id FROM webhook_attempts").fetchall()
            )
            assert attempts == [((await store.deliveries("ep"))[0].id,)]  # the kept row's only
        finally:
            await engine.close()


async def only_one(store: LedgerStore) -> bool:
    return len(await store.deliveries("ep")) == 1


async def test_engine_prunes_periodically_with_a_short_keep_history(tmp_path: Path) -> None:
    async with EventLog.open(tmp_path / "events.db") as log:
        store = ledger_for(log)
        engine = DeliveryEngine(log, store, kinds={"webhook": WEBHOOK}, keep_history=0.3)
        await engine.start()
        try:
            await finished(store, "ep", "delivered", time.time(), 0)
            await enqueue(store, "ep", rows(1, at=time.time() + 3600), consumer=None, now=NOW)
            await wait_until(lambda: only_one(store), what="the finished row pruned")
            assert [(d.offset, d.status) for d in await store.deliveries("ep")] == [(1, "pending")]
        finally:
            await engine.close()


async def test_keep_history_must_be_positive(memory_log: EventLog) -> None:
    with pytest.raises(ValueError, match="keep_history"):
        DeliveryEngine(memory_log, ledger_for(memory_log), kinds={}, keep_history=0)


async def test_the_server_engine_keeps_history_as_configured(memory_log: EventLog) -> None:
    webhooks = WebhooksConfig(keep_history=3600)
    engine = await start_engine(memory_log, webhooks, NotificationsConfig())
    assert engine is not None
    try:
        assert engine.keep_history == 3600
    finally:
        await engine.close()
