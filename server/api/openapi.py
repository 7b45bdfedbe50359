"""The OpenAPI 3.1 document of the HTTP API (rendered as the ``/docs`` page by
:mod:`server.api.docs_page`).

Schemas come from the msgspec Structs the routes decode and encode
(``msgspec.json.schema_components``), so the document cannot drift from the
wire format; the limits the routes check by hand (``limit`` up to the server's
``max_read_limit``, batch sizes, CloudEvents attributes, the Idempotency-Key)
are written next to the constants they come from. Paths are listed by hand:
the core routes here, the feature routes (ingest, firehose) in
:mod:`server.api.openapi_paths`, the webhook and notification routes in
:mod:`server.api.openapi_endpoints`, from the pieces in
:mod:`server.api.openapi_parts`. ``tests/server/api/test_openapi.py``
checks that every route of the app is in the document and that the document is
valid; ``tests/server/test_schemathesis.py`` sends generated requests (valid
and invalid) to a real server and checks every answer against the document.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any

import msgspec

from eventlog import Event, LogConfig, StreamInfo
from server.api.append_body import Id, Key, Type
from server.api.openapi_parts import AUTH, INT64_MAX, NAME, STREAM, errors, json_body, param, ref

__all__ = ["CLOUD_EVENT", "openapi_document"]


class ErrorBody(msgspec.Struct):
    """What went wrong: a stable code, a message, the JSON path of a bad value."""

    code: str
    message: str
    path: str | None = None


class Error(msgspec.Struct):
    """Every error answer."""

    error: ErrorBody


#: Texts the log refuses to store with a NUL character in them
#: (:mod:`eventlog.encoding`): an event's type, key and id.
NO_NUL = "^[^\x00]*$"


class EventIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An event to append (the schema of :class:`server.api.append_body.EventIn`,
    whose ``data`` is kept as raw JSON bytes; any JSON value). A test holds the
    two to the same fields and types."""

    type: Annotated[Type, msgspec.Meta(pattern=NO_NUL)]
    data: Any = None
    key: Annotated[Key, msgspec.Meta(pattern=NO_NUL)] | None = None
    id: Annotated[Id, msgspec.Meta(pattern=NO_NUL)] | None = None
    headers: dict[str, str] = {}


#: A structured-mode CloudEvent as :func:`server.api.append_body.cloudevent` accepts it.
CLOUD_EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["specversion", "id", "source", "type"],
    "properties": {
        "specversion": {"const": "1.0"},
        "id": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": NO_NUL},
        "source": {"type": "string", "minLength": 1},
        "type": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": NO_NUL},
        "subject": {"type": "string", "maxLength": 1024, "pattern": NO_NUL},
        "data": {},
        "data_base64": {"type": "string"},
    },
    "propertyNames": {"pattern": "^([a-z0-9]{1,20}|data_base64)$"},
    "additionalProperties": {"type": ["string", "integer", "boolean", "null"]},
}

