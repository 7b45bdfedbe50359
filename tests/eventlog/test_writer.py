"""The group-commit writer: batching, bounds, and what producers see when storage fails."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pytest

from eventlog import EventLog, LogConfig, NewEvent, StorageError
from eventlog.storage.base import AppendOutcome, AppendRequest, PendingEvent
from eventlog.storage.capabilities import Capabilities
from eventlog.storage.memory import MemoryStorage
from eventlog.writer import GroupCommitWriter

CONFIG = LogConfig(retention_interval=0, recheck_interval=None)


class FlakyStorage(MemoryStorage):
    """Fails the next ``failures`` transactions with ``error``, then works."""

    def __init__(self, error: BaseException, failures: int = 1) -> None:
        super().__init__()
        self.error = error
        self.failures = failures

    async def append(self, requests: Sequence[AppendRequest], now: datetime) -> list[AppendOutcome]:
        if self.failures:
            self.failures -= 1
            raise self.error
        return await super().append(requests, now)


async def test_concurrent_appends_share_one_transaction() -> None:
    async with EventLog(MemoryStorage(), CONFIG) as log:
        offsets = await asyncio.gather(*(log.append("s", i, type="t") for i in range(100)))
        assert offsets == list(range(100))
        assert log.writer_stats["transactions"] == 1
        assert log.writer_stats["events_written"] == 100


async def test_a_transaction_holds_at_most_the_configured_events() -> None:
    config = LogConfig(retention_interval=0, writer_batch_events=3)
    async with EventLog(MemoryStorage(), config) as log:
        singles = [log.append("s", i, type="t") for i in range(5)]
        batch = log.append_batch("s", [NewEvent(type="t", data=i) for i in range(4)])
        results = await asyncio.gather(*singles, batch)
        assert results == [0, 1, 2, 3, 4, [5, 6, 7, 8]]
        # 3 singles; 2 singles (the batch of 4 does not fit with them); the batch on its own.
        assert log.writer_stats["transactions"] == 3


async def test_a_transaction_holds_at_most_the_configured_bytes() -> None:
    config = LogConfig(retention_interval=0, writer_batch_bytes=250)
    async with EventLog(MemoryStorage(), config) as log:
        await asyncio.gather(*(log.append("s", "x" * 98, type="t") for _ in range(5)))
        assert log.writer_stats["transactions"] == 3  # 100-byte events, two per transaction


async def test_a_failed_transaction_fails_its_producers_and_the_log_goes_on() -> None:
    async with EventLog(FlakyStorage(StorageError("disk full")), CONFIG) as log:
        results = await asyncio.gather(
            *(log.append("s", i, type="t") for i in range(3)), return_exceptions=True
        )
        assert [str(r) for r in results] == ["disk full"] * 3
        assert await log.append("s", 3, type="t") == 0
        assert [e.json() for e in await log.read("s")] == [3]


async def test_a_backend_bug_is_reported_as_a_storage_error() -> None:
    async with EventLog(FlakyStorage(KeyError("oops")), CONFIG) as log:
        with pytest.raises(StorageError, match="append failed: KeyError"):
            await log.append("s", 1, type="t")
        assert await log.append("s", 2, type="t") == 0


class Fatal(BaseException):
    """Escapes the writer's error handling, as a bug in the writer itself would."""


async def test_if_the_writer_dies_no_producer_waits_forever() -> None:
    log = EventLog(FlakyStorage(Fatal()), CONFIG)
    await log.start()
    first = asyncio.ensure_future(log.append("s", 1, type="t"))
    with pytest.raises(StorageError, match="writer stopped: Fatal"):
        await asyncio.wait_for(first, timeout=5)
    with pytest.raises(StorageError, match="writer stopped"):
        await log.append("s", 2, type="t")
    assert log.writer_stats["queued_events"] == 0
    await log.close()


async def test_on_sqlite_a_burst_is_split_in_two_transactions_that_take_turns(
    tmp_path: Path,
) -> None:
    async with EventLog.open(tmp_path / "log.db", retention_interval=0) as log:
        offsets = await asyncio.gather(*(log.append("s", i, type="t") for i in range(256)))
        assert offsets == list(range(256))
        assert log.writer_stats["transactions"] == 2
        assert [e.json() for e in await log.read("s", 0, 300)] == list(range(256))


async def test_a_batch_append_is_never_split(tmp_path: Path) -> None:
    async with EventLog.open(tmp_path / "log.db", retention_interval=0) as log:
        batch = [NewEvent(type="t", data=i) for i in range(300)]
        assert await log.append_batch("s", batch) == list(range(300))
        assert log.writer_stats["transactions"] == 1


