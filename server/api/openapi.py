"""The OpenAPI 3.1 document of the HTTP API and the ``/docs`` page rendered from it.

Schemas come from the msgspec Structs the routes decode and encode, so the
document cannot drift from the wire format; paths are listed by hand: the core
routes here, the feature routes (ingest, firehose) in
:mod:`server.api.openapi_paths`, the webhook and notification routes in
:mod:`server.api.openapi_endpoints`, from the pieces in
:mod:`server.api.openapi_parts`. ``tests/server/test_openapi.py`` checks that
every route of the app is in the document and that the document is valid.
"""

from __future__ import annotations

import html
from functools import cache
from typing import Any

import msgspec

from eventlog import Event, StreamInfo
from server.api.append_body import Id, Key, Type
from server.api.openapi_parts import AUTH, NAME, STREAM, errors, json_body, param, ref

__all__ = ["docs_html", "openapi_document"]


class ErrorBody(msgspec.Struct):
    """What went wrong: a stable code, a message, the JSON path of a bad value."""

    code: str
    message: str
    path: str | None = None


class Error(msgspec.Struct):
    """Every error answer."""

    error: ErrorBody


class EventIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An event to append (the schema of :class:`server.api.append_body.EventIn`,
    whose ``data`` is kept as raw JSON bytes; any JSON value)."""

    type: Type
    data: Any = None
    key: Key | None = None
    id: Id | None = None
    headers: dict[str, str] = {}


@cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 description of the API (built once)."""
    from consumers.notify import NotifyPatch, NotifySpec
    from consumers.parking import ReplayResult
    from consumers.webhook import EndpointPatch, EndpointSpec
    from eventlog.schedule import SchedulePage
    from server.api import openapi_paths as more
    from server.api import schedules, sources
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
    ]
    (_, components) = msgspec.json.schema_components(
        structs, ref_template="#/components/schemas/{name}"
    )
    append_body = {"oneOf": [ref("EventIn"), {"type": "array", "items": ref("EventIn")}]}
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
                        {"type": "integer", "minimum": 0},
                    ),
                    *schedules.APPEND_PARAMS,
                    param(
                        "Idempotency-Key",
                        "header",
                        "Retries with the same key get the same offsets and write nothing",
                        {"type": "string", "maxLength": 200},
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
                        "application/cloudevents+json": {"schema": {"type": "object"}},
                        "application/cloudevents-batch+json": {"schema": {"type": "array"}},
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
                    **errors(400, *AUTH, 408, 409, 413, 415, 422, 503),
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
                        {"type": "integer", "minimum": 0},
                    ),
                    param(
                        "limit",
                        "query",
                        "Most events (default 100)",
                        {"type": "integer", "minimum": 1},
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
                    **errors(400, *AUTH, 404, 415, 422),
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
        **more.firehose_paths(),
        **more.ingest_paths(),
        **endpoint_paths(
            "/api/webhooks", "webhook endpoint", "EndpointSpec", "EndpointPatch", rotate=True
        ),
        **schedules.openapi_paths(),
        **sources.openapi_paths(),
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


@cache
def docs_html() -> str:
    """A self-contained HTML page listing every operation of :func:`openapi_document`."""
    doc = openapi_document()
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>eventlog HTTP API</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;",
        "padding:0 1rem;line-height:1.45}code{background:#f3f3f3;padding:0 .2em}",
        "h3{margin-bottom:.2rem}.m{font-weight:bold;color:#05a}td{padding:.1rem .6rem;",
        "vertical-align:top}</style></head><body>",
        "<h1>eventlog HTTP API</h1>",
        f"<p>{html.escape(doc['info']['description'])} Machine-readable: ",
        "<a href='/openapi.json'>/openapi.json</a>.</p>",
    ]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            parts.append(
                f"<h3><span class='m'>{method.upper()}</span> <code>{html.escape(path)}</code></h3>"
            )
            parts.append(f"<p>{html.escape(op.get('summary', ''))}</p>")
            if "description" in op:
                parts.append(f"<p>{html.escape(op['description'])}</p>")
            params = op.get("parameters", [])
            if params:
                parts.append("<table>")
                for p in params:
                    parts.append(
                        f"<tr><td><code>{html.escape(p['name'])}</code></td>"
                        f"<td>{p['in']}</td><td>{html.escape(p['description'])}</td></tr>"
                    )
                parts.append("</table>")
            codes = ", ".join(
                f"{code} {html.escape(r['description'])}" for code, r in op["responses"].items()
            )
            parts.append(f"<p><small>{codes}</small></p>")
    parts.append("</body></html>")
    return "".join(parts)