#: The shape of the times msgspec decodes (RFC 3339; no offset means UTC), for
#: the request fields that take one: msgspec's schema of a ``datetime`` is a
#: bare string, which lets generators and readers think any text will do. Days
#: stop at 28 so that every matching string is a real date.
RFC3339 = (
    r"^[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]"
    r":[0-5][0-9](\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
#: Request fields that take a time, and whether their offset may be left out (UTC).
_TIME_FIELDS = {
    ("AtTime", "time"): False,
    ("ReplayRequest", "from_time"): True,
    ("ReplayRequest", "to_time"): True,
}


def _time_pattern(schema: Any, *, naive_ok: bool) -> None:
    """Give every string of ``schema`` (a field's, maybe nullable) the :data:`RFC3339` pattern."""
    if isinstance(schema, dict):
        if schema.get("type") == "string":
            schema["pattern"] = RFC3339[:-2] + ")?$" if naive_ok else RFC3339
            schema["description"] = "An RFC 3339 time, e.g. 2026-11-22T16:46:17Z"
        for value in schema.get("anyOf", []):
            _time_pattern(value, naive_ok=naive_ok)


@cache
def openapi_document(max_read_limit: int = 10_000) -> dict[str, Any]:
    """The OpenAPI 3.1 description of the API (built once per ``max_read_limit``,
    the server's largest ``limit`` of a read)."""
    from consumers.notify import NotifyPatch, NotifySpec
    from consumers.parking import ReplayResult
    from consumers.webhook import EndpointPatch, EndpointSpec
    from eventlog.schedule import SchedulePage
    from server.api import openapi_paths as more
    from server.api import retention, schedules, shared_consumers, sources, ui
    from server.api.consumers import ConsumerDetail, ConsumerList, SeekRequest
    from server.api.openapi_endpoints import endpoint_paths
    from server.api.streams import AppendResult, Page, StreamDetail, StreamList
    from server.api.webhooks import ReplayRequest, RotateRequest
    from server.ingest.sources import Source

    structs = [
        EventIn,
        Event,
        AppendResult,
        Page,
        StreamInfo,
        StreamDetail,
        StreamList,
        retention.RetentionRequest,
        ConsumerList,
        ConsumerDetail,
        SeekRequest,
        ReplayResult,
        Error,
        Source,
        EndpointSpec,
        EndpointPatch,
        NotifySpec,
        NotifyPatch,
        RotateRequest,
        ReplayRequest,
        schedules.ScheduleAnswer,
        SchedulePage,
        sources.SourceList,
        *shared_consumers.STRUCTS,
    ]
    (schemas, components) = msgspec.json.schema_components(
        structs, ref_template="#/components/schemas/{name}"
    )
    # A tagged union of the chat kinds' specs, picked by "kind".
    components["NotifySpec"] = dict(schemas[structs.index(NotifySpec)], title="NotifySpec")
    components["EndpointSpec"]["required"].remove("kind")  # decoded as EndpointSpec alone
    retention.openapi_components(components)
    for (name, field), naive_ok in _TIME_FIELDS.items():
        _time_pattern(components[name]["properties"][field], naive_ok=naive_ok)
    # PUT /api/ingest/sources/{name} takes the name from the path.
    replace = components["SourceReplace"] = dict(components["Source"], title="SourceReplace")
    replace["required"] = [f for f in components["Source"]["required"] if f != "name"]
    batch = {"minItems": 1, "maxItems": LogConfig().max_batch_events}
    append_body = {"oneOf": [ref("EventIn"), {"type": "array", "items": ref("EventIn"), **batch}]}
    paths: dict[str, Any] = {
        "/api/streams/{stream}/events": {
            "post": {
                "summary": "Append one event, or a batch atomically (all or none)",
                "description": (
                    "Bodies: application/json (one event or an array), application/x-ndjson "
                    "(one event per line), application/cloudevents+json and "
                    "application/cloudevents-batch+json. An Idempotency-Key header makes a "
                    "single event's id (in a batch: <key>.<index> for events without an id)."
                ),
                "parameters": [
                    STREAM,
                    param(
                        "expected_offset",
                        "query",
                        "Append only if the stream's next offset equals this (else 409)",
                        {"type": "integer", "minimum": 0, "maximum": INT64_MAX},
                    ),
                    *schedules.APPEND_PARAMS,
                    param(
                        "Idempotency-Key",
                        "header",
                        "Retries with the same key get the same offsets and write nothing",
                        {"type": "string", "pattern": "^[!-~]{1,200}$"},
                    ),
                    param(
                        "X-Correlation-Id",
                        "header",
                        "Stored in each event's headers as correlation-id and echoed back",
                        {"type": "string"},
                    ),
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": append_body},
                        "application/x-ndjson": {"schema": {"type": "string"}},
                        "application/cloudevents+json": {"schema": CLOUD_EVENT},
                        "application/cloudevents-batch+json": {
                            "schema": {"type": "array", "items": CLOUD_EVENT, **batch}
                        },
                    },
                },
                "responses": {
                    "201": {
                        "description": "Durable: the offsets of the events, in order",
                        "content": json_body(ref("AppendResult")),
                    },
                    "202": {
                        "description": "Scheduled (deliver_at, delay, or a CloudEvent's "
                        "deliverat / delay): durable, appended at the due time",
                        "content": json_body(ref("ScheduleAnswer")),
                    },
                    **errors(
                        400,
                        *AUTH,
                        408,
                        409,
                        413,
                        415,
                        422,
                        503,
                        say={
                            409: "`expected_offset` does not match the stream's next offset",
                            422: "Well-formed JSON that is not a valid event or batch "
                            "(`path` says where)",
                        },
                    ),
                },
            },
            "get": {
                "summary": "Read a page of events; long-poll with wait",
                "parameters": [
                    STREAM,
                    param(
                        "from",
                        "query",
                        "First offset (default 0)",
                        {"type": "integer", "minimum": 0, "maximum": INT64_MAX},
                    ),
                    param(
                        "limit",
                        "query",
                        f"Most events (default 100, at most {max_read_limit})",
                        {"type": "integer", "minimum": 1, "maximum": max_read_limit},
                    ),
                    param(
                        "wait",
                        "query",
                        "Seconds to wait for an event when there is none yet (default 0)",
                        {"type": "number", "minimum": 0},
                    ),
                ],
                "responses": {
                    "200": {
                        "description": "Events from `from`; next_offset is where to read on",
                        "content": json_body(ref("Page")),
                    },
                    **errors(400, *AUTH, 416, 503),
                },
            },
        },
        "/api/streams": {
            "get": {
                "summary": "Every stream the key may read: heads, counts, sizes, retention",
                "responses": {
                    "200": {"description": "Streams", "content": json_body(ref("StreamList"))},
                    **errors(*AUTH),
                },
            }
        },
        "/api/streams/{stream}": {
            "get": {
                "summary": "One stream's head, low watermark, count, bytes and retention",
                "parameters": [STREAM],
                "responses": {
                    "200": {"description": "The stream", "content": json_body(ref("StreamDetail"))},
                    **errors(400, *AUTH, 404),
                },
            },
            "delete": {
                "summary": "Delete a stream, its events and its consumers' offsets (admin)",
                "parameters": [STREAM],
                "responses": {"204": {"description": "Deleted"}, **errors(400, *AUTH, 404)},
            },
        },
        "/api/consumers": {
            "get": {
                "summary": "Every consumer's committed offset and lag",
                "responses": {
                    "200": {"description": "Consumers", "content": json_body(ref("ConsumerList"))},
                    **errors(*AUTH),
                },
            }
        },
        "/api/consumers/{name}": {
            "get": {
                "summary": "One consumer's offset and lag on each stream",
                "parameters": [NAME],
                "responses": {
                    "200": {
                        "description": "The consumer",
                        "content": json_body(ref("ConsumerDetail")),
                    },
                    **errors(400, *AUTH, 404),
                },
            },
            "put": {
                "summary": "Seek (admin): commit beginning, end, an offset or a time",
                "parameters": [NAME],
                "requestBody": {"required": True, "content": json_body(ref("SeekRequest"))},
                "responses": {
                    "200": {
                        "description": "The consumer",
                        "content": json_body(ref("ConsumerDetail")),
                    },
                    **errors(400, *AUTH, 404, 415, 422, say={422: "Not a valid position (`path`)"}),
                },
            },
        },
        "/api/consumers/{name}/replay-parked": {
            "post": {
                "summary": "Hand a consumer's parked events back to its handler (admin)",
                "parameters": [NAME],
                "responses": {
                    "200": {
                        "description": "What the replay did",
                        "content": json_body(ref("ReplayResult")),
                    },
                    **errors(400, *AUTH, 404, 409),
                },
            },
        },
        "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "OK"}}}},
        "/readyz": {
            "get": {
                "summary": "Readiness: the log is open and the server not shutting down",
                "responses": {"200": {"description": "Ready"}, **errors(503)},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (text exposition format)",
                "responses": {"200": {"description": "Metrics"}},
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3.1", "content": json_body({})}},
            }
        },
        "/docs": {
            "get": {
                "summary": "This document as an HTML page",
                "responses": {"200": {"description": "HTML"}},
            }
        },
        **ui.openapi_paths(),
        **more.firehose_paths(),
        **more.ingest_paths(),
        **endpoint_paths(
            "/api/webhooks", "webhook endpoint", "EndpointSpec", "EndpointPatch", rotate=True
        ),
        **retention.openapi_paths(),
        **schedules.openapi_paths(),
        **sources.openapi_paths(),
        **shared_consumers.openapi_paths(),
        **endpoint_paths(
            "/api/notifications", "notification target", "NotifySpec", "NotifyPatch", rotate=False
        ),
    }
    doc = {
        "openapi": "3.1.0",
        "info": {
            "title": "eventlog",
            "version": "0.1.0",
            "description": "An append-only event log with named consumers. "
            'Errors are {"error": {"code", "message"}}. WebSocket routes (the firehose) '
            "are listed in x-websockets.",
        },
        "paths": paths,
        "x-websockets": more.websocket_routes(),
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}, {}],
    }
    # As JSON has it (msgspec's schemas hold tuple defaults, for one).
    result: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(doc))
    return result
