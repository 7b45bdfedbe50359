"""Consumer routes: committed offsets and lag, and seeking.

* ``GET /api/consumers`` — ``{"consumers": [{"name", "stream", "offset", "lag", "updated"}]}``.
* ``GET /api/consumers/{name}`` — ``{"name", "streams": [{"stream", "offset", "lag", "updated"}],
  "parked", "parked_stream", "runtime"}``: ``parked`` counts the events waiting in its parked
  stream; ``runtime`` (null unless it runs in this server, see ``[[consumers]]``) holds its
  state (``waiting``, ``running``, ``backoff``, ``stopped``), last error, stop reason and
  failure policy. 404 when the consumer never committed and does not run here.
* ``POST /api/consumers/{name}/replay-parked`` (admin) — hands the consumer's parked events
  back to its handler: ``{"consumer", "parked_stream", "replayed", "remaining", "error"}``;
  404 unless it runs in this server, 409 when it runs in another process, 409
  ``consumer_conflict`` for a shared consumer (no handler: the message says what to do).
* ``PUT /api/consumers/{name}`` (admin) — body ``{"stream": s, "position": p}`` with ``p`` one
  of ``"beginning"``, ``"end"``, an offset (at most the head), or ``{"time": "<RFC 3339>"}``:
  resolves the position and commits it as the consumer's offset. A consumer running right now
  keeps its in-memory position until it restarts or commits over it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from consumers.parking import PARKED_SUFFIX, parked_counts
from consumers.runtime import ConsumerManager, ConsumerStatus
from consumers.shared import ConsumerConflict
from eventlog import (
    BEGINNING,
    END,
    ConsumerInfo,
    ConsumerNotFound,
    EventLog,
    Offset,
    Position,
    Time,
    validate_stream_name,
)
from eventlog.errors import InvalidField, InvalidInput, NotFound
from server.api.append_body import media_type
from server.api.params import StreamName
from server.api.shared_consumers import shared_consumers
from server.api.streams import json_response
from server.auth import require
from server.tenancy import scope_of

__all__ = ["routes"]


class ConsumerRow(msgspec.Struct, kw_only=True):
    """One consumer's committed position on one stream, with its lag."""

    name: str
    stream: str
    offset: int
    lag: int
    updated: datetime


class ConsumerStream(msgspec.Struct, kw_only=True):
    """A consumer's position on one stream."""

    stream: str
    offset: int
    lag: int
    updated: datetime


class ConsumerRuntime(msgspec.Struct, kw_only=True):
    """What a consumer running in this server is doing (see ``ConsumerStatus``)."""

    state: str
    stream: str
    committed: int | None
    handled: int
    failures: int
    last_error: str | None
    reason: str | None
    truncation: str | None
    parked: int
    max_attempts: int
    on_failure: str


class ConsumerDetail(msgspec.Struct, kw_only=True):
    """A consumer, its position on each stream it reads, its parked events and state."""

    name: str
    streams: list[ConsumerStream]
    parked: int = 0
    parked_stream: str = ""
    runtime: ConsumerRuntime | None = None


class ConsumerList(msgspec.Struct, kw_only=True):
    """Every consumer position the caller may read."""

    consumers: list[ConsumerRow]


class AtTime(msgspec.Struct, forbid_unknown_fields=True):
    """Seek to the first event appended at or after ``time``."""

    time: datetime


class SeekRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of ``PUT /api/consumers/{name}``."""

    stream: StreamName
    position: Literal["beginning", "end"] | Annotated[int, msgspec.Meta(ge=0)] | AtTime


_seek_decoder = msgspec.json.Decoder(SeekRequest)


async def _rows(log: EventLog) -> list[tuple[ConsumerInfo, int]]:
    heads = {info.name: info.next_offset for info in await log.streams()}
    return [(c, max(heads.get(c.stream, 0) - c.offset, 0)) for c in await log.consumers()]


async def list_consumers(request: Request) -> Response:
    """Every committed consumer position with its lag."""
    grant = require(request, "read")
    scope = scope_of(request)
    log: EventLog = request.app.state.log
    rows = [
        ConsumerRow(
            name=scope.shown(c.name),
            stream=scope.shown(c.stream),
            offset=c.offset,
            lag=lag,
            updated=c.updated,
        )
        for c, lag in await _rows(log)
        if scope.visible(c.name)
        and scope.visible(c.stream)
        and (grant is None or grant.allows("read", scope.shown(c.stream)))
    ]
    return json_response(ConsumerList(consumers=rows))


def _manager(request: Request) -> ConsumerManager | None:
    manager: ConsumerManager | None = getattr(request.app.state, "consumer_manager", None)
    return manager


def _runtime(status: ConsumerStatus | None, stream: str) -> ConsumerRuntime | None:
    if status is None:
        return None
    runtime = msgspec.convert(status, ConsumerRuntime, from_attributes=True)
    return msgspec.structs.replace(runtime, stream=stream)


async def _detail(request: Request, name: str) -> ConsumerDetail:
    """One consumer by its stored ``name``, shown as the request's key sees it."""
    grant = require(request, "read")
    scope = scope_of(request)
    log: EventLog = request.app.state.log
    infos = await log.streams()
    heads = {info.name: info.next_offset for info in infos}
    offsets = await log.consumers()
    streams = [
        ConsumerStream(
            stream=scope.shown(c.stream),
            offset=c.offset,
            lag=max(heads.get(c.stream, 0) - c.offset, 0),
            updated=c.updated,
        )
        for c in offsets
        if c.name == name
        and scope.visible(c.stream)
        and (grant is None or grant.allows("read", scope.shown(c.stream)))
    ]
    manager = _manager(request)
    status = None if manager is None else manager.get_status(name)
    if not streams and status is None:
        raise ConsumerNotFound(scope.shown(name))
    parked_stream = name + PARKED_SUFFIX
    visible = grant is None or grant.allows("read", scope.shown(parked_stream))
    parked = parked_counts(infos, offsets).get(name, 0) if visible else 0
    return ConsumerDetail(
        name=scope.shown(name),
        streams=streams,
        parked=parked,
        parked_stream=scope.shown(parked_stream),
        runtime=None if status is None else _runtime(status, scope.shown(status.stream)),
    )


