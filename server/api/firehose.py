"""The firehose over WebSocket and Server-Sent Events.

* ``WS  /api/events/firehose`` — the default stream, ``events``;
* ``WS  /api/streams/{stream}/firehose``;
* ``GET /api/streams/{stream}/sse``.

Query parameters: ``from`` (offset, ``beginning``, ``end``; default ``end``),
``types`` (comma-separated globs), ``key``, ``batch`` (events per frame).
Bad parameters, missing auth and unknown streams are answered before the
WebSocket upgrade with eventlog's JSON error body and a 4xx status. After the
upgrade, the close codes are (see docs/firehose.md):

====  ==========================================================================
1000  normal closure (the client closed)
1001  server shutting down, or the stream was deleted
1003  the client sent a message (the firehose is send-only)
1013  too many firehose clients; retry later
4008  slow client: its queue passed the bound; the reason names ``from=<offset>``
4416  retention removed events the client still needed; reconnect ``from=beginning``
====  ==========================================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Literal

import msgspec
from prometheus_client import Counter, Gauge
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from consumers.firehose import Firehose, FirehoseFull, Subscription, SubscriptionEnded
from consumers.firehose_core import (
    EventFilter,
    Frame,
    Limits,
    parse_batch,
    parse_from,
    parse_key,
    parse_last_event_id,
    parse_types,
)
from eventlog import EventLog, EventLogError, LogClosed, OffsetOutOfRange, StreamNotFound
from eventlog.model import Beginning, End, validate_stream_name
from server.auth import require
from server.config import ServerConfig
from server.errors import ApiError, error_response, status_for, ws_close_code_for
from server.metrics import metrics_of

__all__ = ["CLOSE_CODES", "FirehoseEndpoint", "firehose_of", "routes"]

logger = logging.getLogger("eventlog.firehose")

DEFAULT_STREAM = "events"

#: The close codes the firehose uses after the upgrade, and what they mean.
CLOSE_CODES: dict[int, str] = {
    1000: "normal closure",
    1001: "server shutting down, or the stream was deleted",
    1003: "the client sent a message: the firehose is send-only",
    1013: "too many firehose clients; retry later",
    4008: "slow client: reconnect with the from= offset named in the reason",
    4416: "events the client needed were removed by retention; reconnect from=beginning",
}
CLOSE_SLOW = 4008
CLOSE_GONE = 4416

Transport = Literal["ws", "sse"]


# -- shared plumbing -------------------------------------------------------------


def firehose_of(conn: HTTPConnection) -> Firehose:
    """The app's :class:`Firehose`, created with the server's limits on first use."""
    state = conn.app.state
    firehose: Firehose | None = getattr(state, "firehose", None)
    if firehose is None:
        config: ServerConfig = state.config
        limits = Limits(
            queue_events=config.firehose_queue_events,
            queue_bytes=config.firehose_queue_bytes,
            page=config.firehose_page,
            backlog_events=config.firehose_backlog_events,
        )
        log: EventLog = state.log
        firehose = state.firehose = Firehose(log, limits, config.firehose_max_clients)
    return firehose


class _Metrics:
    """The firehose's metrics on the server's registry."""

    def __init__(self, conn: HTTPConnection) -> None:
        m = metrics_of(conn.app)
        self.clients: Gauge = m.gauge(
            "firehose_clients", "Connected firehose clients", ["transport"]
        )
        self.frames: Counter = m.counter(
            "firehose_frames_sent", "Firehose frames (messages) sent", ["transport"]
        )
        self.events: Counter = m.counter(
            "firehose_events_sent", "Events sent to firehose clients", ["transport"]
        )
        self.bytes: Counter = m.counter(
            "firehose_bytes_sent", "Payload bytes sent to firehose clients", ["transport"]
        )
        self.slow: Counter = m.counter(
            "firehose_slow_disconnects", "Firehose clients closed for falling behind", ["transport"]
        )
        self.refused: Counter = m.counter(
            "firehose_refused_clients",
            "Firehose clients refused at the client limit",
            ["transport"],
        )


@dataclass(frozen=True)
class _Request:
    stream: str
    start: int
    filter: EventFilter
    batch: int


async def _prepare(conn: HTTPConnection, stream: str, *, sse: bool) -> _Request:
    """Validate everything before the upgrade: stream name, auth, parameters, start offset."""
    validate_stream_name(stream)
    require(conn, "read", stream)
    params = conn.query_params
    for name in ("from", "types", "key", "batch"):
        if len(params.getlist(name)) > 1:
            raise ApiError(400, "invalid_parameter", f"query parameter {name!r} given twice")
    position = parse_from(params.get("from"))
    last_id = parse_last_event_id(conn.headers.get("last-event-id")) if sse else None
    event_filter = EventFilter(parse_types(params.get("types")), parse_key(params.get("key")))
    batch = parse_batch(params.get("batch"))
    log: EventLog = conn.app.state.log
    try:
        info = await log.stream_info(stream)
        first, head = info.first_offset, info.next_offset
    except StreamNotFound:
        if stream != DEFAULT_STREAM:
            raise
        first = head = 0  # the default stream always exists, empty until the first append
    if last_id is not None:
        start = last_id + 1
    elif isinstance(position, Beginning):
        start = first
    elif isinstance(position, End):
        start = head
    else:
        start = position.value
    if start < first:
        raise OffsetOutOfRange(stream, start, first)
    return _Request(stream, start, event_filter, batch)


def _error_parts(exc: Exception) -> tuple[int, str, str]:
    if isinstance(exc, ApiError):
        return exc.status, exc.code, exc.message
    if isinstance(exc, EventLogError):
        return status_for(exc), exc.code, str(exc)
    raise exc


def _gone_reason(exc: OffsetOutOfRange) -> str:
    return f"offset {exc.offset} was removed (first retained {exc.first}); use from=beginning"


# -- WebSocket -------------------------------------------------------------------


async def _close(websocket: WebSocket, code: int, reason: str, timeout: float) -> None:
    """Send a close frame, giving a client that does not read ``timeout`` seconds."""
    with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError, TimeoutError):
        async with asyncio.timeout(timeout):
            await websocket.close(code, reason[:123])


async def _ws_sender(send: Send, sub: Subscription, batch: int, metrics: _Metrics) -> None:
    """Send what the subscription yields, one event (or one ``batch``) per text frame.

    ``send`` is the raw ASGI send: Starlette's wrapper costs a few microseconds
    per frame, and this loop runs once per delivery.
    """
    frames_c, events_c, bytes_c = (
        c.labels("ws") for c in (metrics.frames, metrics.events, metrics.bytes)
    )
    while True:
        frames = await sub.frames(256 if batch == 1 else batch)
        if batch == 1:
            done = 0
            try:
                for frame in frames:
                    await send({"type": "websocket.send", "text": frame.text})
                    done += 1
            finally:  # also when cancelled mid-way: the resume offset stays exact
                sub.sent(done)
            frames_c.inc(done)
            nbytes = sum(f.size for f in frames)
        else:
            text = "[" + ",".join(f.text for f in frames) + "]"
            await send({"type": "websocket.send", "text": text})
            sub.sent(len(frames))
            nbytes = len(text)
            frames_c.inc()
        events_c.inc(len(frames))
        bytes_c.inc(nbytes)


async def _ws_receiver(websocket: WebSocket) -> str:
    """Wait for the client to leave ("disconnect") or to send a message ("message")."""
    message = await websocket.receive()
    return "disconnect" if message["type"] == "websocket.disconnect" else "message"


async def _serve_ws(websocket: WebSocket, stream: str, send: Send) -> None:
    config: ServerConfig = websocket.app.state.config
    metrics = _Metrics(websocket)
    try:
        request = await _prepare(websocket, stream, sse=False)
    except (ApiError, EventLogError) as exc:
        status, error_code, message = _error_parts(exc)
        if "websocket.http.response" in websocket.scope.get("extensions", {}):
            await websocket.send_denial_response(error_response(status, error_code, message))
        else:  # a server without the denial extension: accept, then close 4000 + status
            await websocket.accept()
            await _close(
                websocket, 4000 + status, f"{error_code}: {message}", config.firehose_close_timeout
            )
        return
    firehose = firehose_of(websocket)
    try:
        firehose.admit()
    except FirehoseFull as exc:
        metrics.refused.labels("ws").inc()
        await websocket.accept()
        await _close(websocket, 1013, str(exc), config.firehose_close_timeout)
        return
    gauge = metrics.clients.labels("ws")
    gauge.inc()
    try:
        await websocket.accept()
        try:
            sub = await firehose.subscribe(request.stream, request.start, request.filter)
        except LogClosed:
            sub, (code, reason) = None, (1001, "server shutting down")
        if sub is not None:
            async with sub:
                code, reason = await _pump_ws(websocket, send, sub, request, metrics)
        if code == CLOSE_SLOW:
            metrics.slow.labels("ws").inc()
        if code:
            await _close(websocket, code, reason, config.firehose_close_timeout)
    finally:
        gauge.dec()
        firehose.leave()


async def _pump_ws(
    websocket: WebSocket, send: Send, sub: Subscription, request: _Request, metrics: _Metrics
) -> tuple[int, str]:
    """Run sender and receiver until one ends; the close code and reason to send (0: none)."""
    sender = asyncio.create_task(_ws_sender(send, sub, request.batch, metrics))
    sub.on_end = sender.cancel  # a slow or ended client may be blocked in a send
    receiver = asyncio.create_task(_ws_receiver(websocket))
    stopping = _stopping_task(websocket)
    tasks = {sender, receiver} | ({stopping} if stopping else set())
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        sub.on_end = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if receiver.done() and not receiver.cancelled() and receiver.exception() is None:
        if receiver.result() == "disconnect":
            return 0, ""
        return 1003, "the firehose is send-only: do not send messages"
    if stopping is not None and stopping.done() and not stopping.cancelled():
        return 1001, "server shutting down"
    ended = sub.subscriber
    exc = None if sender.cancelled() else sender.exception()
    if isinstance(exc, OffsetOutOfRange):
        return ws_close_code_for(exc), _gone_reason(exc)  # 4416
    if isinstance(exc, (WebSocketDisconnect, OSError)):  # uvicorn's ClientDisconnected
        return 0, ""
    if exc is not None and not isinstance(exc, SubscriptionEnded):
        logger.error("firehose sender failed", exc_info=exc)
        return 1011, "internal error"
    if ended.phase.value == "overflowed":
        return CLOSE_SLOW, f"slow client; reconnect with from={sub.resume_offset}"
    return 1001, ended.reason or "firehose ended"


def _stopping_task(conn: HTTPConnection) -> asyncio.Task[bool] | None:
    stopping: asyncio.Event | None = getattr(conn.app.state, "stopping", None)
    return None if stopping is None else asyncio.create_task(stopping.wait())


class FirehoseEndpoint:
    """The WebSocket firehose as a raw ASGI endpoint (it keeps the raw ``send``).

    Args:
        stream: A fixed stream (``/api/events/firehose``), or None to take the
            ``{stream}`` path parameter.
    """

    def __init__(self, stream: str | None = None) -> None:
        self.stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        await _serve_ws(websocket, self.stream or websocket.path_params["stream"], send)


# -- Server-Sent Events ----------------------------------------------------------

_SSE_HEADERS = {
    "cache-control": "no-cache",
    "x-accel-buffering": "no",  # tell reverse proxies not to buffer the stream
}


def _sse_chunk(frames: list[Frame], batch: int) -> str:
    if batch == 1:
        return "".join(f"id: {f.offset}\ndata: {f.text}\n\n" for f in frames)
    parts = []
    for i in range(0, len(frames), batch):
        group = frames[i : i + batch]
        body = ",".join(f.text for f in group)
        parts.append(f"id: {group[-1].offset}\ndata: [{body}]\n\n")
    return "".join(parts)


class _SSEStream(Response):
    """A ``text/event-stream`` response fed by a subscription."""

    media_type = "text/event-stream"

    def __init__(self, request: _Request, conn: Request) -> None:
        # Like StreamingResponse: no body attribute, so no content-length header.
        self.status_code = 200
        self.background = None
        self.init_headers(_SSE_HEADERS)
        self._request = request
        self._conn = conn

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        conn = self._conn
        config: ServerConfig = conn.app.state.config
        metrics = _Metrics(conn)
        firehose = firehose_of(conn)
        try:
            firehose.admit()
        except FirehoseFull as exc:
            metrics.refused.labels("sse").inc()
            response = error_response(
                503, "too_many_clients", str(exc), headers={"retry-after": "5"}
            )
            await response(scope, receive, send)
            return
        gauge = metrics.clients.labels("sse")
        gauge.inc()
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            await send({"type": "http.response.body", "body": b": ok\n\n", "more_body": True})
            req = self._request
            try:
                sub = await firehose.subscribe(req.stream, req.start, req.filter)
            except LogClosed:
                final: bytes | None = b": server shutting down\n\n"
            else:
                async with sub:
                    final = await self._pump(sub, send, receive, config, metrics)
            if final is not None:
                with contextlib.suppress(OSError, TimeoutError):
                    async with asyncio.timeout(config.firehose_close_timeout):
                        await send({"type": "http.response.body", "body": final, "more_body": True})
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(config.firehose_close_timeout):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            gauge.dec()
            firehose.leave()

    async def _pump(
        self,
        sub: Subscription,
        send: Send,
        receive: Receive,
        config: ServerConfig,
        metrics: _Metrics,
    ) -> bytes | None:
        """Stream until the client leaves or the feed ends; the final message to send, if any."""
        batch = self._request.batch
        labels = [c.labels("sse") for c in (metrics.frames, metrics.events, metrics.bytes)]

        async def sender() -> None:
            while True:
                frames = await sub.frames(256, idle_timeout=config.firehose_keepalive)
                body = (_sse_chunk(frames, batch) if frames else ": keepalive\n\n").encode()
                await send({"type": "http.response.body", "body": body, "more_body": True})
                sub.sent(len(frames))
                labels[0].inc(len(frames) if batch == 1 else -(-len(frames) // batch))
                labels[1].inc(len(frames))
                labels[2].inc(len(body))

        async def receiver() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        send_task = asyncio.create_task(sender())
        sub.on_end = send_task.cancel
        recv_task = asyncio.create_task(receiver())
        stopping = _stopping_task(self._conn)
        tasks = {send_task, recv_task} | ({stopping} if stopping else set())
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sub.on_end = None
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if recv_task.done() and not recv_task.cancelled():
            return None
        code, reason = 1001, "server shutting down"
        exc = None if send_task.cancelled() else send_task.exception()
        if isinstance(exc, OffsetOutOfRange):
            code, reason = CLOSE_GONE, _gone_reason(exc)
        elif exc is not None and not isinstance(exc, SubscriptionEnded):
            if isinstance(exc, OSError):
                return None
            logger.error("firehose SSE sender failed", exc_info=exc)
            code, reason = 1011, "internal error"
        elif sub.subscriber.phase.value == "overflowed":
            code, reason = CLOSE_SLOW, f"slow client; reconnect with from={sub.resume_offset}"
            metrics.slow.labels("sse").inc()
        elif stopping is None or not stopping.done():
            reason = sub.subscriber.reason or "firehose ended"
        body = msgspec.json.encode(
            {"code": code, "reason": reason, "resume_from": sub.resume_offset}
        ).decode()
        return f"event: closed\ndata: {body}\n\n".encode()


async def sse(request: Request) -> Response:
    """``GET /api/streams/{stream}/sse``: the firehose as Server-Sent Events."""
    prepared = await _prepare(request, request.path_params["stream"], sse=True)
    return _SSEStream(prepared, request)


routes: list[BaseRoute] = [
    WebSocketRoute("/api/events/firehose", FirehoseEndpoint(DEFAULT_STREAM)),
    WebSocketRoute("/api/streams/{stream}/firehose", FirehoseEndpoint()),
    Route("/api/streams/{stream}/sse", sse, methods=["GET"]),
]
