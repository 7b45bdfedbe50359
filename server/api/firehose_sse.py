"""The firehose as Server-Sent Events: ``GET /api/streams/{stream}/sse``.

Each event is one SSE message whose ``id`` is its offset (a reconnecting
browser resumes with ``Last-Event-ID``); with ``batch`` a message carries a
JSON array. Comment lines keep idle connections alive; when the feed ends the
last message is ``event: closed`` with the close code, the reason and
``resume_from``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from consumers.firehose import Frame
from consumers.firehose.hub import FirehoseFull, Subscription, SubscriptionEnded
from eventlog import LogClosed, OffsetOutOfRange
from server.api import firehose_common as common
from server.config import ServerConfig
from server.errors import response_for, ws_close_code_for
from server.quotas import QuotaExceeded, quotas_of

__all__ = ["sse"]

logger = logging.getLogger("eventlog.firehose")

_SSE_HEADERS = {
    "cache-control": "no-cache",
    "x-accel-buffering": "no",  # tell reverse proxies not to buffer the stream
}


def _sse_chunk(frames: list[Frame], batch: int, show: Callable[[str], str] | None = None) -> str:
    texts = [f.text for f in frames] if show is None else [show(f.text) for f in frames]
    if batch == 1:
        return "".join(f"id: {f.offset}\ndata: {t}\n\n" for f, t in zip(frames, texts, strict=True))
    parts = []
    for i in range(0, len(frames), batch):
        group = frames[i : i + batch]
        body = ",".join(texts[i : i + batch])
        parts.append(f"id: {group[-1].offset}\ndata: [{body}]\n\n")
    return "".join(parts)


class _SSEStream(Response):
    """A ``text/event-stream`` response fed by a subscription."""

    media_type = "text/event-stream"

    def __init__(self, request: common.FirehoseRequest, conn: Request) -> None:
        # Like StreamingResponse: no body attribute, so no content-length header.
        self.status_code = 200
        self.background = None
        self.init_headers(_SSE_HEADERS)
        self._request = request
        self._conn = conn

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        quotas = quotas_of(self._conn)
        tenant = self._request.tenant
        try:
            counted = quotas.open(tenant)  # the tenant's connection quota (429)
        except QuotaExceeded as exc:
            await response_for(exc)(scope, receive, send)
            return
        try:
            await self._serve(scope, receive, send)
        finally:
            if counted and tenant is not None:
                quotas.close(tenant)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        conn = self._conn
        config: ServerConfig = conn.app.state.config
        metrics = common.FirehoseMetrics(conn)
        firehose = common.firehose_of(conn)
        try:
            firehose.admit()
        except FirehoseFull as exc:
            metrics.refused.labels("sse").inc()
            response = response_for(exc, headers={"retry-after": "5"})
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
        metrics: common.FirehoseMetrics,
    ) -> bytes | None:
        """Stream until the client leaves or the feed ends; the final message to send, if any."""
        batch = self._request.batch
        labels = [c.labels("sse") for c in (metrics.frames, metrics.events, metrics.bytes)]

        async def sender() -> None:
            while True:
                frames = await sub.frames(256, idle_timeout=config.firehose_keepalive)
                body = (
                    _sse_chunk(frames, batch, self._request.show) if frames else ": keepalive\n\n"
                ).encode()
                await send({"type": "http.response.body", "body": body, "more_body": True})
                sub.sent(len(frames))
                labels[0].inc(len(frames) if batch == 1 else -(-len(frames) // batch))
                labels[1].inc(len(frames))
                labels[2].inc(len(body))

        async def receiver() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        send_task = asyncio.create_task(sender())
        recv_task = asyncio.create_task(receiver())
        stopping = await common.race(self._conn, sub, send_task, recv_task)
        if recv_task.done() and not recv_task.cancelled():
            return None
        code, reason = common.ended_close(sub, self._request.tenant)
        exc = None if send_task.cancelled() else send_task.exception()
        if isinstance(exc, OffsetOutOfRange):
            code, reason = ws_close_code_for(exc), common.gone_reason(exc)
        elif exc is not None and not isinstance(exc, SubscriptionEnded):
            if isinstance(exc, OSError):
                return None
            logger.error("firehose SSE sender failed", exc_info=exc)
            code, reason = 1011, "internal error"
        elif code == common.CLOSE_SLOW:
            metrics.slow.labels("sse").inc()
        elif stopping is not None and stopping.done() and not stopping.cancelled():
            reason = "server shutting down"  # (common.race cancels the watch when the feed ends)
        closed: dict[str, object] = {"code": code, "reason": reason}
        closed["resume_from"] = sub.resume_offset
        if isinstance(exc, OffsetOutOfRange):  # say what was lost, and resume past it
            closed.update(first_offset=exc.first, skipped=exc.skipped, resume_from=exc.first)
        body = msgspec.json.encode(closed).decode()
        return f"event: closed\ndata: {body}\n\n".encode()


async def sse(request: Request) -> Response:
    """``GET /api/streams/{stream}/sse``: the firehose as Server-Sent Events."""
    prepared = await common.prepare(request, request.path_params["stream"], sse=True)
    return _SSEStream(prepared, request)
