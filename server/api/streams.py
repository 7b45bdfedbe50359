"""Stream routes: append, read (with long-poll), list, describe, delete.

* ``POST /api/streams/{stream}/events`` — append (bodies: :mod:`server.api.append_body`),
  ``201 {"stream", "offsets", "written", "next_offset"}``; with a due time,
  ``202`` (scheduled: :mod:`server.api.schedules`).
* ``GET /api/streams/{stream}/events?from=&limit=&wait=`` —
  ``{"stream", "events", "next_offset"}``; with ``wait`` it long-polls.
* ``GET /api/streams`` — ``{"streams": [StreamInfo]}`` (those the key may read).
* ``GET /api/streams/{stream}`` — one StreamInfo plus ``holds``: the named consumers that keep
  retention from trimming (``{"consumer", "offset", "events", "bytes", "updated", "expired"}``,
  see :mod:`eventlog.holds`); ``DELETE`` (admin) — 204.
"""

from __future__ import annotations

import asyncio
import time

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from eventlog import Event, EventLog, Hold, StreamInfo
from eventlog.encoding import utf8_problem
from eventlog.errors import InvalidInput, InvalidParameter, Unavailable
from eventlog.repair import repair_page
from server.api.append_body import apply_idempotency_key, media_type, parse_body
from server.api.params import (
    non_negative_int,
    optional_non_negative_int,
    refuse_unknown,
    wait_seconds,
)
from server.api.schedules import due_of, has_due, schedule_answer
from server.auth import require
from server.config import ServerConfig
from server.metrics import metrics_of
from server.quotas import quotas_of
from server.tenancy import authorize, scope_of

__all__ = ["routes"]

DEFAULT_LIMIT = 100
CORRELATION_HEADER = "correlation-id"
CE_TYPES = "application/cloudevents"
#: The query parameters of an append and of a read; any other is a 400.
APPEND_PARAMS = ("expected_offset", "deliver_at", "delay")
READ_PARAMS = ("from", "limit", "wait")


class AppendResult(msgspec.Struct, kw_only=True):
    """The answer to an append."""

    stream: str
    offsets: list[int]
    written: int
    next_offset: int


class Page(msgspec.Struct, kw_only=True):
    """A page of events; pass ``next_offset`` as ``from`` to read on."""

    stream: str
    events: list[Event]
    next_offset: int


class StreamList(msgspec.Struct, kw_only=True):
    """Every stream the caller may read."""

    streams: list[StreamInfo]


_encoder = msgspec.json.Encoder()


def json_response(value: object, status: int = 200) -> Response:
    """Encode with msgspec (events' ``data`` goes out as the producer's bytes)."""
    return Response(_encoder.encode(value), status_code=status, media_type="application/json")


def _append_headers(raw: list[tuple[bytes, bytes]]) -> tuple[str | None, str | None, str | None]:
    """Content-Type, traceparent and Idempotency-Key in one pass over the raw headers."""
    content_type = trace = key = None
    for name, value in raw:
        if name == b"content-type":
            content_type = value.decode("latin-1")
        elif name == b"traceparent":
            trace = value.decode("latin-1")
        elif name == b"idempotency-key":
            key = value.decode("latin-1")
    return content_type, trace, key


async def read_body(request: Request) -> bytes:
    """The whole request body, straight from ``receive`` (the middleware bounds
    its size and time)."""
    chunks: list[bytes] = []
    while True:
        message = await request.receive()
        if message["type"] != "http.request":
            raise InvalidInput(
                "the client left before sending the body", code="client_disconnected"
            )
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def append_answer(request: Request) -> tuple[int, bytes]:
    """Append one event or an atomic batch: 201 and the offsets, or 202 when the
    request schedules its events (:mod:`server.api.schedules`)."""
    given = request.path_params["stream"]
    stream = authorize(request, "append", given)
    log: EventLog = request.app.state.log
    expected: int | None = None
    if request.scope["query_string"]:
        refuse_unknown(request.query_params, APPEND_PARAMS)
        expected = optional_non_negative_int(request.query_params, "expected_offset")
    content_type, trace, idempotency_key = _append_headers(request.scope["headers"])
    cid: str = request.scope["state"]["correlation_id"]
    base = {CORRELATION_HEADER: cid}
    if trace is not None and len(trace) <= 256:
        base["traceparent"] = trace
    # The request's correlation id goes into every event; the event's own headers win.
    body = await read_body(request)
    parsed = parse_body(
        body,
        content_type,
        max_events=log.config.max_batch_events,
        headers=base,
    )
    stamped = apply_idempotency_key(parsed, idempotency_key)
    tenant = scope_of(request).tenant
    if tenant is not None:
        await quotas_of(request).admit_append(tenant, len(stamped), len(body))
    due = due_of(request.query_params) if request.scope["query_string"] else None
    if due is not None or (media_type(content_type).startswith(CE_TYPES) and has_due(stamped)):
        if expected is not None:
            raise InvalidParameter("expected_offset cannot be scheduled")
        return 202, await schedule_answer(log, stream, stamped, due, shown=given)
    metrics = metrics_of(request.app)
    started = time.perf_counter()
    result = await log.append_batch_result(stream, stamped, expected_offset=expected)
    metrics.append_latency.observe(time.perf_counter() - started)
    metrics.batch_size.observe(len(stamped))
    if result.written:
        metrics.appended(stream, result.written)
    return 201, _encoder.encode(
        AppendResult(
            stream=given,
            offsets=result.offsets,
            written=result.written,
            next_offset=result.next_offset,
        )
    )


