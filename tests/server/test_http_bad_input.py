"""Bad input of every kind gets a clear 4xx JSON error, never a 500 or a hang,
and leaves the log unchanged. Runs against a real server with a 64 KiB body
limit and a 1 s body timeout (see ``shared_server``)."""

from __future__ import annotations

import gzip
import socket
import time
import uuid
import zlib
from collections.abc import Iterator

import httpx
import msgspec
import pytest

from tests.serverthread import ServerThread
from tests.support import scaled

URL = "/api/streams/{}/events"
JSON = "application/json"


def _stream() -> str:
    return f"bad-{uuid.uuid4().hex[:12]}"


def _assert_error(r: httpx.Response, status: int, code: str | None = None) -> dict[str, str]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    error: dict[str, str] = r.json()["error"]
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    return error


def _assert_untouched(client: httpx.Client, stream: str) -> None:
    assert client.get(f"/api/streams/{stream}").status_code == 404


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code", "path"),
    [
        (b"{", JSON, 400, "malformed_json", None),
        (b'{"type": "a",}', JSON, 400, "malformed_json", None),
        (b"\xff\xfe", JSON, 400, "malformed_json", None),
        (b"", JSON, 400, "empty_body", None),
        (b"   ", JSON, 400, "empty_body", None),
        (b'{"data": 1}', JSON, 422, "validation_error", "$"),
        (b'{"type": "a", "extra": 1}', JSON, 422, "validation_error", "$"),
        (b'{"type": 7}', JSON, 422, "validation_error", "$.type"),
        (b'{"type": ""}', JSON, 422, "validation_error", "$.type"),
        (b'{"type": "a", "key": 5}', JSON, 422, "validation_error", "$.key"),
        (b'{"type": "a", "id": ""}', JSON, 422, "validation_error", "$.id"),
        (b'{"type": "a", "headers": {"x": 1}}', JSON, 422, "validation_error", "$.headers[...]"),
        (b'{"type": "a", "headers": []}', JSON, 422, "validation_error", "$.headers"),
        (b'[{"type": "a"}, 3]', JSON, 422, "validation_error", "$[1]"),
        (b"[]", JSON, 422, "empty_batch", "$"),
        (b"42", JSON, 422, "validation_error", "$"),
        (b"null", JSON, 422, "validation_error", "$"),
        (b'"text"', JSON, 422, "validation_error", "$"),
        (b'{"type": "' + b"t" * 300 + b'"}', JSON, 422, "validation_error", "$.type"),
        (b'{"type": "a"}', "text/plain", 415, "unsupported_media_type", None),
        (b'{"type": "a"}', "application/x-www-form-urlencoded", 415, None, None),
        (b'{"type": "a"}', "", 415, "unsupported_media_type", None),
        (b'{"type":"a"}\n{"type":', "application/x-ndjson", 400, "malformed_json", None),
        (b'{"type":"a"}\n{"type":1}', "application/x-ndjson", 422, None, "$[1].type"),
        (b"\n\n", "application/x-ndjson", 400, "empty_body", None),
        (b'{"type":"a"}', "application/cloudevents+json", 422, None, "$"),
        (
            b'{"specversion":"0.3","id":"1","source":"s","type":"t"}',
            "application/cloudevents+json",
            422,
            None,
            "$.specversion",
        ),
        (
            b'{"specversion":"1.0","id":"1","source":"s","type":"t","Bad-Name":1}',
            "application/cloudevents+json",
            422,
            None,
            "$.Bad-Name",
        ),
        (
            b'{"specversion":"1.0","id":"1","source":"s","type":"t","ext":{"a":1}}',
            "application/cloudevents+json",
            422,
            None,
            "$.ext",
        ),
        (b"[]", "application/cloudevents-batch+json", 422, "empty_batch", "$"),
        (b'[{"specversion":"1.0"}]', "application/cloudevents-batch+json", 422, None, "$[0]"),
        # Invalid UTF-8 inside data, which msgspec keeps raw and never checks itself.
        (b'{"type": "bad", "data": "\xff"}', JSON, 400, "malformed_json", "$.data"),
        (b'{"type": "bad", "data": {"k\xc3": 1}}', JSON, 400, "malformed_json", "$.data"),
        (b'{"type": "bad", "data": ["\xed\xa0\x80"]}', JSON, 400, "malformed_json", "$.data"),
        (
            b'[{"type": "a"}, {"type": "a"}, {"type": "a"}, {"type": "b", "data": "\xff"}]',
            JSON,
            400,
            "malformed_json",
            "$[3].data",
        ),
        (
            b'{"type":"a","data":"\xc3\xa9"}\n{"type":"b","data":"\xff"}',
            "application/x-ndjson",
            400,
            "malformed_json",
            "$[1].data",
        ),
        (
            b'{"specversion":"1.0","id":"1","source":"s","type":"t","data":"\xff"}',
            "application/cloudevents+json",
            400,
            "malformed_json",
            "$.data",
        ),
        (
            b'[{"specversion":"1.0","id":"1","source":"s","type":"t","data":"\xfe"}]',
            "application/cloudevents-batch+json",
            400,
            "malformed_json",
            "$[0].data",
        ),
    ],
)
def test_bad_append_body_is_a_clear_4xx_and_writes_nothing(
    client: httpx.Client,
    body: bytes,
    content_type: str,
    status: int,
    code: str | None,
    path: str | None,
) -> None:
    s = _stream()
    headers = {"content-type": content_type} if content_type else {}
    r = client.post(URL.format(s), content=body, headers=headers)
    error = _assert_error(r, status, code)
    if path is not None:
        assert error["path"] == path
    _assert_untouched(client, s)


