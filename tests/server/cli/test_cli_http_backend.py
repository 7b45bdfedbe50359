"""``HttpBackend``'s answer and error mapping, against a loopback HTTP server with canned answers.

The behaviour against the real eventlog server is covered in ``test_cli_http.py``;
here are the answers a real server rarely gives: proxies' HTML errors,
malformed bodies, a dropped connection. The canned server is aiohttp's, on
127.0.0.1 port 0, so the requests go through the client's real HTTP stack.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import msgspec
import pytest
from aiohttp import web

from server.cli.backend import CliError, OutOfRange, Unavailable
from server.cli.events import OutEvent
from server.cli.http import HttpBackend
from tests.support import refused_port


class Seen:
    """A request as the canned server received it."""

    def __init__(self, path: str, headers: dict[str, str], query: dict[str, str], body: bytes):
        self.path, self.headers, self.query, self.body = path, headers, query, body


Handler = Callable[[Seen], web.Response]


@asynccontextmanager
async def backend(handler: Handler, api_key: str | None = None) -> AsyncIterator[HttpBackend]:
    async def answer(request: web.Request) -> web.Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        return handler(Seen(request.path, headers, dict(request.query), await request.read()))

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with HttpBackend(f"http://127.0.0.1:{port}/", api_key) as http:
            yield http
    finally:
        await runner.cleanup()


def json_answer(status: int, value: object) -> web.Response:
    return web.Response(
        status=status, body=msgspec.json.encode(value), content_type="application/json"
    )


def error(status: int, code: str, message: str, path: str | None = None) -> web.Response:
    body: dict[str, str] = {"code": code, "message": message}
    if path is not None:
        body["path"] = path
    return json_answer(status, {"error": body})


async def test_append_sends_an_array_with_ids_and_the_bearer_key() -> None:
    seen: list[Seen] = []

    def handler(request: Seen) -> web.Response:
        seen.append(request)
        sent = msgspec.json.decode(request.body)
        n = len(sent) if isinstance(sent, list) else 1
        return json_answer(201, {"offsets": list(range(n)), "written": n, "next_offset": n})

    async with backend(handler, api_key="k") as http:
        one = await http.append("a.b", [OutEvent(type="t", data=msgspec.Raw(b"[1, 2]"))])
        two = await http.append("a.b", [OutEvent(type="t"), OutEvent(type="u", key="k")])
    assert (one.offsets, two.offsets, two.written) == ([0], [0, 1], 2)
    assert seen[0].path == "/api/streams/a.b/events"
    assert seen[0].headers["authorization"] == "Bearer k"
    assert seen[0].headers["content-type"] == "application/json"
    # Always an array: a bad event is named $[0] as with --db (append_batch_result on the log).
    assert seen[0].body.startswith(b'[{"type":"t","data":[1, 2],"id":"')  # data untouched
    # data null is the server's default too, so it is left out; the ids are the client's
    sent = msgspec.json.decode(seen[1].body)
    assert [{k: v for k, v in e.items() if k != "id"} for e in sent] == [
        {"type": "t"},
        {"type": "u", "key": "k"},
    ]
    assert all(len(e["id"]) == 36 for e in sent)


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
            web.Response(status=503, text="<html>\n busy </html>"),
            Unavailable,
            "server answered HTTP 503: <html> busy </html>",
        ),
        (web.Response(status=502, text=""), CliError, "server answered HTTP 502: Bad Gateway"),
        (json_answer(500, {"unexpected": True}), CliError, "server answered HTTP 500"),
    ],
)
async def test_error_answers_keep_the_servers_message(
    response: web.Response, kind: type[CliError], message: str
) -> None:
    async with backend(lambda request: response) as http:
        with pytest.raises(kind) as caught:
            await http.read("s", 0, 10, 0)
    assert type(caught.value) is kind
    assert message in caught.value.message
    assert caught.value.exit_code == 1
    if response.body is not None and b"path" in bytes(response.body):  # type: ignore[arg-type]
        assert caught.value.path == "$[1].type"


async def test_malformed_success_bodies_are_reported_not_crashed_on() -> None:
    async with backend(lambda request: web.Response(status=200, text="not json")) as http:
        with pytest.raises(CliError, match="unexpected answer to a read"):
            await http.read("s", 0, 10, 0)
    answer = {"offsets": [1], "written": 1, "next_offset": 2}
    async with backend(lambda request: json_answer(201, answer)) as http:
        with pytest.raises(CliError, match="returned 1 offsets for 2 events"):
            await http.append("s", [OutEvent(type="t"), OutEvent(type="t")])


async def test_a_dropped_connection_is_unavailable() -> None:
    with refused_port() as port:
        async with HttpBackend(f"http://127.0.0.1:{port}") as http:
            with pytest.raises(Unavailable, match=rf"cannot reach the server at .*:{port}"):
                await http.streams()


async def test_missing_stream_is_none_and_reads_pass_from_limit_wait() -> None:
    seen: list[Seen] = []

    def handler(request: Seen) -> web.Response:
        seen.append(request)
        if request.path == "/api/streams/gone":
            return error(404, "stream_not_found", "stream 'gone' does not exist")
        return json_answer(200, {"stream": "s", "events": [], "next_offset": 5})

    async with backend(handler) as http:
        assert await http.stream_info("gone") is None
        assert await http.read("s", 5, 100, 2.5) == []
    assert seen[1].query == {"from": "5", "limit": "100", "wait": "2.5"}
