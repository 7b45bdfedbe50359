"""Receivers that misbehave: each gets a recorded failed attempt, and nobody else waits for them."""

from __future__ import annotations

import asyncio
import gzip
import socket
import struct
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from consumers.delivery.engine import DeliveryEngine
from consumers.delivery.model import Attempt
from eventlog import EventLog
from tests.consumers.delivery.conftest import add_endpoint, all_deliveries
from tests.consumers.delivery.receiver import Received, Receiver
from tests.support import scaled, wait_until


async def hang(request: web.Request, received: Received) -> web.StreamResponse:
    await asyncio.sleep(3600)
    raise AssertionError("unreachable")


async def redirect(request: web.Request, received: Received) -> web.StreamResponse:
    return web.Response(status=302, headers={"Location": "http://127.0.0.1:9/elsewhere"})


async def huge(request: web.Request, received: Received) -> web.StreamResponse:
    return web.Response(status=500, body=b"x" * (10 << 20))


async def reset(request: web.Request, received: Received) -> web.StreamResponse:
    transport = request.transport
    assert transport is not None
    sock = transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    await asyncio.sleep(1)
    return web.Response(status=200)


@pytest.fixture
async def trickler() -> AsyncIterator[int]:
    """A raw TCP server that answers one byte every 100 ms; yields its port."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read(65536)
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok":
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.1)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


async def final_attempt(engine: DeliveryEngine, endpoint_id: str) -> Attempt:
    async def finished() -> bool:
        rows = await all_deliveries(engine, endpoint_id)
        return bool(rows) and rows[0].status == "failed"

    await wait_until(finished, timeout=20)
    (delivery,) = (await all_deliveries(engine, endpoint_id))[:1]
    got = await engine.store.delivery(endpoint_id, delivery.id)
    assert got is not None
    return got[1][-1]


async def test_misbehaving_receivers_fail_their_own_deliveries_only(
    log: EventLog, engine: DeliveryEngine, receiver: Receiver, trickler: int
) -> None:
    bad = {}
    for name, behaviour in {
        "hang": hang,
        "redirect": redirect,
        "huge": huge,
        "reset": reset,
    }.items():
        r = await Receiver(behaviour=behaviour).start()
        bad[name] = r
        await add_endpoint(engine, r.url(), id=name, types=["slow"], timeout=1.0, max_attempts=1)
    await add_endpoint(
        engine,
        f"http://127.0.0.1:{trickler}/",
        id="trickle",
        types=["slow"],
        timeout=1.0,
        max_attempts=1,
    )
    good = await add_endpoint(engine, receiver.url(), id="good")
    try:
        await log.append("events", {"n": -1}, type="slow")
        for n in range(20):
            await log.append("events", {"n": n}, type="fast")
        # The good endpoint is served while the bad ones are still hanging or trickling.
        await receiver.wait_for(21, scaled(3))
        assert len(await all_deliveries(engine, good.id)) == 21

        hung = await final_attempt(engine, "hang")
        assert hung.status is None
        assert hung.error is not None
        assert hung.error.startswith("timeout")

        redirected = await final_attempt(engine, "redirect")
        assert redirected.status == 302
        assert redirected.error is not None
        assert "redirects are not followed" in redirected.error

        big = await final_attempt(engine, "huge")
        assert big.status == 500
        assert len(big.response.encode()) <= 1024

        was_reset = await final_attempt(engine, "reset")
        assert was_reset.status is None
        assert was_reset.error is not None
        assert was_reset.error.split(":")[0] in ("reset", "protocol")

        trickled = await final_attempt(engine, "trickle")
        assert trickled.status is None
        assert trickled.error is not None
        assert trickled.error.startswith("timeout")
    finally:
        for r in bad.values():
            await r.stop()


async def test_unreachable_receiver_is_a_retryable_connection_error(
    log: EventLog, engine: DeliveryEngine
) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    await add_endpoint(engine, f"http://127.0.0.1:{port}/", id="nobody", max_attempts=2)
    await log.append("events", {}, type="t")
    attempt = await final_attempt(engine, "nobody")
    assert attempt.verdict == "retry"
    assert attempt.error is not None
    assert attempt.error.startswith("connect")
    (delivery,) = await all_deliveries(engine, "nobody")
    assert delivery.attempts == 2


async def test_private_target_is_refused_at_connect_time_when_not_allowed(
    log: EventLog, receiver: Receiver
) -> None:
    from consumers.delivery.stores import ledger_for
    from consumers.webhook import WEBHOOK

    strict = DeliveryEngine(log, ledger_for(log), kinds={"webhook": WEBHOOK}, allow_private=False)
    await strict.start()
    try:
        await add_endpoint(strict, receiver.url(), id="private")
        await log.append("events", {}, type="t")
        attempt = await final_attempt(strict, "private")
        assert attempt.error is not None
        assert attempt.error.startswith("unsafe_target")
        assert receiver.requests == []
    finally:
        await strict.close()


async def test_secrets_echoed_by_a_receiver_are_redacted_in_the_ledger(
    log: EventLog, engine: DeliveryEngine, receiver: Receiver
) -> None:
    async def echo(request: web.Request, received: Received) -> web.StreamResponse:
        return web.Response(status=400, text=repr(received.headers))

    receiver.behaviour = echo
    ep = await add_endpoint(
        engine,
        receiver.url(),
        id="echo",
        headers={"Authorization": "Bearer sekrit-token-123"},
        secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    )
    await log.append("events", {}, type="t")
    attempt = await final_attempt(engine, ep.id)
    assert "sekrit-token-123" not in attempt.response
    assert "[redacted]" in attempt.response
    db = (log.storage.path).read_bytes()  # type: ignore[attr-defined]
    wal = log.storage.path.with_name("events.db-wal").read_bytes()  # type: ignore[attr-defined]
    for blob in (db, wal):
        assert blob.count(b"sekrit-token-123") == blob.count(b'"Authorization":"Bearer sekrit')


async def test_the_answer_is_stored_as_the_receiver_wrote_it_never_compressed(
    log: EventLog, engine: DeliveryEngine, receiver: Receiver
) -> None:
    async def compressing(request: web.Request, received: Received) -> web.StreamResponse:
        # A receiver that compresses whenever the client accepts it.
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            body = gzip.compress(b"no such order")
            return web.Response(status=400, body=body, headers={"Content-Encoding": "gzip"})
        return web.Response(status=400, text="no such order")

    receiver.behaviour = compressing
    ep = await add_endpoint(engine, receiver.url(), id="gz")
    await log.append("events", {}, type="t")
    attempt = await final_attempt(engine, ep.id)
    assert receiver.requests[0].headers["accept-encoding"] == "identity"
    assert attempt.response == "no such order"
