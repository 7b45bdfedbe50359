"""Scheduled appends over HTTP: the due-time parameters of an append, and ``/api/schedules``.

* ``POST /api/streams/{stream}/events?deliver_at=<RFC 3339>`` (or ``?delay=<seconds>``)
  stores the body's events to be appended at that time:
  ``202 {"stream", "scheduled": [{"id", "deliver_at", "new"}]}``. A CloudEvent
  may carry its own time as the extension attribute ``deliverat`` (RFC 3339)
  or ``delay`` (seconds); it wins over the query parameter.
* ``GET /api/schedules?stream=&type=&until=&after=&limit=`` — events waiting,
  in due order: ``{"schedules": [ScheduledEvent], "next": cursor | null}``;
  pass ``next`` as ``after`` for the next page.
* ``GET /api/schedules/{stream}/{id}`` — one; ``DELETE`` cancels it (204, 404
  once appended or cancelled).

Parsing is sans-I/O (:func:`due_of`, :func:`event_due`); errors are 400s.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from eventlog import EventLog, NewEvent
from eventlog.errors import InvalidParameter
from eventlog.schedule import Scheduled, aware_time
from server.api.openapi_parts import AUTH, STREAM, errors, json_body, param, ref
from server.api.params import non_negative_int
from server.auth import require
from server.tenancy import authorize, scope_of

__all__ = [
    "APPEND_PARAMS",
    "ScheduleAnswer",
    "due_of",
    "event_due",
    "openapi_paths",
    "parse_delay",
    "parse_time",
    "routes",
]

_encoder = msgspec.json.Encoder()
DueAt = datetime | timedelta


class ScheduleAnswer(msgspec.Struct, kw_only=True):
    """The answer to a scheduled append."""

    stream: str
    scheduled: list[Scheduled]


def parse_time(text: str, name: str) -> datetime:
    """An RFC 3339 time with an offset.

    Raises:
        InvalidParameter: 400 for anything else.
    """
    value = aware_time(text)
    if value is None:
        raise InvalidParameter(
            f"{name} must be an RFC 3339 time with an offset (e.g. 2026-12-06T14:00:00Z), "
            f"got {text[:40]!r}"
        )
    return value


#: Past this a delay cannot be a datetime; a schedule horizon is far shorter anyway.
_MAX_DELAY = 1e10
_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|\.[0-9]+")


def parse_delay(text: str, name: str) -> timedelta:
    """A delay in seconds (a finite number from 0 to ``_MAX_DELAY``; the log's
    schedule horizon then bounds it).

    Raises:
        InvalidParameter: 400 for anything else.
    """
    # A plain decimal number: float() would also take "1_0", " 10 " and "infinity".
    seconds = float(text) if _SECONDS.fullmatch(text) else math.nan
    if not math.isfinite(seconds) or seconds < 0 or seconds > _MAX_DELAY:
        raise InvalidParameter(
            f"{name} must be a number of seconds from 0 to {_MAX_DELAY:.0f}, got {text[:40]!r}"
        )
    return timedelta(seconds=seconds)


def due_of(params: Mapping[str, str]) -> DueAt | None:
    """The request's due time from ``deliver_at`` or ``delay`` (None: append now)."""
    at, delay = params.get("deliver_at"), params.get("delay")
    if at is not None and delay is not None:
        raise InvalidParameter("give deliver_at or delay, not both")
    if at is not None:
        return parse_time(at, "deliver_at")
    if delay is not None:
        return parse_delay(delay, "delay")
    return None


def event_due(event: NewEvent, default: DueAt | None) -> DueAt | None:
    """An event's due time: its CloudEvents ``deliverat``/``delay`` extension, else ``default``."""
    headers = event.headers
    if not headers:
        return default
    at, delay = headers.get("ce-deliverat"), headers.get("ce-delay")
    if at is not None:
        return parse_time(at, "the deliverat attribute")
    if delay is not None:
        return parse_delay(delay, "the delay attribute")
    return default


def has_due(events: Sequence[NewEvent]) -> bool:
    """True if any event carries a CloudEvents due-time extension."""
    return any(
        e.headers and ("ce-deliverat" in e.headers or "ce-delay" in e.headers) for e in events
    )


async def schedule_answer(
    log: EventLog,
    stream: str,
    events: Sequence[NewEvent],
    default: DueAt | None,
    *,
    shown: str | None = None,
) -> bytes:
    """Schedule ``events``, one batch per due time; the JSON of the 202 answer.

    Events without a time of their own or the request's are due at once.
    ``shown`` is the stream's name as the caller sees it (server/tenancy.py).
    """
    groups: dict[DueAt, list[int]] = {}
    for i, event in enumerate(events):
        groups.setdefault(event_due(event, default) or timedelta(0), []).append(i)
    answer: list[Scheduled] = []
    for at, indices in groups.items():
        got = await log.append_batch(stream, [events[i] for i in indices], at=at)
        answer += got
    if len(groups) > 1:  # in the request's order
        position = [i for indices in groups.values() for i in indices]
        answer = [s for _, s in sorted(zip(position, answer, strict=True), key=lambda p: p[0])]
    if shown is not None and shown != stream:
        answer = [msgspec.structs.replace(s, stream=shown) for s in answer]
    return _encoder.encode(ScheduleAnswer(stream=shown or stream, scheduled=answer))


