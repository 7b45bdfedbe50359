"""OpenAPI path items of the feature routes: inbound webhooks and the firehose
(:mod:`server.api.openapi` has the core routes and assembles the document;
webhook endpoints and notification targets are :mod:`server.api.openapi_endpoints`).

WebSocket routes have no place in OpenAPI: they are listed in the document's
``x-websockets`` extension (and the description of the SSE operation) by
:func:`websocket_routes`.
"""

from __future__ import annotations

from typing import Any

from consumers.firehose.params import MAX_BATCH
from server.api.openapi_parts import AUTH, OBJECT, STREAM, errors, json_body, param, ref
from server.errors import CLOSE_CODES

__all__ = [
    "firehose_paths",
    "ingest_paths",
    "websocket_routes",
]

_FROM = param(
    "from",
    "query",
    "Where to start: an offset, `beginning` or `end` (default `end`)",
    {"type": "string", "pattern": "^(beginning|end|[0-9]+)$"},
)
_TYPES = param("types", "query", "Comma-separated type globs, e.g. `order.*`", {"type": "string"})
_KEY = param(
    "key",
    "query",
    "Only events whose key matches this pattern",
    {"type": "string", "minLength": 1, "maxLength": 1024},
)
_BATCH = param(
    "batch",
    "query",
    f"Events per frame (default 1, at most {MAX_BATCH})",
    {"type": "integer", "minimum": 1, "maximum": MAX_BATCH},
)
_FIREHOSE_PARAMS = [_FROM, _TYPES, _KEY, _BATCH]

_CLOSE_CODES = {str(code): meaning for code, meaning in CLOSE_CODES.items()}


def websocket_routes() -> list[dict[str, Any]]:
    """The WebSocket routes, for the ``x-websockets`` extension of the document."""
    common = {
        "parameters": _FIREHOSE_PARAMS,
        "messages": "One JSON text frame per event (the Event schema), or a JSON array "
        "of events per frame with batch>1. The firehose is send-only.",
        "errors_before_upgrade": "400 bad parameter, 401/403 auth, 404 unknown stream, "
        "416 offset before the first retained event, 503 too many clients: eventlog's "
        "JSON error body, no upgrade",
        "close_codes": _CLOSE_CODES,
    }
    return [
        {
            "path": "/api/events/firehose",
            "summary": "Firehose of the default stream `events`",
            **common,
        },
        {
            "path": "/api/streams/{stream}/firehose",
            "summary": "Firehose of one stream",
            **common,
            "parameters": [STREAM, *_FIREHOSE_PARAMS],
        },
    ]


def firehose_paths() -> dict[str, Any]:
    """``GET /api/streams/{stream}/sse`` (the WebSocket routes: :func:`websocket_routes`)."""
    return {
        "/api/streams/{stream}/sse": {
            "get": {
                "summary": "Follow a stream as Server-Sent Events",
                "description": (
                    "One `data:` line per event (or per batch), with `id:` the event's offset; "
                    "a reconnecting client's Last-Event-ID resumes after that offset. The same "
                    "events are available over WebSocket at /api/streams/{stream}/firehose and "
                    "/api/events/firehose (see `x-websockets` at the top of this document)."
                ),
                "parameters": [
                    STREAM,
                    *_FIREHOSE_PARAMS,
                    param(
                        "Last-Event-ID",
                        "header",
                        "Resume after this offset (sent by EventSource on reconnect)",
                        {"type": "string", "pattern": "^[0-9]+$"},
                    ),
                ],
                "responses": {
                    "200": {
                        "description": "An endless text/event-stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    **errors(
                        400,
                        *AUTH,
                        404,
                        416,
                        503,
                        say={503: "Too many firehose clients, or the server is shutting down"},
                    ),
                },
            }
        }
    }


def ingest_paths() -> dict[str, Any]:
    """``POST /ingest/{source}`` and ``/api/ingest/sources...``."""
    source = param(
        "source",
        "path",
        "The ingest source's name",
        STREAM["schema"],
    )
    name = {**source, "name": "name"}
    no_source = {404: "No ingest source has this name"}
    in_config = {409: "The source is defined in the config file (change it there)"}
    bad_source = {422: "Not a valid source (`path` names the field)"}
    return {
        "/ingest/{source}": {
            "post": {
                "summary": "Receive an inbound webhook (GitHub, Stripe, Slack, Standard Webhooks)",
                "description": (
                    "Needs no API key: the sender's own signature scheme is checked over the "
                    "raw body. The mapped event is appended to the source's stream; a delivery "
                    "id seen before returns the original offset with duplicate=true."
                ),
                "security": [],
                "parameters": [source],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": OBJECT}},
                },
                "responses": {
                    "202": {
                        "description": "Appended (or a duplicate delivery)",
                        "content": json_body(
                            {
                                "type": "object",
                                "properties": {
                                    "stream": {"type": "string"},
                                    "offset": {"type": "integer"},
                                    "id": {"type": "string"},
                                    "duplicate": {"type": "boolean"},
                                },
                            }
                        ),
                    },
                    "200": {
                        "description": "Slack's url_verification handshake",
                        "content": json_body(
                            {"type": "object", "properties": {"challenge": {"type": "string"}}}
                        ),
                    },
                    **errors(
                        400,
                        401,
                        404,
                        413,
                        say={
                            400: "malformed_payload, or mapping_failed (`path` says where)",
                            401: "missing_signature, malformed_signature, bad_signature or "
                            "timestamp_out_of_tolerance",
                            413: "payload_too_large: over the source's max_body_bytes",
                            **no_source,
                        },
                    ),
                },
            }
        },
        "/api/ingest/sources": {
            "get": {
                "summary": "Every ingest source (secrets are never returned)",
                "responses": {
                    "200": {
                        "description": "Sources",
                        "content": json_body(
                            {"type": "object", "properties": {"sources": {"type": "array"}}}
                        ),
                    },
                    **errors(*AUTH),
                },
            },
            "post": {
                "summary": "Create an ingest source",
                "requestBody": {"required": True, "content": json_body(ref("Source"))},
                "responses": {
                    "201": {"description": "Created", "content": json_body(OBJECT)},
                    **errors(
                        400,
                        *AUTH,
                        409,
                        422,
                        say={409: "A source with this name exists", **bad_source},
                    ),
                },
            },
        },
        "/api/ingest/sources/{name}": {
            "get": {
                "summary": "One ingest source",
                "parameters": [name],
                "responses": {
                    "200": {"description": "The source", "content": json_body(OBJECT)},
                    **errors(*AUTH, 404, say=no_source),
                },
            },
            "put": {
                "summary": "Create (201) or replace (200) an ingest source",
                "parameters": [name],
                "requestBody": {"required": True, "content": json_body(ref("SourceReplace"))},
                "responses": {
                    "200": {"description": "Replaced", "content": json_body(OBJECT)},
                    "201": {"description": "Created", "content": json_body(OBJECT)},
                    **errors(400, *AUTH, 409, 422, say={**in_config, **bad_source}),
                },
            },
            "delete": {
                "summary": "Delete an ingest source",
                "parameters": [name],
                "responses": {
                    "204": {"description": "Deleted"},
                    **errors(*AUTH, 404, 409, say={**no_source, **in_config}),
                },
            },
        },
    }
