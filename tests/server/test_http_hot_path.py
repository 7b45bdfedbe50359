"""The append route's short cuts answer exactly as the general path does.

The request middleware serves ``POST /api/streams/{stream}/events`` itself,
without Starlette's exception and routing layers; mounted under a prefix, the
same app reaches the route through the router. Both must give the same answers,
errors included. And uvicorn's two writes per answer (head, body) leave as one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from eventlog import EventLog
from server.app import create_app
from server.config import ServerConfig
from server.protocols import GuardedHttpProtocol
from server.response_writer import ResponseWriter

JSON = {"content-type": "application/json"}

#: (body, headers, query) -> the status every path must answer.
CASES: list[tuple[bytes, dict[str, str], str, int]] = [
    (b'{"type": "a", "data": {"n": 1}}', JSON, "", 201),
    (b'[{"type": "a"}, {"type": "b", "key": "k"}]', JSON, "", 201),
    (b'{"type": "a"', JSON, "", 400),
    (b'{"type": ""}', JSON, "", 422),
    (b'{"type": "a", "surprise": 1}', JSON, "", 422),
    (b'{"type": "a"}', {"content-type": "text/plain"}, "", 415),
    (b"", JSON, "", 400),
    (b'{"type": "a"}', JSON, "?expected_offset=0", 409),
    (b'{"type": "a"}', JSON, "?expected_offset=x", 400),
    (b'{"type": "a"}', JSON, "?expected_offset=1&expected_offset=2", 400),
    (b'{"type": "a", "data": "\xff"}', JSON, "", 400),
]


@pytest.fixture
async def clients(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """A client of the app at the root (direct path) and one of it mounted at ``/log``."""
    async with (
        EventLog.open(tmp_path / "a.db") as direct_log,
        EventLog.open(tmp_path / "b.db") as mounted_log,
    ):
        direct = create_app(direct_log, ServerConfig(access_log=False))
        inner = create_app(mounted_log, ServerConfig(access_log=False))
        outer = Starlette(routes=[Mount("/log", app=inner)])
        async with (
            httpx.AsyncClient(transport=httpx.ASGITransport(app=direct), base_url="http://t") as a,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=outer), base_url="http://t/log"
            ) as b,
        ):
            yield a, b


async def test_appends_answer_the_same_directly_and_through_the_router(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    direct, routed = clients
    for body, headers, query, status in CASES:
        answers = []
        for client in (direct, routed):
            # Each case on a fresh stream, so expected_offset=0 conflicts only after an append.
            stream = f"s{CASES.index((body, headers, query, status))}"
            if status == 409:
                await client.post(f"/api/streams/{stream}/events", json={"type": "first"})
            r = await client.post(
                f"/api/streams/{stream}/events{query}", content=body, headers=headers
            )
            assert r.headers["x-correlation-id"]
            assert r.headers["content-type"] == "application/json"
            answers.append((r.status_code, r.json()))
        assert answers[0] == answers[1], (body, query)
        assert answers[0][0] == status, (body, query, answers[0])
        if status >= 400:
            assert set(answers[0][1]["error"]) >= {"code", "message"}


async def test_a_bad_stream_name_is_400_on_both_paths(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    for client in clients:
        r = await client.post("/api/streams/-bad/events", json={"type": "a"})
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "invalid_stream_name"


async def test_direct_appends_are_counted_under_their_route_template(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    direct, _ = clients
    await direct.post("/api/streams/m/events", json={"type": "a"})
    await direct.post("/api/streams/m/events", content=b"{", headers=JSON)
    text = (await direct.get("/metrics")).text
    route = 'route="/api/streams/{stream}/events"'
    assert f'eventlog_http_requests_total{{method="POST",{route},status="201"}} 1.0' in text
    assert f'eventlog_http_requests_total{{method="POST",{route},status="400"}} 1.0' in text
    assert 'eventlog_appended_events_total{stream="m"} 1.0' in text


async def test_the_correlation_id_given_is_stored_in_the_event_on_the_direct_path(
    tmp_path: Path,
) -> None:
    async with EventLog.open(tmp_path / "c.db") as log:
        app = create_app(log, ServerConfig(access_log=False))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            r = await client.post(
                "/api/streams/c/events",
                json={"type": "a"},
                headers={"x-correlation-id": "req-42"},
            )
        assert r.status_code == 201
        assert r.headers["x-correlation-id"] == "req-42"
        [event] = await log.read("c", 0, 10)
        assert event.headers["correlation-id"] == "req-42"


class _Transport:
    """Records writes (the unit under test only calls write, close, is_closing)."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


