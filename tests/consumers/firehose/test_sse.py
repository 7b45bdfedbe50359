"""The firehose as Server-Sent Events: ``curl -N`` and httpx streaming against a real server."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time

import httpx
import msgspec

from tests.consumers.firehose.clients import append, gauge, wait_for_gauge
from tests.serverthread import ServerThread
from tests.support import scaled


def parse_sse(text: str) -> list[dict[str, str]]:
    """Split an event stream into messages (dicts of field -> value); comments dropped."""
    messages = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        if fields:
            messages.append(fields)
    return messages


def dechunk(body: bytes) -> bytes:
    """The payload of an HTTP/1.1 chunked body."""
    out, pos = b"", 0
    while True:
        end = body.index(b"\r\n", pos)
        size = int(body[pos:end], 16)
        if size == 0:
            return out
        out += body[end + 2 : end + 2 + size]
        pos = end + 2 + size + 2


def curl_sse(url: str, *headers: str, last_id: str) -> str:
    """What ``curl -N`` prints up to the message with id ``last_id`` and the keepalive
    after it (SSE never ends by itself; a keepalive is sent only once the stream has
    had nothing to send for ``EVENTLOG_FIREHOSE_KEEPALIVE``, so nothing was held back).
    curl is stopped then; at most 20 s."""
    args = ["curl", "-sN", "--max-time", str(scaled(20))]
    for header in headers:
        args += ["-H", header]
    done = re.compile(rf"^id: {re.escape(last_id)}\n(.*\n)*: keepalive\n", re.MULTILINE)
    text = ""
    with subprocess.Popen([*args, url], stdout=subprocess.PIPE) as curl:
        assert curl.stdout is not None
        while not done.search(text) and (chunk := os.read(curl.stdout.fileno(), 1 << 16)):
            text += chunk.decode()
        curl.terminate()
    assert done.search(text), f"no id {last_id} then keepalive within 20 s: {text}"
    return text


def test_curl_resumes_after_last_event_id(fh_server: ServerThread, http: httpx.Client) -> None:
    append(http, "sse-resume", 20)
    text = curl_sse(f"{fh_server.url}/api/streams/sse-resume/sse", "Last-Event-ID: 9", last_id="19")
    messages = parse_sse(text)
    assert [int(m["id"]) for m in messages] == list(range(10, 20))
    for m in messages:
        event = msgspec.json.decode(m["data"])
        assert event["offset"] == int(m["id"])
        assert event["stream"] == "sse-resume"


def test_last_event_id_takes_precedence_over_from(
    fh_server: ServerThread, http: httpx.Client
) -> None:
    append(http, "sse-prec", 5)
    url = f"{fh_server.url}/api/streams/sse-prec/sse?from=beginning"
    assert [m["id"] for m in parse_sse(curl_sse(url, "Last-Event-ID: 2", last_id="4"))] == [
        "3",
        "4",
    ]


def test_httpx_stream_gets_live_events_and_keepalive_comments(
    fh_server: ServerThread, http: httpx.Client
) -> None:
    append(http, "sse-live", 1)
    url = f"{fh_server.url}/api/streams/sse-live/sse?types=keep.*"
    buffer = ""
    with (
        httpx.Client(timeout=scaled(10)) as client,
        client.stream("GET", url) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        append(http, "sse-live", 4, types=("keep.a", "drop.b"))
        deadline = time.monotonic() + scaled(10)
        for chunk in response.iter_text():
            buffer += chunk
            if buffer.count("id: ") >= 2 and ": keepalive" in buffer:
                break
            assert time.monotonic() < deadline, buffer
    messages = parse_sse(buffer)
    assert [m["id"] for m in messages] == ["1", "3"]
    assert {msgspec.json.decode(m["data"])["type"] for m in messages} == {"keep.a"}


def test_sse_batches_are_json_arrays_with_the_last_offset_as_id(
    fh_server: ServerThread, http: httpx.Client
) -> None:
    append(http, "sse-batch", 5)
    url = f"{fh_server.url}/api/streams/sse-batch/sse?from=beginning&batch=2"
    messages = parse_sse(curl_sse(url, last_id="4"))
    assert [m["id"] for m in messages] == ["1", "3", "4"]
    batches = [msgspec.json.decode(m["data"]) for m in messages]
    assert [[e["offset"] for e in b] for b in batches] == [[0, 1], [2, 3], [4]]


def test_sse_bad_input_is_a_json_4xx(fh_server: ServerThread, http: httpx.Client) -> None:
    append(http, "sse-bad", 1)
    cases = [
        ("/api/streams/sse-bad/sse?from=x", {}, 400, "invalid_position"),
        ("/api/streams/sse-bad/sse", {"Last-Event-ID": "abc"}, 400, "invalid_position"),
        ("/api/streams/sse-bad/sse?types=,", {}, 400, "invalid_input"),
        ("/api/streams/nowhere/sse", {}, 404, "stream_not_found"),
        ("/api/streams/-bad/sse", {}, 400, "invalid_stream_name"),
    ]
    for path, headers, status, code in cases:
        r = http.get(path, headers=headers)
        assert r.status_code == status, (path, r.text)
        assert r.json()["error"]["code"] == code


def test_a_stalled_sse_client_gets_a_closed_event_with_its_resume_offset(
    fh_server: ServerThread, http: httpx.Client
) -> None:
    append(http, "sse-slow", 1)
    with socket.create_connection(("127.0.0.1", fh_server.port), timeout=scaled(30)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
        sock.sendall(b"GET /api/streams/sse-slow/sse?from=0 HTTP/1.1\r\nHost: x\r\n\r\n")
        # Stall: read nothing while up to 30,000 events (~20 MB) are appended, a
        # thousand at a time until the server gives up on the client.
        slow = ("eventlog_firehose_slow_disconnects_total", '{transport="sse"}')
        for _ in range(30):
            append(http, "sse-slow", 1000, payload=600)
            if gauge(fh_server, *slow) == 1:
                break
        wait_for_gauge(fh_server, *slow, 1, 30)
        received = b""  # up to the response's last chunk (the connection may stay open)
        while not received.endswith(b"\r\n0\r\n\r\n") and (chunk := sock.recv(1 << 20)):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"transfer-encoding: chunked" in head.lower()
    messages = parse_sse(dechunk(body).decode())
    closed = [m for m in messages if m.get("event") == "closed"]
    assert len(closed) == 1
    info = msgspec.json.decode(closed[0]["data"])
    assert info["code"] == 4008
    assert f"from={info['resume_from']}" in info["reason"]
    ids = [int(m["id"]) for m in messages if "id" in m]
    assert ids == list(range(info["resume_from"]))  # everything before it, nothing after


def test_deleting_the_stream_ends_sse_with_that_reason(
    fh_server: ServerThread, http: httpx.Client
) -> None:
    append(http, "sse-gone", 2)
    url = f"{fh_server.url}/api/streams/sse-gone/sse?from=beginning"
    buffer = ""
    deleted = False
    with httpx.Client(timeout=scaled(10)) as client, client.stream("GET", url) as response:
        deadline = time.monotonic() + scaled(10)
        for chunk in response.iter_text():
            buffer += chunk
            if buffer.count("id: ") == 2 and not deleted:
                assert http.delete("/api/streams/sse-gone").status_code == 204
                deleted = True
            if "event: closed" in buffer:
                break
            assert time.monotonic() < deadline, buffer
    closed = [m for m in parse_sse(buffer) if m.get("event") == "closed"]
    assert len(closed) == 1
    ending = msgspec.json.decode(closed[0]["data"])
    assert ending["code"] == 1001
    assert ending["reason"] == "stream 'sse-gone' was deleted"
    assert ending["resume_from"] == 0  # the stream, if made again, starts over
    assert http.get("/healthz").status_code == 200  # the server itself keeps running
