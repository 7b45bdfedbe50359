"""Cross-process wake-ups: an append committed through one storage wakes waiters on another."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from eventlog import EventLog, NewEvent
from eventlog.storage.postgres import PostgresStorage
from eventlog.storage.postgres_listen import NotificationListener, parse_payload
from tests.support import scaled, wait_until


def test_payload_parses_stream_and_head() -> None:
    assert parse_payload("orders:42") == ("orders", 42)
    assert parse_payload("a.b-c:0") == ("a.b-c", 0)
    assert parse_payload("orders:deleted") == ("orders", -1)
    for bad in ("", "orders", ":4", "orders:", "orders:-1", "orders:x"):
        assert parse_payload(bad) is None


def test_resync_after_reconnect_reports_heads_and_vanished_streams() -> None:
    async def never() -> list[tuple[str, int]]:
        raise AssertionError("not called")

    listener = NotificationListener(never, "eventlog_heads", never)  # type: ignore[arg-type]
    seen: list[tuple[str, int]] = []
    listener.add(lambda stream, head: seen.append((stream, head)))
    listener._on_notify(None, 0, "eventlog_heads", "a:3")  # type: ignore[arg-type]
    listener._on_notify(None, 0, "eventlog_heads", "b:1")  # type: ignore[arg-type]
    listener._on_notify(None, 0, "eventlog_heads", "junk")  # type: ignore[arg-type]
    listener._resync([("b", 4), ("c", 2)])  # "a" was deleted while disconnected
    assert seen == [("a", 3), ("b", 1), ("a", -1), ("b", 4), ("c", 2)]
    listener._resync([("b", 4), ("c", 2)])
    assert seen[-2:] == [("b", 4), ("c", 2)]  # "a" is reported gone once


async def test_append_through_one_log_wakes_a_waiter_on_another(pg_url: str) -> None:
    # recheck_interval=None: a waiter can only be woken by a notification.
    async with (
        EventLog.open(pg_url, retention_interval=0, recheck_interval=None) as a,
        EventLog.open(pg_url, retention_interval=0, recheck_interval=None) as b,
    ):
        waiter = asyncio.create_task(b.wait("orders", 0, timeout=scaled(10)))
        await wait_until(lambda: b.heads.parked("orders") > 0, what="the waiter parked")
        assert not waiter.done()
        await a.append("orders", {"n": 1}, type="t")
        assert await asyncio.wait_for(waiter, scaled(5)) is True
        consumer = b.consumer("c", "orders")
        assert [e.json() for e in await consumer.poll(10)] == [{"n": 1}]
        polled = asyncio.create_task(consumer.poll(10, timeout=scaled(10)))
        await wait_until(lambda: b.heads.parked("orders") > 0, what="the poll parked")
        await a.append("orders", {"n": 2}, type="t")
        events = await asyncio.wait_for(polled, scaled(5))
        assert [e.json() for e in events] == [{"n": 2}]


async def test_listener_reconnects_after_its_connection_is_killed(pg_url: str) -> None:
    async with (
        EventLog.open(pg_url, retention_interval=0, recheck_interval=None) as a,
        EventLog.open(pg_url, retention_interval=0, recheck_interval=None) as b,
    ):
        assert isinstance(b.storage, PostgresStorage)
        listener = b.storage.listener
        assert listener is not None
        pid = listener.connection_pid
        admin = await asyncpg.connect(pg_url)
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        # An append right away may be sent while nobody listens: the re-sync
        # after the reconnect still wakes the waiter.
        waiter = asyncio.create_task(b.wait("orders", 0, timeout=scaled(10)))
        await a.append("orders", 1, type="t")
        assert await asyncio.wait_for(waiter, scaled(8)) is True
        await wait_until(lambda: listener.reconnects > 0, 5, what="the listener reconnected")
        assert listener.connection_pid not in (None, pid)
        # And the new connection delivers notifications.
        waiter = asyncio.create_task(b.wait("orders", 1, timeout=scaled(10)))
        await wait_until(lambda: b.heads.parked("orders") > 0, what="the waiter parked")
        await a.append("orders", 2, type="t")
        assert await asyncio.wait_for(waiter, scaled(5)) is True


async def test_stream_deleted_through_one_log_is_forgotten_by_another(pg_url: str) -> None:
    async with (
        EventLog.open(pg_url, retention_interval=0, recheck_interval=None) as a,
        EventLog.open(pg_url, retention_interval=0, recheck_interval=None) as b,
    ):
        await a.append_batch("s", [NewEvent(type="t", data=i) for i in range(5)])
        assert await b.wait("s", 4, timeout=scaled(5)) is True
        assert b.heads.known_head("s") == 5
        await a.delete_stream("s")
        await wait_until(lambda: b.heads.known_head("s") is None, 5, what="the deletion heard of")
        # A waiter on b waits for a new event instead of trusting the stale head.
        assert await b.wait("s", 0, timeout=0.3) is False
        waiter = asyncio.create_task(b.wait("s", 0, timeout=scaled(10)))
        await wait_until(lambda: b.heads.parked("s") > 0, what="the waiter parked")
        await a.append("s", "again", type="t")
        assert await asyncio.wait_for(waiter, scaled(5)) is True


async def test_rolled_back_transaction_notifies_nobody(pg_storage: PostgresStorage) -> None:
    seen: list[tuple[str, int]] = []
    pg_storage.listen(lambda stream, head: seen.append((stream, head)))

    async def notify_then_fail(conn: asyncpg.Connection) -> None:
        await conn.execute(f"SELECT pg_notify('{pg_storage.channel}', 'ghost:5')")
        raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        await pg_storage.transact(notify_then_fail)
    await pg_storage.query(
        lambda conn: conn.execute(f"SELECT pg_notify('{pg_storage.channel}', 'real:1')")
    )
    await wait_until(lambda: seen, 5, what="the real notification")
    assert seen == [("real", 1)]


async def test_a_components_channel_is_heard_again_after_a_reconnect_with_a_none_between(
    pg_url: str,
) -> None:
    async with EventLog.open(pg_url, retention_interval=0) as log:
        storage = log.storage
        assert isinstance(storage, PostgresStorage)
        listener = storage.listener
        assert listener is not None
        heard: list[str | None] = []
        stop = await storage.subscribe("eventlog_things", heard.append)
        admin = await asyncpg.connect(pg_url)
        try:
            await admin.execute("SELECT pg_notify('eventlog_things', 'one')")
            await wait_until(lambda: heard == ["one"], 5, what="the first notification")
            pid = listener.connection_pid
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
            # After the reconnect: None ("look again"), and the channel is heard again.
            await wait_until(lambda: None in heard, 5, what="the re-sync")
            await admin.execute("SELECT pg_notify('eventlog_things', 'two')")
            await wait_until(lambda: heard[-1] == "two", 5, what="a notification after it")
            assert heard == ["one", None, "two"]
            stop()
            await admin.execute("SELECT pg_notify('eventlog_things', 'three')")
            await admin.execute("SELECT pg_notify('eventlog_heads', 'orders:1')")
            await wait_until(lambda: log.heads.known_head("orders") == 1, 5, what="heads")
            assert heard[-1] == "two"  # stopped
        finally:
            await admin.close()