class SlowStorage(MemoryStorage):
    """Takes ``delay`` seconds per transaction, and two transactions at a time (like SQLite)."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.capabilities = Capabilities(kind="memory", durable=False, append_slots=2)

    async def append(self, requests: Sequence[AppendRequest], now: datetime) -> list[AppendOutcome]:
        outcomes = await super().append(requests, now)
        await asyncio.sleep(self.delay)  # the flush: after the offsets are taken, in order
        return outcomes


@pytest.mark.parametrize(("delay", "transactions"), [(0.0, 2), (0.02, 1)])
async def test_a_burst_is_split_in_two_only_while_commits_are_fast(
    delay: float, transactions: int
) -> None:
    async with EventLog(SlowStorage(delay), CONFIG) as log:
        assert await log.append("s", 0, type="t") == 0  # a commit on its own, timed
        before = log.writer_stats["transactions"]
        offsets = await asyncio.gather(*(log.append("s", i, type="t") for i in range(256)))
        assert offsets == list(range(1, 257))
        assert log.writer_stats["transactions"] - before == transactions


class GatedStorage(MemoryStorage):
    """Holds its first transaction until ``gate`` is set; records, as each
    transaction starts, how many producers have seen their append return."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.started = asyncio.Event()
        self.returned: list[int] = []
        self.returned_at_start: list[int] = []

    async def append(self, requests: Sequence[AppendRequest], now: datetime) -> list[AppendOutcome]:
        self.returned_at_start.append(len(self.returned))
        if len(self.returned_at_start) == 1:
            self.started.set()
            await self.gate.wait()
        return await super().append(requests, now)


async def test_the_next_transaction_starts_before_the_last_ones_producers_are_settled() -> None:
    """Settling producers is the loop's work: the next commit does not wait for it."""
    storage = GatedStorage()
    async with EventLog(storage, CONFIG) as log:

        async def produce(i: int) -> None:
            storage.returned.append(await log.append("s", i, type="t"))

        first = [asyncio.ensure_future(produce(i)) for i in range(3)]
        await storage.started.wait()  # the first transaction is under way
        second = [asyncio.ensure_future(produce(i)) for i in range(3, 6)]
        await asyncio.sleep(0)  # queued behind it
        storage.gate.set()
        await asyncio.gather(*first, *second)
        assert storage.returned_at_start == [0, 0]
        assert sorted(storage.returned) == list(range(6))
        assert log.writer_stats["transactions"] == 2


class HeldTwoSlotStorage(MemoryStorage):
    """Two transactions at a time (like SQLite); the first takes its offsets, then
    holds its commit until ``gate`` is set. Records each transaction's size as it starts."""

    def __init__(self) -> None:
        super().__init__()
        self.capabilities = Capabilities(kind="memory", durable=False, append_slots=2)
        self.gate = asyncio.Event()
        self.started = asyncio.Event()
        self.sizes: list[int] = []

    async def append(self, requests: Sequence[AppendRequest], now: datetime) -> list[AppendOutcome]:
        self.sizes.append(sum(len(r.events) for r in requests))
        self.started.set()
        outcomes = await super().append(requests, now)
        if len(self.sizes) == 1:
            await self.gate.wait()
        return outcomes


async def test_a_small_batch_keeps_gathering_while_a_transaction_is_in_hand() -> None:
    """Handed to the second slot at once, the first 3 would wait out the commit
    in hand anyway, and the 3 after them would need a transaction of their own."""
    storage = HeldTwoSlotStorage()
    async with EventLog(storage, CONFIG) as log:
        try:
            first = asyncio.gather(*(log.append("s", i, type="t") for i in range(3)))
            await storage.started.wait()
            early = [asyncio.ensure_future(log.append("s", i, type="t")) for i in range(3, 6)]
            for _ in range(5):
                await asyncio.sleep(0)  # the writer had every chance to hand them over
            assert storage.sizes == [3]
            late = [asyncio.ensure_future(log.append("s", i, type="t")) for i in range(6, 9)]
        finally:
            storage.gate.set()  # a failed check must not leave the log's close waiting
        assert await first == [0, 1, 2]
        assert await asyncio.gather(*early, *late) == list(range(3, 9))
        assert storage.sizes == [3, 6]


async def test_a_cohort_is_handed_to_the_second_slot_while_a_transaction_is_in_hand() -> None:
    storage = HeldTwoSlotStorage()
    async with EventLog(storage, CONFIG) as log:
        try:
            first = asyncio.gather(*(log.append("s", i, type="t") for i in range(3)))
            await storage.started.wait()
            cohort = asyncio.gather(*(log.append("s", i, type="t") for i in range(3, 103)))
            for _ in range(5):
                await asyncio.sleep(0)
            assert storage.sizes == [3, 100]  # started beside the one in hand
        finally:
            storage.gate.set()
        assert await first == [0, 1, 2]
        assert await cohort == list(range(3, 103))


async def test_close_returns_once_the_last_transactions_producers_are_answered() -> None:
    """A close that returned with a transaction still in hand would leave its
    producers (and its heads) unsettled behind it."""
    storage = SlowStorage(0.01)
    await storage.open()
    heads: list[tuple[str, int]] = []
    writer = GroupCommitWriter(storage, lambda stream, head: heads.append((stream, head)))
    writer.start()
    event = PendingEvent(id="e", id_given=False, type="t", key=None, headers={}, data=b"1")
    first = [writer.enqueue_one("s", event) for _ in range(3)]
    await asyncio.sleep(0.005)  # the first transaction under way
    second = [writer.enqueue_one("s", event) for _ in range(2)]  # gathers behind it
    await writer.close()
    try:
        assert [f.done() for f in first + second] == [True] * 5
        assert [f.result() for f in first + second] == [0, 1, 2, 3, 4]
        assert heads == [("s", 3), ("s", 5)]
    finally:
        await storage.close()
