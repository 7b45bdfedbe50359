"""The recorder: a batch being written at close is finished, not cancelled; a failed
write fails its claims and enqueues and keeps its outcomes."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest

from consumers.delivery.ledger import Claimed, ClaimRequest, Enqueue, LedgerStore
from consumers.delivery.model import Finished
from consumers.delivery.recorder import Recorder
from eventlog.errors import StorageError
from tests.support import wait_until


class SlowStore:
    """Only what the recorder calls: ``write``, which waits until let go."""

    def __init__(self) -> None:
        self.writing = asyncio.Event()
        self.let_go = asyncio.Event()
        self.stored: list[str] = []

    async def write(
        self, enqueues: list[object], items: list[Finished], claims: list[object], now: float
    ) -> tuple[list[int], list[object]]:
        self.writing.set()
        await self.let_go.wait()
        self.stored.extend(item.delivery_id for item in items)
        return [], []


class Owner:
    def __init__(self) -> None:
        self.told: list[str] = []

    def recorded(self, finished: list[Finished]) -> None:
        self.told.extend(item.delivery_id for item in finished)


def finished(delivery_id: str) -> Finished:
    return Finished(
        delivery_id=delivery_id,
        endpoint_id="ep",
        attempt=None,
        status="pending",
        attempts=1,
        rate_limited=0,
        next_attempt_at=None,
        now=0.0,
    )


async def test_close_while_a_batch_is_written_stores_it_and_what_came_after() -> None:
    store = SlowStore()
    owner = Owner()
    recorder = Recorder(cast(LedgerStore, store))
    recorder.start()
    recorder.put_nowait(finished("d1"), owner)
    await asyncio.wait_for(store.writing.wait(), 5)
    recorder.put_nowait(finished("d2"), owner)  # arrives while d1's batch is written
    closing = asyncio.create_task(recorder.close())
    await asyncio.sleep(0.01)
    assert not closing.done()  # close waits for the batch instead of cancelling it
    store.let_go.set()
    await asyncio.wait_for(closing, 5)
    assert store.stored == ["d1", "d2"]
    assert owner.told == ["d1", "d2"]


class FailingOnceStore:
    """``write`` fails the first time (a storage error), then stores the outcomes."""

    def __init__(self) -> None:
        self.calls = 0
        self.stored: list[str] = []

    async def write(
        self, enqueues: list[Enqueue], items: list[Finished], claims: list[object], now: float
    ) -> tuple[list[int], list[Claimed]]:
        self.calls += 1
        if self.calls == 1:
            raise StorageError("disk I/O error")
        self.stored.extend(item.delivery_id for item in items)
        return [len(e.rows) for e in enqueues], [Claimed([], None) for _ in claims]


async def test_a_failed_write_fails_its_claims_and_enqueues_and_writes_the_outcomes_again() -> None:
    store = FailingOnceStore()
    owner = Owner()
    recorder = Recorder(cast(LedgerStore, store))
    recorder.start()
    claim = recorder.claim(ClaimRequest("ep", "concurrent", 10))
    enqueue = recorder.enqueue(Enqueue("ep", [], None))
    recorder.put_nowait(finished("d1"), owner)
    with pytest.raises(StorageError):
        await asyncio.wait_for(claim, 5)
    with pytest.raises(StorageError):
        await asyncio.wait_for(enqueue, 5)
    await wait_until(lambda: owner.told == ["d1"], 5, what="the outcome written on the retry")
    assert store.stored == ["d1"]
    assert store.calls == 2
    await recorder.close()


class PartsStore:
    """``write`` notes how many enqueues, outcomes and claims each transaction had."""

    def __init__(self) -> None:
        self.writes: list[tuple[int, int, int]] = []

    async def write(
        self, enqueues: list[Enqueue], items: list[Finished], claims: list[object], now: float
    ) -> tuple[list[int], list[Claimed]]:
        self.writes.append((len(enqueues), len(items), len(claims)))
        return [len(e.rows) for e in enqueues], [Claimed([], None) for _ in claims]


async def test_an_enqueue_outcomes_and_a_claim_queued_together_are_one_transaction() -> None:
    store = PartsStore()
    owner = Owner()
    recorder = Recorder(cast(LedgerStore, store))
    recorder.start()
    enqueued = recorder.enqueue(Enqueue("ep", [], None))
    recorder.put_nowait(finished("d1"), owner)
    recorder.put_nowait(finished("d2"), owner)
    claimed = recorder.claim(ClaimRequest("ep", "concurrent", 10))
    await asyncio.wait_for(asyncio.gather(enqueued, claimed), 5)
    assert store.writes == [(1, 2, 1)]
    assert owner.told == ["d1", "d2"]
    await recorder.close()
