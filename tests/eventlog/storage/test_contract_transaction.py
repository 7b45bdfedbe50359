"""``log.transaction()`` and ``append(connection=)``: your writes and the log's appends together.

The same bodies behind SQLite and PostgreSQL (placeholders differ: ``?`` / ``$1``);
the in-memory log only appends.
"""

from __future__ import annotations

import asyncio

import pytest

from eventlog import EventLog, ExpectedOffsetMismatch, InvalidInput, NewEvent


def _kind(log: EventLog) -> str:
    return type(log.storage).__name__.removesuffix("Storage").lower()


def _sql(log: EventLog, text: str) -> str:
    """``?`` placeholders, numbered for PostgreSQL."""
    if _kind(log) != "postgres":
        return text
    parts = text.split("?")
    return "".join(p + (f"${i + 1}" if i < len(parts) - 1 else "") for i, p in enumerate(parts))


async def _orders_table(log: EventLog) -> None:
    async with log.transaction() as txn:
        await txn.execute("CREATE TABLE IF NOT EXISTS app_orders (id INTEGER PRIMARY KEY)")


async def _orders(log: EventLog) -> list[int]:
    async with log.transaction() as txn:
        return [r[0] for r in await txn.execute("SELECT id FROM app_orders ORDER BY id")]


async def test_rows_and_event_commit_together(log: EventLog) -> None:
    if _kind(log) == "memory":
        pytest.skip("the in-memory log has no tables of yours")
    await _orders_table(log)
    async with log.transaction() as txn:
        await txn.execute(_sql(log, "INSERT INTO app_orders (id) VALUES (?)"), 1)
        offset = await txn.append("orders", {"id": 1}, type="order.created", id="o1")
        assert offset == 0
        assert await log.read("orders") == []  # not visible before the commit
    assert [e.id for e in await log.read("orders")] == ["o1"]
    assert await _orders(log) == [1]


async def test_rollback_leaves_neither_row_nor_event_nor_gap(log: EventLog) -> None:
    if _kind(log) == "memory":
        pytest.skip("the in-memory log does not roll back")
    await _orders_table(log)

    async def change_of_mind() -> None:
        async with log.transaction() as txn:
            await txn.execute(_sql(log, "INSERT INTO app_orders (id) VALUES (?)"), 2)
            await txn.append_batch("orders", [NewEvent(type="t"), NewEvent(type="t")])
            raise RuntimeError("the application changed its mind")

    with pytest.raises(RuntimeError):
        await change_of_mind()
    assert await _orders(log) == []
    assert await log.append("orders", 1, type="t") == 0  # gapless: offset 0 again
    assert (await log.stream_info("orders")).next_offset == 1


async def test_appends_elsewhere_wait_for_the_transaction_and_stay_gapless(log: EventLog) -> None:
    if _kind(log) == "memory":
        pytest.skip("the in-memory log applies at once")
    async with log.transaction() as txn:
        first = await txn.append("s", 1, type="t")
        other = asyncio.create_task(log.append("s", 2, type="t"))
        await asyncio.sleep(0.1)
        assert not other.done()  # the stream (SQLite: the file) is locked until commit
    assert first == 0
    assert await asyncio.wait_for(other, 10) == 1
    assert [e.offset for e in await log.read("s")] == [0, 1]


async def test_expected_offset_and_ids_inside_a_transaction(log: EventLog) -> None:
    await log.append("s", 0, type="t", id="a")
    async with log.transaction() as txn:
        assert await txn.append("s", 0, type="t", id="a") == 0  # idempotent
        assert await txn.append("s", 1, type="t", expected_offset=1) == 1
        with pytest.raises(ExpectedOffsetMismatch):
            await txn.append("s", 2, type="t", expected_offset=7)
    assert [e.offset for e in await log.read("s")] == [0, 1]


async def test_timeout_rolls_back(log: EventLog) -> None:

    async def too_long() -> None:
        async with log.transaction(timeout=0.2) as txn:
            await txn.append("s", 1, type="t")
            await asyncio.sleep(5)

    with pytest.raises(TimeoutError):
        await too_long()
    if _kind(log) != "memory":
        assert await log.read("s") == []
    assert await log.append("s", 2, type="t") in (0, 1)


async def test_connection_argument_needs_postgres(log: EventLog) -> None:
    if _kind(log) == "postgres":
        async with log.transaction() as txn:
            conn = txn.connection
            assert await log.append("pg", 1, type="t", connection=conn) == 0
            assert await log.append_batch("pg", [NewEvent(type="t")], connection=conn) == [1]
        assert [e.offset for e in await log.read("pg")] == [0, 1]
        return
    with pytest.raises(InvalidInput, match="PostgreSQL"):
        await log.append("s", 1, type="t", connection=object())  # type: ignore[call-overload]


async def test_checkpoint_commits_with_the_appends(log: EventLog) -> None:
    assert await log.checkpoint("src") is None
    async with log.transaction() as txn:
        await txn.append("s", 1, type="t")
        await txn.set_checkpoint("src", b'{"offset": 10}')
    assert await log.checkpoint("src") == b'{"offset": 10}'

    async def crash() -> None:
        async with log.transaction() as txn:
            await txn.append("s", 2, type="t")
            await txn.set_checkpoint("src", b'{"offset": 20}')
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        await crash()
    if _kind(log) != "memory":
        assert await log.checkpoint("src") == b'{"offset": 10}'
        assert [e.offset for e in await log.read("s")] == [0]
