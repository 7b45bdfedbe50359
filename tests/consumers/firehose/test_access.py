"""Who may use the firehose: API keys with ``read:`` scope, the client limit, shutdown."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import msgspec
import pytest
import websockets
from websockets.asyncio.client import connect

from tests.consumers.firehose.clients import Websocat, append, gauge, wait_for_gauge
from tests.consumers.firehose.conftest import READER_KEY, WRITER_KEY
from tests.serverproc import ServerProcess
from tests.serverthread import ServerThread
from tests.support import scaled

WRITER = {"Authorization": f"Bearer {WRITER_KEY}"}


def test_websocat_with_a_read_key_in_the_authorization_header(auth_server: ServerThread) -> None:
    with httpx.Client(base_url=auth_server.url, timeout=scaled(10)) as http:
        append(http, "orders", 3, headers=WRITER)
    url = f"{auth_server.ws_url}/api/streams/orders/firehose?from=beginning"
    with Websocat(url, headers=[f"Authorization: Bearer {READER_KEY}"]) as ws:
        assert [e["offset"] for e in ws.read(3)] == [0, 1, 2]


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/api/streams/orders/firehose", {}, 401),
        ("/api/streams/orders/firehose", {"Authorization": "Bearer wrong"}, 401),
        ("/api/streams/orders/firehose", WRITER, 403),  # append scope only
        ("/api/events/firehose", {"Authorization": f"Bearer {READER_KEY}"}, 403),  # not orders*
    ],
)
async def test_firehose_without_read_scope_is_refused_before_the_upgrade(
    auth_server: ServerThread, path: str, headers: dict[str, str], status: int
) -> None:
    with pytest.raises(websockets.InvalidStatus) as info:
        async with connect(auth_server.ws_url + path, additional_headers=headers):
            pass
    assert info.value.response.status_code == status
    code = msgspec.json.decode(info.value.response.body)["error"]["code"]
    assert code == ("unauthorized" if status == 401 else "forbidden")


def test_sse_without_read_scope_is_401(auth_server: ServerThread) -> None:
    r = httpx.get(f"{auth_server.url}/api/streams/orders/sse", timeout=scaled(10))
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"


async def test_clients_past_the_limit_are_closed_with_1013(auth_server: ServerThread) -> None:
    headers = {"Authorization": f"Bearer {READER_KEY}"}
    with httpx.Client(base_url=auth_server.url, timeout=scaled(10)) as http:
        append(http, "orders.crowd", 1, headers=WRITER)  # its own stream: no other test's
    url = f"{auth_server.ws_url}/api/streams/orders.crowd/firehose"
    async with connect(url, additional_headers=headers), connect(url, additional_headers=headers):
        await asyncio.to_thread(
            wait_for_gauge, auth_server, "eventlog_firehose_clients", '{transport="ws"}', 2
        )
        async with connect(url, additional_headers=headers) as third:
            with pytest.raises(websockets.ConnectionClosed) as info:
                await asyncio.wait_for(third.recv(), scaled(10))
        async with httpx.AsyncClient(timeout=scaled(10)) as http:
            r = await http.get(f"{auth_server.url}/api/streams/orders.crowd/sse", headers=headers)
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "too_many_clients"
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 1013
    assert "limit 2" in info.value.rcvd.reason
    await asyncio.to_thread(
        wait_for_gauge, auth_server, "eventlog_firehose_clients", '{transport="ws"}', 0
    )
    refused = gauge(auth_server, "eventlog_firehose_refused_clients_total", '{transport="ws"}')
    assert refused == 1


async def test_metrics_count_frames_and_bytes(fh_server: ServerThread) -> None:
    with httpx.Client(base_url=fh_server.url, timeout=scaled(10)) as http:
        append(http, "metered", 10, payload=100)
    before_frames = gauge(fh_server, "eventlog_firehose_frames_sent_total", '{transport="ws"}')
    before_bytes = gauge(fh_server, "eventlog_firehose_bytes_sent_total", '{transport="ws"}')
    received = 0
    async with connect(f"{fh_server.ws_url}/api/streams/metered/firehose?from=0") as ws:
        for _ in range(10):
            received += len((await ws.recv()).encode())  # type: ignore[union-attr]
    frames = gauge(fh_server, "eventlog_firehose_frames_sent_total", '{transport="ws"}')
    nbytes = gauge(fh_server, "eventlog_firehose_bytes_sent_total", '{transport="ws"}')
    assert frames - before_frames == 10
    assert nbytes - before_bytes == received


async def test_server_shutdown_closes_firehose_clients(tmp_path: Path) -> None:
    with ServerProcess.start(db=f"{tmp_path}/e.db") as server:
        async with connect(f"{server.ws_url}/api/events/firehose") as ws:
            await asyncio.to_thread(
                wait_for_gauge, server, "eventlog_firehose_clients", '{transport="ws"}', 1
            )
            code = await asyncio.to_thread(server.stop)
            with pytest.raises(websockets.ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), scaled(10))
        assert code == 0
        assert info.value.rcvd is not None
        assert info.value.rcvd.code in (1001, 1012)  # going away / service restart
