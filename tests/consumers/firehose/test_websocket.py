"""The WebSocket firehose over a real ``eventlog serve``, read with the real ``websocat`` binary."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from typing import Any

import httpx
import msgspec
import pytest
import websockets
from websockets.asyncio.client import connect

from eventlog import EventLog, Retention
from tests.consumers.firehose.clients import Websocat, append, gauge, wait_for_gauge
from tests.serverthread import ServerThread
from tests.support import scaled, wait_until_sync

EVENT_FIELDS = {"stream", "offset", "id", "type", "key", "time", "headers", "data"}


def test_websocat_prints_each_live_event_as_one_json_line(
    fh_server: ServerThread, http: httpx.Client
) -> None:
    before = gauge(fh_server, "eventlog_firehose_clients", '{transport="ws"}')
    with Websocat(f"{fh_server.ws_url}/api/events/firehose") as ws:  # default stream, from=end
        wait_for_gauge(fh_server, "eventlog_firehose_clients", '{transport="ws"}', before + 1)
        offsets = append(http, "events", 3, types=("order.created", "order.paid"))
        lines = ws.read(3)
    assert [e["offset"] for e in lines] == offsets
    assert all(set(e) == EVENT_FIELDS for e in lines)
    assert [e["type"] for e in lines] == ["order.created", "order.paid", "order.created"]
    assert [e["data"] for e in lines] == [{"i": i, "pad": ""} for i in range(3)]
    assert {e["stream"] for e in lines} == {"events"}


def test_websocat_replays_ten_thousand_events_from_the_beginning(
    fh_server: ServerThread, http: httpx.Client
) -> None:
    append(http, "replay", 10_000)
    with Websocat(f"{fh_server.ws_url}/api/streams/replay/firehose?from=beginning") as ws:
        events = ws.read(10_000, timeout=30)
    assert [e["offset"] for e in events] == list(range(10_000))
    assert [e["data"] for e in events[:2]] == [{"i": 0, "pad": ""}, {"i": 1, "pad": ""}]


def test_resume_from_an_offset_has_no_gap_or_duplicate_while_appends_continue(
    fh_server: ServerThread, http: httpx.Client
) -> None:
    append(http, "resume", 3000)
    stop = threading.Event()
    appended: list[int] = []

    def producer() -> None:
        with httpx.Client(base_url=fh_server.url, timeout=scaled(20)) as c:
            while not stop.is_set() and len(appended) < 20_000:
                appended.extend(append(c, "resume", 200, batch=200))

    thread = threading.Thread(target=producer)
    thread.start()
    try:
        wait_until_sync(lambda: appended, what="appends flowing before the client connects")
        with Websocat(f"{fh_server.ws_url}/api/streams/resume/firehose?from=1234") as ws:
            first = ws.read(4000, timeout=30)
            live = len(appended)  # the client is live now; more appends follow
            wait_until_sync(lambda: len(appended) > live, what="appends after the client is live")
            stop.set()
            thread.join()
            head = appended[-1] + 1
            rest = ws.read(head - 1234 - len(first), timeout=30)
    finally:
        stop.set()
        thread.join()
    offsets = [e["offset"] for e in first + rest]
    assert offsets == list(range(1234, head))
    assert len(appended) > 200  # appends did continue during catch-up and after


def test_type_filter_passes_only_matching_events(
    fh_server: ServerThread, http: httpx.Client
) -> None:
    types = ("order.created", "payment.failed", "order.paid", "user.signed_up")
    append(http, "typed", 400, types=types)
    url = (
        f"{fh_server.ws_url}/api/streams/typed/firehose?from=beginning&types=order.*,user.signed_up"
    )
    with Websocat(url) as ws:
        events = ws.read(300)
        append(http, "typed", 4, types=types)
        events += ws.read(3)
    assert {e["type"] for e in events} == {"order.created", "order.paid", "user.signed_up"}
    assert [e["offset"] for e in events] == [o for o in range(404) if o % 4 != 1]


def test_key_filter_and_batches_of_events_per_frame(
    fh_server: ServerThread, http: httpx.Client
) -> None:
    body = [{"type": "t", "key": f"k{i % 2}", "data": i} for i in range(10)]
    assert http.post("/api/streams/keyed/events", json=body).status_code == 201
    url = f"{fh_server.ws_url}/api/streams/keyed/firehose?from=beginning&key=k1&batch=2"
    flat: list[dict[str, Any]] = []
    with Websocat(url) as ws:
        while len(flat) < 5:  # five matching events, at most two per frame
            (frame,) = ws.read(1)
            assert isinstance(frame, list)
            assert 1 <= len(frame) <= 2
            flat += frame
    assert [e["offset"] for e in flat] == [1, 3, 5, 7, 9]
    assert {e["key"] for e in flat} == {"k1"}


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("from=-1", 400, "invalid_position"),
        ("from=yesterday", 400, "invalid_position"),
        ("types=a,,b", 400, "invalid_input"),
        ("batch=0", 400, "invalid_input"),
        ("batch=5000", 400, "invalid_input"),
        ("key=", 400, "invalid_input"),
        ("from=1&from=2", 400, "invalid_parameter"),
    ],
)
async def test_malformed_parameters_are_refused_before_the_upgrade(
    fh_server: ServerThread, query: str, status: int, code: str
) -> None:
    with pytest.raises(websockets.InvalidStatus) as info:
        async with connect(f"{fh_server.ws_url}/api/events/firehose?{query}"):
            pass
    response = info.value.response
    assert response.status_code == status
    assert msgspec.json.decode(response.body)["error"]["code"] == code


async def test_unknown_and_invalid_streams_are_refused_before_the_upgrade(
    fh_server: ServerThread,
) -> None:
    for path, status, code in [
        ("/api/streams/no-such-stream/firehose", 404, "stream_not_found"),
        ("/api/streams/bad%20name/firehose", 400, "invalid_stream_name"),
    ]:
        with pytest.raises(websockets.InvalidStatus) as info:
            async with connect(fh_server.ws_url + path):
                pass
        assert info.value.response.status_code == status
        assert msgspec.json.decode(info.value.response.body)["error"]["code"] == code
    with Websocat(f"{fh_server.ws_url}/api/streams/no-such-stream/firehose") as ws:
        assert ws.wait() != 0
        assert "404" in ws.stderr()


async def test_offset_before_the_retained_range_is_refused_with_416(
    fh_server: ServerThread, http: httpx.Client
) -> None:
    append(http, "trimmed", 50)
    # Retention runs in the server; a second process on the same SQLite file
    # applies a policy at once, as an operator would.
    async with EventLog.open(fh_server.db) as log:
        await log.set_retention("trimmed", Retention(max_count=10))
        await log.enforce_retention()
    with pytest.raises(websockets.InvalidStatus) as info:
        async with connect(f"{fh_server.ws_url}/api/streams/trimmed/firehose?from=3"):
            pass
    assert info.value.response.status_code == 416
    error = msgspec.json.decode(info.value.response.body)["error"]
    assert error["code"] == "offset_out_of_range"
    assert "first retained offset 40" in error["message"]
    async with connect(f"{fh_server.ws_url}/api/streams/trimmed/firehose?from=beginning") as ws:
        assert msgspec.json.decode(await ws.recv())["offset"] == 40


async def test_offset_beyond_the_head_waits_for_it(
    fh_server: ServerThread, http: httpx.Client
) -> None:
    append(http, "ahead", 5)
    async with connect(f"{fh_server.ws_url}/api/streams/ahead/firehose?from=8") as ws:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.3)
        await asyncio.to_thread(append, http, "ahead", 4)
        event = msgspec.json.decode(await asyncio.wait_for(ws.recv(), scaled(10)))
    assert event["offset"] == 8


async def test_a_client_that_sends_messages_is_closed_with_1003(
    fh_server: ServerThread, http: httpx.Client
) -> None:
    append(http, "chatty", 1)
    async with connect(f"{fh_server.ws_url}/api/streams/chatty/firehose?from=0") as ws:
        assert msgspec.json.decode(await ws.recv())["offset"] == 0
        await ws.send("garbage \x00 frame")
        with pytest.raises(websockets.ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), scaled(10))
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 1003
    assert "send-only" in info.value.rcvd.reason


def test_protocol_garbage_from_a_client_closes_only_that_connection(
    fh_server: ServerThread, http: httpx.Client
) -> None:
    append(http, "garbage", 1)
    before = gauge(fh_server, "eventlog_firehose_clients", '{transport="ws"}')
    with socket.create_connection(("127.0.0.1", fh_server.port), timeout=scaled(10)) as sock:
        sock.sendall(
            b"GET /api/streams/garbage/firehose?from=0 HTTP/1.1\r\nHost: x\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        received = b""
        while b'"offset":0' not in received:  # handshake, then the first event
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk
        assert received.startswith(b"HTTP/1.1 101")
        sock.sendall(b"\x81\x05hello" + os.urandom(64))  # unmasked, then noise: not WebSocket
        rest = b""
        while chunk := sock.recv(65536):
            rest += chunk
    assert b"\x88" in rest  # a close frame (protocol error), then the server hung up
    wait_for_gauge(fh_server, "eventlog_firehose_clients", '{transport="ws"}', before)
    with Websocat(f"{fh_server.ws_url}/api/streams/garbage/firehose?from=0") as ws:
        assert ws.read(1)[0]["offset"] == 0  # the server is fine
