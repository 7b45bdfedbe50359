"""A stream's retention policy over HTTP: what ``EventLog.set_retention`` does embedded.

* ``GET /api/streams/{stream}/retention`` (read) — the policy, as ``GET /api/streams/{stream}``
  shows it under ``retention``: ``{"max_age", "max_count", "max_bytes", "protect",
  "max_hold"}`` (seconds, events, payload bytes; null is no limit). 404 for no such stream.
* ``PUT /api/streams/{stream}/retention`` (admin) — the same object replaces the policy
  (a field left out takes its default: no limit, ``protect`` true; so ``{}`` clears it) and
  the answer is the stored policy. A stream that does not exist yet is created, as
  embedded. The next retention pass applies it (``retention_interval``).

A limit is a number above 0 and in range (:func:`eventlog.retention.check_retention`,
the embedded log's own check); an unknown field, a wrong type or a body that is not
an object is a 422 naming the field, bad JSON a 400.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from eventlog import EventLog, Retention
from eventlog.errors import InvalidField
from eventlog.retention import MAX_RETENTION_SECONDS
from server.api.endpoint_family import decode_body
from server.api.openapi_parts import AUTH, INT64_MAX, STREAM, errors, json_body, ref
from server.api.streams import json_response
from server.tenancy import authorize

__all__ = ["RetentionRequest", "openapi_components", "openapi_paths", "routes"]

_Seconds = Annotated[float, msgspec.Meta(gt=0, le=MAX_RETENTION_SECONDS)]
# A count in JSON may be written 482.0 (JSON Schema's integer takes it): decoded as either,
# kept when it is whole (:func:`_whole`); the document says integer (:func:`openapi_components`).
_Positive = (
    Annotated[int, msgspec.Meta(gt=0, le=INT64_MAX)]
    | Annotated[float, msgspec.Meta(gt=0, le=INT64_MAX)]
)
_COUNTS = ("max_count", "max_bytes")


class RetentionRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The body of ``PUT /api/streams/{stream}/retention``: :class:`~eventlog.Retention`'s
    fields (null or left out: no limit on that axis)."""

    max_age: _Seconds | None = None
    max_count: _Positive | None = None
    max_bytes: _Positive | None = None
    protect: bool = True
    max_hold: _Seconds | None = None


async def get_retention(request: Request) -> Response:
    """The stream's retention policy."""
    stream = authorize(request, "read", request.path_params["stream"])
    log: EventLog = request.app.state.log
    return json_response((await log.stream_info(stream)).retention)


async def put_retention(request: Request) -> Response:
    """Replace the stream's retention policy (admin); answer the stored one."""
    stream = authorize(request, "admin", request.path_params["stream"])
    body: RetentionRequest = await decode_body(request, RetentionRequest)
    fields = msgspec.structs.asdict(body)
    for name in _COUNTS:
        fields[name] = _whole(name, fields[name])
    log: EventLog = request.app.state.log
    await log.set_retention(stream, Retention(**fields))
    return json_response((await log.stream_info(stream)).retention)


def _whole(name: str, value: float | None) -> int | None:
    """A count as an int (``482.0`` is 482); 422 for a fraction."""
    if isinstance(value, float):
        if not value.is_integer():
            raise InvalidField(f"{name} must be a whole number, got {value!r}", path=f"$.{name}")
        return int(value)
    return value


def openapi_components(components: dict[str, Any]) -> None:
    """Say ``integer`` for the counts of :class:`RetentionRequest` (decoded as int or float)."""
    count = {"type": "integer", "exclusiveMinimum": 0, "maximum": INT64_MAX}
    for name in _COUNTS:
        field = components["RetentionRequest"]["properties"][name]
        field["anyOf"] = [count, {"type": "null"}]


def openapi_paths() -> dict[str, Any]:
    """The retention route for the OpenAPI document."""
    answer = {"description": "The stream's retention", "content": json_body(ref("Retention"))}
    return {
        "/api/streams/{stream}/retention": {
            "get": {
                "summary": "A stream's retention policy (as GET /api/streams/{stream} shows it)",
                "parameters": [STREAM],
                "responses": {"200": answer, **errors(400, *AUTH, 404)},
            },
            "put": {
                "summary": "Set a stream's retention policy (admin); {} clears it",
                "description": (
                    "Replaces the policy: a field left out or null is no limit on that axis "
                    "(protect: true). Applied by the next retention pass."
                ),
                "parameters": [STREAM],
                "requestBody": {"required": True, "content": json_body(ref("RetentionRequest"))},
                "responses": {
                    "200": answer,
                    **errors(
                        400,
                        *AUTH,
                        422,
                        say={422: "Unknown field, or a limit not above 0 or out of range"},
                    ),
                },
            },
        }
    }


routes = [
    Route("/api/streams/{stream}/retention", get_retention, methods=["GET"]),
    Route("/api/streams/{stream}/retention", put_retention, methods=["PUT"]),
]
