"""The firehose over WebSocket: the raw ASGI endpoint, its sender and receiver, close codes.

Bad requests are refused before the upgrade (an HTTP denial response with the
JSON error body, or, without that ASGI extension, accept then close with
``4000 + status``). After the upgrade one task sends frames (one event, or one
``batch``, per text frame) and one waits for the client; whichever ends first
decides the close code (:data:`~server.errors.CLOSE_CODES`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from consumers.firehose.hub import FirehoseFull, Subscription, SubscriptionEnded
from eventlog import EventLogError, LogClosed, OffsetOutOfRange
from server.api.firehose_common import (
    CLOSE_SLOW,
    FirehoseMetrics,
    FirehoseRequest,
    ended_close,
    firehose_of,
    gone_reason,
    prepare,
    race,
)
from server.config import ServerConfig
from server.errors import message_for, response_for, status_for, tenant_of, ws_close_code_for
from server.quotas import quotas_of

__all__ = ["FirehoseEndpoint"]

logger = logging.getLogger("eventlog.firehose")


async def _close(websocket: WebSocket, code: int, reason: str, timeout: float) -> None:
    """Send a close frame, giving a client that does not read ``timeout`` seconds."""
    with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError, TimeoutError):
        async with asyncio.timeout(timeout):
            await websocket.close(code, reason[:123])


async def _ws_sender(
    send: Send,
    sub: Subscription,
    batch: int,
    metrics: FirehoseMetrics,
    show: Callable[[str], str] | None = None,
) -> None:
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
                    text = frame.text if show is None else show(frame.text)
                    await send({"type": "websocket.send", "text": text})
                    done += 1
            finally:  # also when cancelled mid-way: the resume offset stays exact
                sub.sent(done)
            frames_c.inc(done)
            nbytes = sum(f.size for f in frames)
        else:
            texts = (f.text if show is None else show(f.text) for f in frames)
            text = "[" + ",".join(texts) + "]"
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
    metrics = FirehoseMetrics(websocket)
    quotas = quotas_of(websocket)
    try:
        request = await prepare(websocket, stream, sse=False)
        counted = quotas.open(request.tenant)  # the tenant's connection quota (429)
    except EventLogError as exc:
        tenant = tenant_of(websocket)  # its names as its key gave them, not as stored
        if "websocket.http.response" in websocket.scope.get("extensions", {}):
            await websocket.send_denial_response(response_for(exc, tenant=tenant))
        else:  # a server without the denial extension: accept, then close 4000 + status
            await websocket.accept()
            code = 4000 + status_for(exc)
            reason = f"{exc.code}: {message_for(exc, tenant)}"
            await _close(websocket, code, reason, config.firehose_close_timeout)
        return
    try:
        await _serve_admitted(websocket, request, send, metrics)
    finally:
        if counted and request.tenant is not None:
            quotas.close(request.tenant)


async def _serve_admitted(
    websocket: WebSocket, request: FirehoseRequest, send: Send, metrics: FirehoseMetrics
) -> None:
    config: ServerConfig = websocket.app.state.config
    firehose = firehose_of(websocket)
    try:
        firehose.admit()
    except FirehoseFull as exc:
        metrics.refused.labels("ws").inc()
        await websocket.accept()
        await _close(websocket, ws_close_code_for(exc), str(exc), config.firehose_close_timeout)
        return
    gauge = metrics.clients.labels("ws")
    gauge.inc()
    try:
        await websocket.accept()
        try:
            sub = await firehose.subscribe(request.stream, request.start, request.filter)
        except LogClosed as exc:
            sub, (code, reason) = None, (ws_close_code_for(exc), "server shutting down")
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
    websocket: WebSocket,
    send: Send,
    sub: Subscription,
    request: FirehoseRequest,
    metrics: FirehoseMetrics,
) -> tuple[int, str]:
    """Run sender and receiver until one ends; the close code and reason to send (0: none)."""
    sender = asyncio.create_task(_ws_sender(send, sub, request.batch, metrics, request.show))
    receiver = asyncio.create_task(_ws_receiver(websocket))
    stopping = await race(websocket, sub, sender, receiver)
    if receiver.done() and not receiver.cancelled() and receiver.exception() is None:
        if receiver.result() == "disconnect":
            return 0, ""
        return 1003, "the firehose is send-only: do not send messages"
    if stopping is not None and stopping.done() and not stopping.cancelled():
        return 1001, "server shutting down"
    exc = None if sender.cancelled() else sender.exception()
    if isinstance(exc, OffsetOutOfRange):
        return ws_close_code_for(exc), gone_reason(exc)  # 4416
    if isinstance(exc, (WebSocketDisconnect, OSError)):  # uvicorn's ClientDisconnected
        return 0, ""
    if exc is not None and not isinstance(exc, SubscriptionEnded):
        logger.error("firehose sender failed", exc_info=exc)
        return 1011, "internal error"
    return ended_close(sub, request.tenant)


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
