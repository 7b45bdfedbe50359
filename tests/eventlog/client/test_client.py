"""``AsyncClient`` against a real server: the embedded log's answers, retries, errors."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import pytest

from eventlog import (
    Event,
    EventLog,
    EventTooLarge,
    ExpectedOffsetMismatch,
    InvalidPosition,
    InvalidStreamName,
    LogClosed,
    NewEvent,
    StreamNotFound,
)
from eventlog.client import AsyncClient
from eventlog.errors import Forbidden, InvalidInput, Unauthorized, Unavailable, Unsupported
from server.auth import hash_key
from tests.eventlog.client.proxy import proxy
from tests.serverthread import ServerThread
from tests.support import refused_port


def comparable(event: Event) -> tuple[Any, ...]:
    """What an append decides, without what differs by nature: the time, generated ids,
    and the correlation id the server stamps on every event."""
    headers = {k: v for k, v in event.headers.items() if k != "correlation-id"}
    return (event.stream, event.offset, event.type, event.key, headers, event.json())


async def the_same_work(log: Any) -> dict[str, Any]:
    """A few appends and reads, on an embedded log or a client: the same code."""
    out: dict[str, Any] = {}
    out["one"] = await log.append("orders", {"id": 1}, type="order.created", key="k1")
    out["batch"] = await log.append_batch(
        "orders",
        [
            NewEvent(type="order.paid", data={"id": 1}, key="k1", headers={"h": "v"}),
            NewEvent(type="order.created", data=msgspec.Raw(b'{"id": 2}'), id="fixed-id"),
        ],
    )
    out["retry"] = await log.append("orders", {"id": 2}, type="order.created", id="fixed-id")
    out["other"] = await log.append("audit", [1, "two", None], type="note")
    events = await log.read("orders", 0, 100)
    out["events"] = [comparable(e) for e in events]
    out["ids"] = [e.id for e in events if e.id == "fixed-id"]
    out["page"] = [e.offset for e in await log.read("orders", 1, 1)]
    out["past_head"] = await log.read("orders", 50)
    out["scan"] = [e.offset async for e in log.scan("orders", 1)]
    info = await log.stream_info("orders")
    out["info"] = (info.name, info.first_offset, info.next_offset, info.count, info.bytes)
    out["streams"] = [s.name for s in await log.streams()]
    out["bounds"] = (await log.bounds("orders"), await log.bounds("nothing-here"))
    out["wait_timeout"] = await log.wait("orders", 3, timeout=0.05)
    out["wait_there"] = await log.wait("orders", 2, timeout=0.05)
    with pytest.raises(StreamNotFound) as missing:
        await log.stream_info("nothing-here")
    out["missing"] = (type(missing.value), missing.value.code, missing.value.stream)
    with pytest.raises(ExpectedOffsetMismatch) as moved:
        await log.append("orders", {}, type="x", expected_offset=1)
    out["moved"] = (type(moved.value), moved.value.code, moved.value.stream)
    out["expected_ok"] = await log.append("orders", {}, type="x", expected_offset=3)
    with pytest.raises(InvalidStreamName):
        await log.append("bad name", {}, type="x")
    # Where a bad event is named the same way (the server's class differs: 422
    # validation_error for a field its schema refuses, the embedded log's InvalidEvent).
    with pytest.raises(InvalidInput) as bad_one:
        await log.append("orders", {}, type="")
    with pytest.raises(InvalidInput) as bad_batch:
        await log.append_batch("orders", [{"type": "t"}, {"type": ""}])
    with pytest.raises(InvalidInput) as bad_first:
        await log.append_batch("orders", [{"type": ""}])
    out["bad_paths"] = [e.value.json_path for e in (bad_one, bad_batch, bad_first)]
    with pytest.raises(InvalidPosition):
        await log.read("orders", -1)
    await log.commit_offset("reader", "orders", 2)
    out["committed"] = (
        await log.committed_offset("reader", "orders"),
        await log.committed_offset("reader", "audit"),
        await log.committed_offset("nobody", "orders"),
    )
    out["consumers"] = [(c.name, c.stream, c.offset) for c in await log.consumers()]
    out["at_time"] = [await log.offset_at_time("orders", e.time) for e in events]
    consumer = log.consumer("cursor", "orders")
    first = await consumer.poll(2)
    await consumer.commit()
    lag = await consumer.lag()
    resumed = log.consumer("cursor", "orders")
    rest = await resumed.poll(100, timeout=0.05)
    out["consumer"] = ([e.offset for e in first], lag, [e.offset for e in rest])
    out["cursor_committed"] = await log.committed_offset("cursor", "orders")
    return out


async def test_the_same_code_gives_the_same_results_embedded_and_remote(
    client: AsyncClient, tmp_path: Path
) -> None:
    async with EventLog.open(tmp_path / "embedded.db") as log:
        embedded = await the_same_work(log)
    remote = await the_same_work(client)
    assert remote == embedded
    assert remote["one"] == 0
    assert remote["retry"] == 2
    assert remote["bad_paths"] == ["$.type", "$[1].type", "$[0].type"]
    assert remote["ids"] == ["fixed-id"]


async def test_an_append_carries_an_id_so_a_resent_request_writes_nothing(
    client: AsyncClient,
) -> None:
    first = await client.append_batch_result("s", [{"type": "t", "data": {"n": 1}}])
    event = (await client.read("s"))[0]
    again = await client.append_batch_result("s", [{"type": "t", "data": {}, "id": event.id}])
    assert (first.offsets, first.written) == ([0], 1)
    assert (again.offsets, again.written) == ([0], 0)
    assert len(event.id) == 36  # a UUIDv7 from the client


async def test_a_lost_answer_is_retried_and_appends_nothing_twice(server: ServerThread) -> None:
    async with (
        proxy(server.port, ["drop_answer", "drop_answer"]) as p,
        AsyncClient(p.url) as client,
    ):
        offset = await client.append("orders", {"id": 1}, type="order.created")
        offsets = await client.append_batch("orders", [NewEvent(type="a"), NewEvent(type="b")])
    async with AsyncClient(server.url) as direct:
        events = await direct.read("orders")
    assert p.log[:3] == ["drop_answer", "drop_answer", "pass"]
    assert (offset, offsets) == (0, [1, 2])
    assert [e.type for e in events] == ["order.created", "a", "b"]


async def test_503_answers_are_retried_until_the_server_takes_the_append(
    server: ServerThread,
) -> None:
    async with proxy(server.port, ["503", "503", "503"]) as p, AsyncClient(p.url) as client:
        assert await client.append("s", 1, type="t") == 0
        assert [e.offset for e in await client.read("s")] == [0]
    assert p.log[:4] == ["503", "503", "503", "pass"]


async def test_503_is_raised_as_unavailable_once_retry_for_is_spent(
    server: ServerThread,
) -> None:
    async with proxy(server.port, ["503"] * 50) as p, AsyncClient(p.url, retry_for=0.3) as c:
        with pytest.raises(Unavailable) as caught:
            await c.append("s", 1, type="t")
    assert (caught.value.code, caught.value.http_status) == ("unavailable", 503)
    assert "the proxy says" in str(caught.value)
    async with AsyncClient(server.url) as direct:
        assert await direct.read("s") == []


async def test_an_unreachable_server_is_unavailable_naming_the_url() -> None:
    with refused_port() as port:
        async with AsyncClient(f"http://127.0.0.1:{port}", retry_for=0.2) as client:
            with pytest.raises(Unavailable, match=f"cannot reach the server at .*:{port}") as c:
                await client.streams()
    assert c.value.code == "unreachable"


async def test_server_errors_arrive_as_the_embedded_logs_classes(tmp_path: Path) -> None:
    keys = [
        {"name": "admin", "hash": hash_key("admin-key"), "scopes": ["admin"]},
        {"name": "reader", "hash": hash_key("reader"), "scopes": ["read:*"]},
    ]
    env = {"EVENTLOG_API_KEYS": msgspec.json.encode(keys).decode()}
    with ServerThread.start(db=tmp_path / "k.db", env=env) as server:
        async with AsyncClient(server.url, api_key="admin-key") as admin:
            with pytest.raises(EventTooLarge) as big:
                await admin.append("s", "x" * (2 << 20), type="t")
            await admin.append("s", 1, type="t")
        async with AsyncClient(server.url, api_key="reader") as reader:
            with pytest.raises(Forbidden) as forbidden:
                await reader.append("s", 1, type="t")
            assert [e.offset for e in await reader.read("s")] == [0]
        async with AsyncClient(server.url) as nobody:
            with pytest.raises(Unauthorized) as unauthorized:
                await nobody.streams()
    assert (big.value.code, big.value.http_status) == ("event_too_large", 413)
    assert (forbidden.value.code, unauthorized.value.code) == ("forbidden", "unauthorized")


async def test_wait_long_polls_until_an_append_lands(client: AsyncClient) -> None:
    waiter = asyncio.ensure_future(client.wait("s", 0, timeout=20))
    early = asyncio.ensure_future(client.read_wait("s", 0, timeout=20))
    await asyncio.sleep(0.2)
    assert not waiter.done()
    assert not early.done()
    await client.append("s", {"n": 1}, type="t")
    assert await asyncio.wait_for(waiter, 10) is True
    assert [e.json() for e in await asyncio.wait_for(early, 10)] == [{"n": 1}]


async def test_a_remote_consumer_cannot_transact_and_says_why(client: AsyncClient) -> None:
    await client.append("s", 1, type="t")
    consumer = client.consumer("c", "s")
    assert not consumer.can_transact
    with pytest.raises(Unsupported, match="remote log"):
        await consumer.transact(lambda tx: asyncio.sleep(0))


async def test_a_remote_commit_past_the_head_is_refused_as_an_embedded_one(
    client: AsyncClient, tmp_path: Path
) -> None:
    await client.append_batch("s", [NewEvent(type="t", data=i) for i in range(3)])
    consumer = client.consumer("c", "s")
    with pytest.raises(InvalidPosition) as remote:
        await consumer.commit(4)
    async with EventLog.open(tmp_path / "embedded.db") as log:
        await log.append_batch("s", [NewEvent(type="t", data=i) for i in range(3)])
        with pytest.raises(InvalidPosition) as embedded:
            await log.consumer("c", "s").commit(4)
    assert str(remote.value) == str(embedded.value) == "offset 4 is beyond the head of 's' (3)"
    await consumer.commit(3)  # caught up
    assert await client.committed_offset("c", "s") == 3


async def test_a_closed_client_raises_log_closed_as_a_closed_log_does(
    server: ServerThread, tmp_path: Path
) -> None:
    remote = AsyncClient(server.url)
    assert await remote.append("s", {}, type="t") == 0
    await remote.close()
    async with EventLog.open(tmp_path / "closed.db") as embedded:
        pass
    for log in (embedded, remote):
        with pytest.raises(LogClosed):
            await log.append("s", {}, type="t")
        with pytest.raises(LogClosed):
            await log.read("s", 0)
    with pytest.raises(LogClosed):
        await anext(aiter(remote.follow("s", start=0)))
    with pytest.raises(LogClosed):  # not asked again and again as if the server were away
        await asyncio.wait_for(anext(aiter(remote.claims("c", worker="w"))), 10)
