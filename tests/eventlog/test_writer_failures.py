"""Failed and abandoned transactions in the SQLite pipeline, with real files.

The writer hands the next batch to SQLite's thread as soon as a transaction
ends, before that transaction's producers are settled; these check that a
transaction that fails there (the database full) or producers that give up
while their batch is in the thread leave no producer waiting, no gap in the
offsets and no acknowledged event out of place, and that the log goes on.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
from pathlib import Path

from eventlog import EventLog, LogConfig, NewEvent, StorageError
from eventlog.storage.sqlite import SQLiteStorage
from tests.chaos import Ack, check_stored
from tests.support import scaled

CONFIG = LogConfig(retention_interval=0, recheck_interval=None)
STREAMS = ["chaos-a", "chaos-b"]


async def _append(log: EventLog, p: int, seq: int, kind: int, pad: str) -> Ack:
    """One append of producer ``p``: single, a batch of three, or with an id."""
    stream = STREAMS[p % 2]
    data = {"p": p, "s": seq, "pad": pad}
    if kind == 0:
        items = [NewEvent(type="many", data={**data, "i": i}) for i in range(3)]
        return (p, seq, stream, await log.append_batch(stream, items))
    if kind == 1:
        return (p, seq, stream, [await log.append(stream, data, type="id", id=f"{p}-{seq}")])
    return (p, seq, stream, [await log.append(stream, data, type="one")])


async def _max_pages(storage: SQLiteStorage, pages: int | None) -> object:
    """Caps the writer connection's database size (SQLITE_FULL past it), or lifts the cap."""

    def cap(conn: sqlite3.Connection) -> object:
        count = conn.execute("PRAGMA page_count").fetchone()[0]
        limit = count + pages if pages is not None else 1 << 30
        return conn.execute(f"PRAGMA max_page_count = {limit}").fetchone()

    return await storage._write().run(cap)


async def test_a_full_database_fails_whole_transactions_and_the_log_goes_on(
    tmp_path: Path,
) -> None:
    db = tmp_path / "full.db"
    storage = SQLiteStorage(db)
    acks: list[Ack] = []
    errors: list[str] = []

    async def producer(p: int, seqs: range) -> None:
        rng = random.Random(p)
        for seq in seqs:
            try:
                acks.append(await _append(log, p, seq, rng.randrange(3), "x" * 1500))
            except StorageError as exc:
                errors.append(str(exc))

    async with EventLog(storage, CONFIG) as log:
        await log.append("chaos-a", {"p": -1, "s": 1}, type="t")
        await _max_pages(storage, 40)  # ~160 KiB: a few transactions, then full
        producers = (producer(p, range(1, 6)) for p in range(200))
        await asyncio.wait_for(asyncio.gather(*producers), scaled(20))
        assert acks, "nothing fitted: the cap was too small to test a pipeline"
        assert errors, "nothing failed: the cap was too large"
        assert set(errors) == {"sqlite: database or disk is full"}
        assert len(acks) + len(errors) == 200 * 5  # every producer answered, once each
        await _max_pages(storage, None)
        producers = (producer(p, range(6, 9)) for p in range(200))
        await asyncio.wait_for(asyncio.gather(*producers), scaled(20))
        assert len(acks) + len(errors) == 200 * 8
        assert len(errors) < 200 * 5
    stored = await check_stored(db, STREAMS, acks)
    events = sum(len(offsets) for *_, offsets in acks)
    assert stored == events + 1  # the failed transactions left nothing behind


async def test_producers_that_give_up_leave_the_pipeline_whole(tmp_path: Path) -> None:
    """Producers time out while their batch is queued or in SQLite's thread:
    the writer writes it anyway, and the others' offsets stay right."""
    db = tmp_path / "cancel.db"
    acks: list[Ack] = []
    gave_up = 0

    async def producer(p: int) -> None:
        nonlocal gave_up
        rng = random.Random(p)
        for seq in range(1, 21):
            patience = rng.choice([0.0, 0.0002, 0.001, 0.005, scaled(20)])
            try:
                acks.append(
                    await asyncio.wait_for(_append(log, p, seq, rng.randrange(3), ""), patience)
                )
            except TimeoutError:
                gave_up += 1

    async with EventLog.open(db, config=CONFIG) as log:
        await asyncio.wait_for(asyncio.gather(*(producer(p) for p in range(256))), scaled(30))
        assert gave_up, "no producer gave up: the test proved little"
        assert acks
        last = await asyncio.wait_for(log.append("chaos-a", {"p": -1, "s": 1}, type="t"), 5)
        assert log.writer_stats["queued_events"] == 0
    acks.append((-1, 1, "chaos-a", [last]))  # the log went on, at the right place
    stored = await check_stored(db, STREAMS, acks)
    assert stored >= sum(len(offsets) for *_, offsets in acks)


async def test_offsets_follow_queue_order_when_a_general_batch_precedes_a_cohort(
    tmp_path: Path,
) -> None:
    """A batch with ids (the general path: handed to SQLite at its task's first
    step) queued before a cohort of generated ids (handed over when dispatched)
    is written first, and an append expecting the head it was queued at gets it."""
    config = LogConfig(retention_interval=0, recheck_interval=None, writer_batch_events=64)
    async with EventLog.open(tmp_path / "order.db", config=config) as log:
        expecting = asyncio.ensure_future(log.append("s", -1, type="t", expected_offset=0))
        with_ids = [
            asyncio.ensure_future(log.append("s", i, type="t", id=f"id-{i}")) for i in range(63)
        ]
        cohort = [asyncio.ensure_future(log.append("s", i, type="t")) for i in range(64)]
        assert await asyncio.wait_for(expecting, scaled(10)) == 0
        assert await asyncio.gather(*with_ids) == list(range(1, 64))
        assert await asyncio.gather(*cohort) == list(range(64, 128))


async def test_a_write_lock_held_elsewhere_for_a_while_delays_and_loses_nothing(
    tmp_path: Path,
) -> None:
    """Another connection holds the database's write lock for a second (within
    the writer's busy timeout) while 200 producers append: all of them wait,
    then get their offsets, in order and without gaps."""
    db = tmp_path / "locked.db"
    acks: list[Ack] = []
    async with EventLog.open(db, config=CONFIG) as log:
        await log.append("chaos-a", {"p": -1, "s": 1}, type="t")
        other = sqlite3.connect(db, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:

            async def producer(p: int) -> None:
                rng = random.Random(p)
                for seq in range(1, 4):
                    acks.append(await _append(log, p, seq, rng.randrange(3), ""))

            producers = asyncio.gather(*(producer(p) for p in range(200)))
            await asyncio.sleep(1.0)
            assert not acks, "appended while another connection held the write lock"
        finally:
            other.execute("ROLLBACK")
            other.close()
        await asyncio.wait_for(producers, scaled(20))
    assert len(acks) == 600
    assert await check_stored(db, STREAMS, acks) == 1 + sum(len(o) for *_, o in acks)