@pytest.mark.parametrize(
    "name",
    ["-leading-dash", "has space", "ünïcødé", "a" * 129, "semi;colon", "日本", ".dot", "x%00y"],
)
def test_invalid_stream_name_is_400(client: httpx.Client, name: str) -> None:
    r = client.post(URL.format(name), json={"type": "a"})
    _assert_error(r, 400, "invalid_stream_name")
    _assert_error(client.get(URL.format(name)), 400, "invalid_stream_name")
    _assert_error(client.get(f"/api/streams/{name}"), 400, "invalid_stream_name")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/api/consumers/c1", {"stream": "has space", "position": 0}),
        ("PUT", "/api/consumers/c1/shared", {"stream": "has space"}),
    ],
)
def test_a_bad_stream_name_in_a_body_says_the_rule_not_a_regex(
    client: httpx.Client, method: str, path: str, body: dict[str, object]
) -> None:
    error = _assert_error(client.request(method, path, json=body), 422, "validation_error")
    assert error["message"] == (
        "Expected a name of 1-128 characters of [A-Za-z0-9._-], starting with a letter or digit"
        " - at `$.stream`"
    )
    assert error["path"] == "$.stream"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"from": "-1"}, "invalid_parameter"),
        ({"from": "abc"}, "invalid_parameter"),
        ({"from": "1.5"}, "invalid_parameter"),
        ({"from": "99999999999999999999999"}, "invalid_parameter"),
        ({"from": "٣"}, "invalid_parameter"),  # a non-ASCII digit
        ({"limit": "0"}, "invalid_parameter"),
        ({"limit": "-5"}, "invalid_parameter"),
        ({"limit": "1000000"}, "invalid_parameter"),
        ({"wait": "-1"}, "invalid_parameter"),
        ({"wait": "soon"}, "invalid_parameter"),
        ({"wait": "nan"}, "invalid_parameter"),
        ({"wait": "inf"}, "invalid_parameter"),
    ],
)
def test_bad_read_parameters_are_400(
    client: httpx.Client, params: dict[str, str], code: str
) -> None:
    _assert_error(client.get(URL.format(_stream()), params=params), 400, code)


@pytest.mark.parametrize("value", ["0", "abc"])
def test_a_bad_limit_names_the_same_range_whatever_is_wrong(
    client: httpx.Client, value: str
) -> None:
    r = client.get(URL.format(_stream()), params={"limit": value})
    message = _assert_error(r, 400, "invalid_parameter")["message"]
    assert message.startswith("query parameter 'limit' must be an integer from 1 to ")


@pytest.mark.parametrize("value", ["-1", "x", "1e3", ""])
def test_bad_expected_offset_is_400(client: httpx.Client, value: str) -> None:
    s = _stream()
    r = client.post(URL.format(s), params={"expected_offset": value}, json={"type": "a"})
    _assert_error(r, 400, "invalid_parameter")
    _assert_untouched(client, s)


