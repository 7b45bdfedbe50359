"""The recorder's close: a batch being written is finished, not cancelled."""

from __future__ import annotations

import asyncio
from typing import cast

from consumers.delivery.ledger import LedgerStore
from consumers.delivery.model import Finished
from consumers.delivery.recorder import Recorder


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