class _AppendEndpoint:
    """``POST /api/streams/{stream}/events`` as a plain ASGI endpoint.

    Appends are the hot path: answering straight through ``send`` skips the
    per-route request/response wrapping a function endpoint gets (a layer of
    exception handling and a Response object, ~8% of a single-event append's
    CPU). Errors raised here still reach the app's exception handlers.
    """

    __name__ = "append"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        status, body = await append_answer(Request(scope, receive))
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


append = _AppendEndpoint()


async def read(request: Request) -> Response:
    """A page of events from ``from``; long-polls up to ``wait`` seconds when there are none."""
    given = request.path_params["stream"]
    stream = authorize(request, "read", given)
    log: EventLog = request.app.state.log
    config: ServerConfig = request.app.state.config
    params = request.query_params
    refuse_unknown(params, READ_PARAMS)
    start = non_negative_int(params, "from", 0)
    limit = non_negative_int(
        params, "limit", DEFAULT_LIMIT, minimum=1, maximum=config.max_read_limit
    )
    wait = wait_seconds(params, config.max_wait)
    events = await log.read(stream, start, limit)
    if not events and wait > 0:
        stopping: asyncio.Event = request.app.state.stopping
        if stopping.is_set():
            # Not an empty 200: a follower would poll again at once, in a loop,
            # for as long as the shutdown takes.
            raise Unavailable("the server is shutting down; retry shortly", code="shutting_down")
        with quotas_of(request).connection(scope_of(request).tenant):
            if await _wait_for_append(log, stream, start, wait, stopping):
                events = await log.read(stream, start, limit)
    next_offset = events[-1].offset + 1 if events else start
    events = scope_of(request).events(events)
    body = _encoder.encode(Page(stream=given, events=events, next_offset=next_offset))
    if utf8_problem(body) is not None:  # an event an older version stored: eventlog.repair
        events = repair_page(events, "http")
        body = _encoder.encode(Page(stream=given, events=events, next_offset=next_offset))
    return Response(body, media_type="application/json")


async def _wait_for_append(
    log: EventLog, stream: str, offset: int, wait: float, stopping: asyncio.Event
) -> bool:
    """Wait for an event at ``offset``; False on timeout or when the server stops."""
    if stopping.is_set():
        return False
    waiter = asyncio.ensure_future(log.wait(stream, offset, wait))
    stopper = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not waiter.done():
            waiter.cancel()
        await asyncio.gather(waiter, stopper, return_exceptions=True)
    return (
        waiter.done()
        and not waiter.cancelled()
        and waiter.exception() is None
        and bool(waiter.result())
    )


async def list_streams(request: Request) -> Response:
    """Every stream the caller may read."""
    grant = require(request, "read")
    scope = scope_of(request)
    log: EventLog = request.app.state.log
    infos = [
        msgspec.structs.replace(i, name=scope.shown(i.name))
        for i in await log.streams()
        if scope.visible(i.name)
    ]
    if grant is not None:
        infos = [i for i in infos if grant.allows("read", i.name)]
    return json_response(StreamList(streams=infos))


class StreamDetail(StreamInfo, frozen=True, kw_only=True):
    """A stream's shape and who holds its retention back."""

    holds: list[Hold] = []


async def stream_info(request: Request) -> Response:
    """One stream's head, low watermark, count, bytes, retention and retention holds."""
    given = request.path_params["stream"]
    stream = authorize(request, "read", given)
    scope = scope_of(request)
    log: EventLog = request.app.state.log
    plan = await log.retention_holds(stream)
    info = await log.stream_info(stream)
    fields = {name: getattr(info, name) for name in info.__struct_fields__}
    fields["name"] = given
    holds = [msgspec.structs.replace(h, consumer=scope.shown(h.consumer)) for h in plan.holds]
    return json_response(StreamDetail(**fields, holds=holds))


async def delete_stream(request: Request) -> Response:
    """Delete a stream, its events and its consumers' offsets (admin)."""
    stream = authorize(request, "admin", request.path_params["stream"])
    log: EventLog = request.app.state.log
    await log.delete_stream(stream)
    return Response(status_code=204)


# The append route first: the router tries routes in order, and appends are the hot path.
#: Also served by the request middleware without the router (server/middleware.py).
append_route = Route("/api/streams/{stream}/events", append, methods=["POST"])
routes = [
    append_route,
    Route("/api/streams/{stream}/events", read, methods=["GET"]),
    Route("/api/streams", list_streams, methods=["GET"]),
    Route("/api/streams/{stream}", stream_info, methods=["GET"]),
    Route("/api/streams/{stream}", delete_stream, methods=["DELETE"]),
]