def _name(request: Request) -> str:
    """The stored name of the ``{name}`` path parameter (:mod:`server.tenancy`)."""
    given = validate_stream_name(request.path_params["name"])
    return scope_of(request).name(given)


async def get_consumer(request: Request) -> Response:
    """One consumer's offset and lag on each stream."""
    name = _name(request)
    return json_response(await _detail(request, name))


def _position(value: object) -> Position:
    if value == "beginning":
        return BEGINNING
    if value == "end":
        return END
    if isinstance(value, AtTime):
        if value.time.tzinfo is None:
            raise InvalidField("time needs a timezone offset", path="$.position.time")
        return Time(value.time)
    assert isinstance(value, int)
    return Offset(value)


async def seek_consumer(request: Request) -> Response:
    """Move a consumer to a position and commit it (admin)."""
    name = _name(request)
    require(request, "admin")
    if media_type(request.headers.get("content-type")) != "application/json":
        raise InvalidInput("send the seek as application/json", code="unsupported_media_type")
    try:
        body = _seek_decoder.decode(await request.body())
    except msgspec.ValidationError as exc:
        if str(exc).endswith("- at `$.position`"):
            raise InvalidField(
                'position must be "beginning", "end", an offset (an integer >= 0) or '
                '{"time": "<RFC 3339 time with offset>"}',
                path="$.position",
            ) from None
        raise
    stream = scope_of(request).name(body.stream)
    log: EventLog = request.app.state.log
    position = _position(body.position)
    # A stream that does not exist is a 404 (most likely a typo), as for GET.
    head = (await log.stream_info(stream)).next_offset
    if isinstance(position, Offset) and position.value > head:
        raise InvalidField(
            f"offset {position.value} is beyond the head of {stream!r} ({head})",
            path="$.position",
            code="invalid_position",
        )
    if await (await shared_consumers(request.app)).is_shared(name):
        raise ConsumerConflict(
            f"consumer {request.path_params['name']!r} is shared: its committed offset is its "
            "ack floor and moves with acks; delete it and declare it again with a start to move it"
        )
    consumer = log.consumer(name, stream)
    offset = await consumer.seek(position)
    await consumer.commit(offset)
    return json_response(await _detail(request, name))


async def replay_parked(request: Request) -> Response:
    """Hand a consumer's parked events back to its handler (admin)."""
    name = _name(request)
    require(request, "admin")
    scope = scope_of(request)
    if await (await shared_consumers(request.app)).is_shared(name):
        parked = scope.shown(name + PARKED_SUFFIX)
        raise ConsumerConflict(
            f"consumer {scope.shown(name)!r} is shared: no handler runs it to replay to. "
            f"Its parked events are the stream {parked!r}: read them there, or declare a "
            f"shared consumer on {parked!r} for workers to claim them"
        )
    manager = _manager(request)
    if manager is None or manager.get_status(name) is None:
        raise NotFound(
            f"consumer {scope.shown(name)!r} does not run in this server "
            "(declare it in [[consumers]])",
            code="consumer_not_running",
        )
    result = await manager.replay_parked(name)
    return json_response(
        msgspec.structs.replace(
            result,
            consumer=scope.shown(result.consumer),
            parked_stream=scope.shown(result.parked_stream),
        )
    )


routes = [
    Route("/api/consumers", list_consumers, methods=["GET"]),
    Route("/api/consumers/{name}", get_consumer, methods=["GET"]),
    Route("/api/consumers/{name}", seek_consumer, methods=["PUT"]),
    Route("/api/consumers/{name}/replay-parked", replay_parked, methods=["POST"]),
]