def _json(value: object, status: int = 200) -> Response:
    return Response(_encoder.encode(value), status_code=status, media_type="application/json")


async def list_schedules(request: Request) -> Response:
    """``GET /api/schedules``: a page of scheduled events in due order."""
    params = request.query_params
    given = params.get("stream")
    if given is not None:
        stream: str | None = authorize(request, "read", given)
    else:
        require(request, "admin")
        stream = None
    scope = scope_of(request)
    until = params.get("until")
    kind = params.get("type")
    if kind == "":  # no event has an empty type: an empty list would hide the mistake
        raise InvalidParameter("type must not be empty; leave it out to list every type")
    log: EventLog = request.app.state.log
    page = await log.schedules.page(
        stream=stream,
        type=kind,
        until=None if until is None else parse_time(until, "until"),
        after=params.get("after"),
        limit=non_negative_int(params, "limit", 100, minimum=1, maximum=1000),
    )
    if not scope.sees_all:  # a page may come out short; ``next`` still goes on from its end
        shown = [
            msgspec.structs.replace(e, stream=scope.shown(e.stream))
            for e in page.schedules
            if scope.visible(e.stream)
        ]
        page = msgspec.structs.replace(page, schedules=shown)
    return _json(page)


async def get_schedule(request: Request) -> Response:
    """``GET /api/schedules/{stream}/{id}``: one scheduled event."""
    given, event_id = request.path_params["stream"], request.path_params["id"]
    stream = authorize(request, "read", given)
    log: EventLog = request.app.state.log
    found = await log.schedules.get(stream, event_id)
    return _json(msgspec.structs.replace(found, stream=given))


async def cancel_schedule(request: Request) -> Response:
    """``DELETE /api/schedules/{stream}/{id}``: cancel before it is appended."""
    stream = authorize(request, "append", request.path_params["stream"])
    event_id = request.path_params["id"]
    log: EventLog = request.app.state.log
    await log.schedules.cancel(stream, event_id)
    return Response(status_code=204)


routes = [
    Route("/api/schedules", list_schedules, methods=["GET"]),
    Route("/api/schedules/{stream}/{id}", get_schedule, methods=["GET"]),
    Route("/api/schedules/{stream}/{id}", cancel_schedule, methods=["DELETE"]),
]


_TIME = {"type": "string", "format": "date-time"}

#: The due-time parameters of ``POST /api/streams/{stream}/events``.
APPEND_PARAMS = [
    param("deliver_at", "query", "Schedule: append at this RFC 3339 time (past: now)", _TIME),
    param("delay", "query", "Schedule: append after this many seconds", {"type": "number"}),
]


def openapi_paths() -> dict[str, Any]:
    """The ``/api/schedules`` routes for the OpenAPI document."""
    event_id = param("id", "path", "The scheduled event's id", {"type": "string"})
    listing = [
        param(
            "stream",
            "query",
            "Only this stream's (else the admin scope is needed)",
            STREAM["schema"],
        ),
        param("type", "query", "Only events of this type", {"type": "string", "minLength": 1}),
        param("until", "query", "Only events due at or before this time", _TIME),
        param(
            "after",
            "query",
            "The next cursor of the previous page",
            {"type": "string", "pattern": "^[0-9]{1,19}\\.[0-9]{1,19}$"},
        ),
        param(
            "limit",
            "query",
            "Page size (default 100)",
            {"type": "integer", "minimum": 1, "maximum": 1000},
        ),
    ]
    one = {
        "404": {
            "description": "Not scheduled (or already appended, or cancelled)",
            "content": json_body(ref("Error")),
        }
    }
    return {
        "/api/schedules": {
            "get": {
                "summary": "Scheduled events waiting, in due order, a page at a time",
                "parameters": listing,
                "responses": {
                    "200": {"description": "A page", "content": json_body(ref("SchedulePage"))},
                    **errors(400, *AUTH, 503),
                },
            }
        },
        "/api/schedules/{stream}/{id}": {
            "get": {
                "summary": "One scheduled event",
                "parameters": [STREAM, event_id],
                "responses": {
                    "200": {
                        "description": "The event and its due time",
                        "content": json_body(ref("ScheduledEvent")),
                    },
                    **one,
                    **errors(400, *AUTH, 503),
                },
            },
            "delete": {
                "summary": "Cancel a scheduled event before it is appended",
                "parameters": [STREAM, event_id],
                "responses": {
                    "204": {"description": "Cancelled"},
                    **one,
                    **errors(400, *AUTH, 503),
                },
            },
        },
    }
