"""``HttpBackend``'s answer and error mapping, over httpx's MockTransport (unit scope).

The behaviour against the real server is covered in ``test_cli_http.py``;
here are the answers a real server rarely gives: proxies' HTML errors,
malformed bodies, a dropped connection.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import msgspec
import pytest

from server.cli.backend import CliError, OutOfRange, Unavailable
from server.cli.events import OutEvent
from server.cli.http import HttpBackend

Handler = Callable[[httpx.Request], httpx.Response]


def backend(handler: Handler, api_key: str | None = None) -> HttpBackend:
    return HttpBackend("http://eventlog.test/", api_key, transport=httpx.MockTransport(handler))


def error(status: int, code: str, message: str, path: str | None = None) -> httpx.Response:
    body: dict[str, str] = {"code": code, "message": message}
    if path is not None:
        body["path"] = path
    return httpx.Response(status, json={"error": body})


async def test_append_sends_one_object_or_an_array_with_the_bearer_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        n = len(body) if isinstance(body := msgspec.json.decode(request.content), list) else 1
        return httpx.Response(201, json={"offsets": list(range(n)), "written": n})

    async with backend(handler, api_key="k") as http:
        one = await http.append("a.b", [OutEvent(type="t", data=msgspec.Raw(b"[1, 2]"))])
        two = await http.append("a.b", [OutEvent(type="t"), OutEvent(type="u", key="k")])
    assert (one.offsets, two.offsets, two.written) == ([0], [0, 1], 2)
    assert seen[0].url.path == "/api/streams/a.b/events"
    assert seen[0].headers["authorization"] == "Bearer k"
    assert seen[0].headers["content-type"] == "application/json"
    assert seen[0].content == b'{"type":"t","data":[1, 2]}'
    # data null is the server's default too, so it is left out
    assert msgspec.json.decode(seen[1].content) == [{"type": "t"}, {"type": "u", "key": "k"}]


@pytest.mark.parametrize(
    ("response", "kind", "message"),
    [
        (
            error(422, "validation_error", "bad type", "$[1].type"),
            CliError,
            "bad type (validation_error, HTTP 422)",
        ),
        (error(404, "not_found", "no such route"), CliError, "no such route (not_found, HTTP 404)"),
        (error(416, "offset_out_of_range", "before 7"), OutOfRange, "before 7"),
        (error(503, "log_closed", "closing"), Unavailable, "closing (log_closed, HTTP 503)"),
        (
            httpx.Response(503, text="<html>\n busy </html>"),
            Unavailable,
            "server answered HTTP 503: <html> busy </html>",
        ),
        (httpx.Response(502, text=""), CliError, "server answered HTTP 502: Bad Gateway"),
        (httpx.Response(500, json={"unexpected": True}), CliError, "server answered HTTP 500"),
    ],
)
async def test_error_answers_keep_the_servers_message(
    response: httpx.Response, kind: type[CliError], message: str
) -> None:
    async with backend(lambda request: response) as http:
        with pytest.raises(kind) as caught:
            await http.read("s", 0, 10, 0)
    assert type(caught.value) is kind
    assert message in caught.value.message
    assert caught.value.exit_code == 1
    if "path" in response.text:
        assert caught.value.path == "$[1].type"


async def test_malformed_success_bodies_are_reported_not_crashed_on() -> None:
    async with backend(lambda request: httpx.Response(200, text="not json")) as http:
        with pytest.raises(CliError, match="unexpected answer to a read"):
            await http.read("s", 0, 10, 0)
    answer = {"offsets": [1]}
    async with backend(lambda request: httpx.Response(201, json=answer)) as http:
        with pytest.raises(CliError, match="returned 1 offsets for 2 events"):
            await http.append("s", [OutEvent(type="t"), OutEvent(type="t")])


async def test_a_dropped_connection_is_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with backend(handler) as http:
        with pytest.raises(Unavailable, match=r"cannot reach the server at http://eventlog\.test"):
            await http.streams()


async def test_missing_stream_is_none_and_reads_pass_from_limit_wait() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/api/streams/gone":
            return error(404, "stream_not_found", "stream 'gone' does not exist")
        return httpx.Response(200, json={"stream": "s", "events": [], "next_offset": 5})

    async with backend(handler) as http:
        assert await http.stream_info("gone") is None
        assert await http.read("s", 5, 100, 2.5) == []
    assert dict(seen[1].url.params) == {"from": "5", "limit": "100", "wait": "2.5"}