def test_declared_oversized_body_is_413_before_it_is_sent(shared_server: ServerThread) -> None:
    """A Content-Length over the limit is refused at once: the client sends
    the headers only and reads the 413 without writing a byte of the body."""
    s = _stream()
    with socket.create_connection(("127.0.0.1", shared_server.port), timeout=scaled(10)) as sock:
        sock.sendall(
            f"POST {URL.format(s)} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {10 << 30}\r\n\r\n".encode()
        )
        answer = _read_response(sock)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b'"code":"body_too_large"' in answer


def _chunks(total: int, size: int = 16 << 10) -> Iterator[bytes]:
    yield b'{"type": "a", "data": "'
    sent = 0
    while sent < total:
        yield b"x" * size
        sent += size
    yield b'"}'


def test_chunked_oversized_body_is_413(client: httpx.Client) -> None:
    s = _stream()
    r = client.post(URL.format(s), content=_chunks(1 << 20), headers={"content-type": JSON})
    _assert_error(r, 413, "body_too_large")
    _assert_untouched(client, s)


def test_event_over_the_log_limit_but_under_body_limit_is_413(tmp_path: object) -> None:
    """A 2 MiB single event (the log's max_event_bytes is 1 MiB) under a 16 MiB body limit."""
    with ServerThread.start() as server, httpx.Client(base_url=server.url) as c:
        big = b'{"type": "a", "data": "' + b"x" * (2 << 20) + b'"}'
        r = c.post(URL.format("big"), content=big, headers={"content-type": JSON})
        _assert_error(r, 413, "event_too_large")
        _assert_untouched(c, "big")
        over = [{"type": "a"}] * 10_001
        _assert_error(c.post(URL.format("big"), json=over), 422, "batch_too_large")
        _assert_untouched(c, "big")


def test_slow_client_sending_body_byte_by_byte_gets_408(shared_server: ServerThread) -> None:
    s = _stream()
    body = b'{"type": "slow", "data": "' + b"x" * 100 + b'"}'
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", shared_server.port), timeout=scaled(10)) as sock:
        sock.sendall(
            f"POST {URL.format(s)} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
        )
        for byte in body[:20]:
            sock.sendall(bytes([byte]))
            time.sleep(0.1)
        answer = _read_response(sock)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b'"code":"body_timeout"' in answer
    assert time.monotonic() - started < scaled(10)
    with httpx.Client(base_url=shared_server.url) as c:
        _assert_untouched(c, s)


def test_unknown_routes_and_methods_are_json_errors(client: httpx.Client) -> None:
    _assert_error(client.get("/api/nope"), 404, "not_found")
    _assert_error(client.post(URL.format("a%2Fb"), json={"type": "a"}), 404, "not_found")
    _assert_error(client.patch(URL.format("s1")), 405, "method_not_allowed")
    _assert_error(client.put("/api/consumers/c1", content=b"{}"), 415)
    r = client.put("/api/consumers/c1", content=b'{"stream": 1}', headers={"content-type": JSON})
    assert _assert_error(r, 422)["path"] == "$.stream"
    r = client.put("/api/consumers/c1", content=b"{", headers={"content-type": JSON})
    _assert_error(r, 400, "malformed_json")


def test_bad_idempotency_key_is_400(client: httpx.Client) -> None:
    s = _stream()
    r = client.post(URL.format(s), json={"type": "a"}, headers={"Idempotency-Key": "a b"})
    _assert_error(r, 400, "invalid_idempotency_key")
    _assert_untouched(client, s)


def _read_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_absurdly_deep_json_is_400_not_500(client: httpx.Client) -> None:
    stream = _stream()
    depth = 30_000  # 60 KB: under the test server's 64 KiB body limit
    body = b'{"type": "t", "data": ' + b"[" * depth + b"]" * depth + b"}"
    r = client.post(URL.format(stream), content=body, headers={"content-type": JSON})
    error = _assert_error(r, 400, "malformed_json")
    assert "nested too deeply" in error["message"]
    _assert_untouched(client, stream)


# -- compressed bodies (Content-Encoding) ---------------------------------------------


