"""Tenant isolation of the firehose over WebSocket and Server-Sent Events.

Two tenants follow the same stream name with real clients (``websockets``,
httpx streaming); each gets only its own events, named as it named the stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import msgspec
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.server.tenants.keys import KEYS, client, headers, tenant_config
from tests.serverthread import ServerThread
from tests.support import scaled


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    root = tmp_path_factory.mktemp("tenants-fh")
    with ServerThread.start(db=root / "e.db", config=tenant_config(root)) as s:
        yield s


def _seed(server: ServerThread, stream: str) -> None:
    for who in ("acme", "globex", "plain"):
        with client(server.url, who) as c:
            r = c.post(f"/api/streams/{stream}/events", json={"type": f"{who}.t"})
            assert r.status_code == 201


async def test_websocket_firehose_shows_each_tenant_only_its_stream(server: ServerThread) -> None:
    _seed(server, "ws-orders")
    url = f"{server.ws_url}/api/streams/ws-orders/firehose?from=beginning"
    for who in ("acme", "globex", "plain"):
        async with connect(url, additional_headers=headers(who)) as ws:
            first = msgspec.json.decode(await ws.recv())
            assert (first["stream"], first["type"]) == ("ws-orders", f"{who}.t")
            with pytest.raises(TimeoutError):  # nothing of the others follows
                await asyncio.wait_for(ws.recv(), scaled(0.3))


async def test_batched_firehose_and_access_token_are_scoped_too(server: ServerThread) -> None:
    _seed(server, "ws-batch")
    url = (
        f"{server.ws_url}/api/streams/ws-batch/firehose?from=beginning&batch=10"
        f"&access_token={KEYS['globex'][0]}"
    )
    async with connect(url) as ws:
        batch = msgspec.json.decode(await ws.recv())
        assert [(e["stream"], e["type"]) for e in batch] == [("ws-batch", "globex.t")]


async def test_default_firehose_is_the_tenants_events_stream(server: ServerThread) -> None:
    _seed(server, "events")
    async with connect(
        f"{server.ws_url}/api/events/firehose?from=beginning", additional_headers=headers("acme")
    ) as ws:
        event = msgspec.json.decode(await ws.recv())
        assert (event["stream"], event["type"]) == ("events", "acme.t")


async def test_admin_firehose_names_the_tenants_stored_stream(server: ServerThread) -> None:
    _seed(server, "ws-admin")
    url = f"{server.ws_url}/api/streams/globex~ws-admin/firehose?from=beginning"
    async with connect(url, additional_headers=headers("root")) as ws:
        event = msgspec.json.decode(await ws.recv())
        assert (event["stream"], event["type"]) == ("globex~ws-admin", "globex.t")


def test_sse_shows_each_tenant_only_its_stream(server: ServerThread) -> None:
    _seed(server, "sse-orders")
    for who in ("acme", "globex"):
        with (
            client(server.url, who) as c,
            c.stream("GET", "/api/streams/sse-orders/sse?from=beginning") as response,
        ):
            assert response.status_code == 200
            lines = response.iter_lines()
            data = next(line for line in lines if line.startswith("data: "))
            event = msgspec.json.decode(data.removeprefix("data: "))
            assert (event["stream"], event["type"]) == ("sse-orders", f"{who}.t")


async def test_a_refused_websocket_names_the_stream_as_the_tenant_gave_it(
    server: ServerThread,
) -> None:
    url = f"{server.ws_url}/api/streams/no-such-stream/firehose"
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, additional_headers=headers("acme")):
            pass
    response = refused.value.response
    error = msgspec.json.decode(response.body)["error"]
    assert (response.status_code, error["code"]) == (404, "stream_not_found")
    assert error["message"] == "stream 'no-such-stream' does not exist"


async def test_the_close_reason_of_a_deleted_stream_names_it_as_the_tenant_does(
    server: ServerThread,
) -> None:
    _seed(server, "ws-deleted")
    url = f"{server.ws_url}/api/streams/ws-deleted/firehose?from=beginning"
    async with connect(url, additional_headers=headers("acme")) as ws:
        await ws.recv()
        with client(server.url, "acme") as acme:
            r = await asyncio.to_thread(acme.delete, "/api/streams/ws-deleted")
            assert r.status_code == 204
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), scaled(10))
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
        1001,
        "stream 'ws-deleted' was deleted",
    )