class _Protocol:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport = _Transport()
        self.watched = 0

    def _closed_by_cycle(self) -> None:
        self.watched += 1


async def test_an_answer_head_and_body_leave_in_one_write() -> None:
    protocol = _Protocol(asyncio.get_running_loop())
    writer = ResponseWriter(protocol, protocol._closed_by_cycle)  # type: ignore[arg-type]
    writer.head_next()
    writer.write(b"HTTP/1.1 201 Created\r\n\r\n")
    assert protocol.transport.writes == []
    writer.write(b"{}")
    writer.write(b"more")  # a body's later chunks pass straight through
    assert protocol.transport.writes == [b"HTTP/1.1 201 Created\r\n\r\n{}", b"more"]


async def test_a_head_without_body_bytes_leaves_on_the_next_loop_turn() -> None:
    """A streamed answer (SSE) sends its head and waits: the client must get it."""
    protocol = _Protocol(asyncio.get_running_loop())
    writer = ResponseWriter(protocol, protocol._closed_by_cycle)  # type: ignore[arg-type]
    writer.head_next()
    writer.write(b"HTTP/1.1 200 OK\r\n\r\n")
    await asyncio.sleep(0)
    assert protocol.transport.writes == [b"HTTP/1.1 200 OK\r\n\r\n"]
    writer.write(b"data: 1\n\n")
    assert protocol.transport.writes[-1] == b"data: 1\n\n"


async def test_a_close_by_the_cycle_sends_the_held_head_first_and_starts_the_watch() -> None:
    protocol = _Protocol(asyncio.get_running_loop())
    writer = ResponseWriter(protocol, protocol._closed_by_cycle)  # type: ignore[arg-type]
    writer.head_next()
    writer.write(b"HTTP/1.1 500 Internal Server Error\r\n\r\n")
    writer.close()
    assert protocol.transport.writes == [b"HTTP/1.1 500 Internal Server Error\r\n\r\n"]
    assert protocol.transport.closed
    assert protocol.watched == 1
    await asyncio.sleep(0)  # the scheduled flush finds nothing left to send
    assert len(protocol.transport.writes) == 1


async def test_heads_held_in_one_loop_turn_leave_at_the_next_with_one_callback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()
    protocols = [_Protocol(loop) for _ in range(3)]
    writers = [ResponseWriter(p, p._closed_by_cycle) for p in protocols]  # type: ignore[arg-type]
    scheduled: list[object] = []
    call_soon = loop.call_soon

    def counting(callback: Any, *args: Any, **kwargs: Any) -> asyncio.Handle:
        scheduled.append(callback)
        return call_soon(callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_soon", counting)
    for writer in writers:
        writer.head_next()
        writer.write(b"HTTP/1.1 200 OK\r\n\r\n")
    monkeypatch.undo()
    assert len(scheduled) == 1
    writers[1].write(b"{}")  # its body took the head along
    await asyncio.sleep(0)
    assert [p.transport.writes for p in protocols] == [
        [b"HTTP/1.1 200 OK\r\n\r\n"],
        [b"HTTP/1.1 200 OK\r\n\r\n{}"],
        [b"HTTP/1.1 200 OK\r\n\r\n"],
    ]


async def test_a_body_less_answer_is_not_lost_when_the_next_answer_starts() -> None:
    """HEAD answers have no body write; a pipelined request's answer may follow at once."""
    protocol = _Protocol(asyncio.get_running_loop())
    writer = ResponseWriter(protocol, protocol._closed_by_cycle)  # type: ignore[arg-type]
    writer.head_next()
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    writer.head_next()
    writer.write(b"HTTP/1.1 201 Created\r\n\r\n")
    writer.write(b"{}")
    assert protocol.transport.writes == [
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n",
        b"HTTP/1.1 201 Created\r\n\r\n{}",
    ]


async def test_serve_runs_the_guarded_protocol_and_the_front(tmp_path: Path) -> None:
    from server.front import Front
    from server.serve import uvicorn_config

    async with EventLog.open(tmp_path / "g.db") as log:
        config = uvicorn_config(create_app(log), ServerConfig(), {})
    assert isinstance(config.http, type)
    assert issubclass(config.http, GuardedHttpProtocol)
    assert isinstance(config.app, Front)
    assert not config.proxy_headers  # the front applies them (tests/server/test_front.py)