def _post_encoded(
    client: httpx.Client, stream: str, body: bytes | Iterator[bytes], coding: str
) -> httpx.Response:
    headers = {"content-type": JSON, "content-encoding": coding}
    return client.post(URL.format(stream), content=body, headers=headers)


@pytest.mark.parametrize("coding", ["gzip", "deflate", "GZip", "identity"])
def test_a_compressed_body_is_appended_as_its_inflated_json(
    client: httpx.Client, coding: str
) -> None:
    s = _stream()
    raw = b'[{"type": "a", "data": {"n": 1}}, {"type": "b", "data": "' + b"x" * 5000 + b'"}]'
    body = {
        "gzip": gzip.compress(raw),
        "GZip": gzip.compress(raw),
        "deflate": zlib.compress(raw),
        "identity": raw,
    }[coding]
    r = _post_encoded(client, s, body, coding)
    assert r.status_code == 201, r.text
    assert r.json()["offsets"] == [0, 1]
    events = client.get(URL.format(s)).json()["events"]
    assert [(e["type"], e["data"]) for e in events] == [("a", {"n": 1}), ("b", "x" * 5000)]


def test_a_chunked_gzip_body_is_inflated_across_its_chunks(client: httpx.Client) -> None:
    s = _stream()
    batch = [{"type": "t", "data": {"i": i, "pad": "y" * 100}} for i in range(200)]
    packed = gzip.compress(msgspec.json.encode(batch))
    pieces = (packed[i : i + 1000] for i in range(0, len(packed), 1000))  # sent chunked
    r = _post_encoded(client, s, pieces, "gzip")
    assert r.status_code == 201, r.text
    assert r.json()["written"] == 200
    events = client.get(URL.format(s), params={"limit": 1000}).json()["events"]
    assert [e["data"] for e in events] == [b["data"] for b in batch]


def test_a_coding_other_than_gzip_or_deflate_is_415(client: httpx.Client) -> None:
    s = _stream()
    r = _post_encoded(client, s, b'{"type": "a"}', "br")
    assert "gzip" in _assert_error(r, 415, "unsupported_encoding")["message"]
    _assert_untouched(client, s)


def _count(client: httpx.Client, method: str, route: str, status: int) -> float:
    """The value of ``eventlog_http_requests_total`` for that label set (0 if absent)."""
    series = f'eventlog_http_requests_total{{method="{method}",route="{route}",status="{status}"}}'
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


def test_requests_refused_before_routing_are_counted_under_their_route(
    client: httpx.Client,
) -> None:
    route = "/api/streams/{stream}/events"
    refusals: list[tuple[str, int, httpx.Request]] = [
        (
            "POST",
            415,
            client.build_request(
                "POST",
                URL.format(_stream()),
                content=b"{}",
                headers={"content-type": JSON, "content-encoding": "br"},
            ),
        ),
        ("GET", 400, client.build_request("GET", URL.format(_stream()) + "?from=0&from=5")),
    ]
    for method, status, request in refusals:
        before = _count(client, method, route, status)
        assert client.send(request).status_code == status
        assert _count(client, method, route, status) == before + 1, (method, status)


@pytest.mark.parametrize(
    "body",
    [
        b'{"type": "a"}',  # not compressed at all
        gzip.compress(b'{"type": "a", "data": 1}')[:-12],  # cut short
        gzip.compress(b'{"type": "a"}') + b"trailing",  # data after the end
    ],
    ids=["plain", "truncated", "trailing"],
)
def test_a_body_that_does_not_inflate_is_400(client: httpx.Client, body: bytes) -> None:
    s = _stream()
    r = _post_encoded(client, s, body, "gzip")
    assert "gzip" in _assert_error(r, 400, "malformed_body")["message"]
    _assert_untouched(client, s)


def test_a_small_body_inflating_past_the_limit_is_413(client: httpx.Client) -> None:
    """A 64 KiB limit, and 4 MiB of JSON that gzip makes ~4 KiB: refused once the
    inflated bytes pass the limit, without inflating the rest."""
    s = _stream()
    bomb = gzip.compress(b'{"type": "a", "data": "' + b"x" * (4 << 20) + b'"}')
    assert len(bomb) < 64 << 10
    r = _post_encoded(client, s, bomb, "gzip")
    assert "inflated" in _assert_error(r, 413, "body_too_large")["message"]
    _assert_untouched(client, s)
