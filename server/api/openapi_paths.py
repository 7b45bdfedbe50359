"""OpenAPI path items of the feature routes: inbound webhooks, the firehose,
webhook endpoints and notification targets (:mod:`server.api.openapi` has the
core routes and assembles the document).

WebSocket routes have no place in OpenAPI: they are listed in the document's
``x-websockets`` extension (and the description of the SSE operation) by
:func:`websocket_routes`.
"""

from __future__ import annotations

from typing import Any

from consumers.firehose.params import MAX_BATCH
from server.api.openapi import AUTH, INT64_MAX, STREAM, errors, json_body, param, ref
from server.errors import CLOSE_CODES

__all__ = [
    "endpoint_paths",
    "firehose_paths",
    "ingest_paths",
    "websocket_routes",
]

_OBJECT: dict[str, Any] = {"type": "object"}

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
                    "content": {"application/json": {"schema": _OBJECT}},
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
                    "201": {"description": "Created", "content": json_body(_OBJECT)},
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
                    "200": {"description": "The source", "content": json_body(_OBJECT)},
                    **errors(*AUTH, 404, say=no_source),
                },
            },
            "put": {
                "summary": "Create (201) or replace (200) an ingest source",
                "parameters": [name],
                "requestBody": {"required": True, "content": json_body(ref("SourceReplace"))},
                "responses": {
                    "200": {"description": "Replaced", "content": json_body(_OBJECT)},
                    "201": {"description": "Created", "content": json_body(_OBJECT)},
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


def endpoint_paths(base: str, noun: str, spec: str, patch: str, *, rotate: bool) -> dict[str, Any]:
    """The routes of one family of delivery endpoints under ``base``.

    ``/api/webhooks`` (webhook endpoints) and ``/api/notifications``
    (notification targets) share every per-endpoint route; ``spec`` and
    ``patch`` name the schemas of their create and change bodies.
    """
    one = base + "/{id}"
    delivery = one + "/deliveries/{delivery_id}"
    ident = param("id", "path", f"The {noun}'s id", {"type": "string"})
    delivery_id = param("delivery_id", "path", "The delivery's id", {"type": "string"})
    unknown = {404: f"No {noun} has this id"}
    unknown_delivery = {404: f"No {noun} or delivery has this id"}
    in_config = {409: f"The {noun} is declared in the config file (change it there)"}
    invalid = {422: f"Not a valid {noun} (`path` names the field), or an unsafe target"}
    unavailable = {503: "Delivery is not running (the server is shutting down)"}
    view = {"description": f"The {noun}", "content": json_body(_OBJECT)}
    deliveries = {
        "type": "object",
        "properties": {
            "deliveries": {"type": "array", "items": _OBJECT},
            "next": {"type": ["integer", "null"]},
        },
    }

    def op(summary: str, params: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
        return {"summary": summary, "parameters": params, **more}

    paths: dict[str, Any] = {
        base: {
            "get": {
                "summary": f"Every {noun}, with delivery counts",
                "responses": {
                    "200": {"description": f"Every {noun}", "content": json_body(_OBJECT)},
                    **errors(*AUTH, 503, say=unavailable),
                },
            },
            "post": {
                "summary": f"Create a {noun}",
                "requestBody": {"required": True, "content": json_body(ref(spec))},
                "responses": {
                    "201": view,
                    **errors(
                        400,
                        *AUTH,
                        409,
                        422,
                        503,
                        say={409: "An endpoint with this id exists", **invalid, **unavailable},
                    ),
                },
            },
        },
        one: {
            "get": op(
                f"One {noun}",
                [ident],
                responses={"200": view, **errors(*AUTH, 404, say=unknown)},
            ),
            "patch": op(
                f"Change fields of a {noun}",
                [ident],
                requestBody={"required": True, "content": json_body(ref(patch))},
                responses={
                    "200": view,
                    **errors(400, *AUTH, 404, 409, 422, say={**unknown, **in_config, **invalid}),
                },
            ),
            "delete": op(
                f"Delete a {noun} with its deliveries",
                [ident],
                responses={
                    "204": {"description": "Deleted"},
                    **errors(*AUTH, 404, 409, say={**unknown, **in_config}),
                },
            ),
        },
        one + "/enable": {
            "post": op(
                "Switch delivery on",
                [ident],
                responses={"200": view, **errors(*AUTH, 404, say=unknown)},
            )
        },
        one + "/disable": {
            "post": op(
                "Switch delivery off",
                [ident],
                responses={"200": view, **errors(*AUTH, 404, say=unknown)},
            )
        },
        one + "/deliveries": {
            "get": op(
                "Deliveries in ledger order, a page at a time",
                [
                    ident,
                    param(
                        "status",
                        "query",
                        "Only deliveries in this state",
                        {"enum": ["pending", "in_flight", "delivered", "failed"]},
                    ),
                    param(
                        "from",
                        "query",
                        "First ledger sequence number (the previous page's `next`)",
                        {"type": "integer", "minimum": 0, "maximum": INT64_MAX},
                    ),
                    param(
                        "limit",
                        "query",
                        "Most deliveries (1-1000, default 100)",
                        {"type": "integer", "minimum": 1, "maximum": 1000},
                    ),
                ],
                responses={
                    "200": {"description": "A page", "content": json_body(deliveries)},
                    **errors(400, *AUTH, 404, say=unknown),
                },
            )
        },
        delivery: {
            "get": op(
                "One delivery with every attempt (time, duration, status, error, snippet)",
                [ident, delivery_id],
                responses={
                    "200": {"description": "The delivery", "content": json_body(_OBJECT)},
                    **errors(*AUTH, 404, say=unknown_delivery),
                },
            )
        },
        delivery + "/retry": {
            "post": op(
                "Send a delivery again with a fresh attempt budget",
                [ident, delivery_id],
                responses={
                    "202": {"description": "Scheduled", "content": json_body(_OBJECT)},
                    **errors(
                        *AUTH,
                        403,
                        404,
                        409,
                        say={
                            403: "The endpoint does not allow replay",
                            409: "The delivery is in flight",
                            **unknown_delivery,
                        },
                    ),
                },
            )
        },
        delivery + "/skip": {
            "post": op(
                "Give a delivery up (ends head-of-line blocking in the ordered modes)",
                [ident, delivery_id],
                responses={
                    "200": {"description": "Skipped", "content": json_body(_OBJECT)},
                    **errors(
                        *AUTH,
                        404,
                        409,
                        say={409: "The delivery is in flight", **unknown_delivery},
                    ),
                },
            )
        },
        one + "/replay": {
            "post": op(
                "Deliver [from, to) of the stream again, straight from the log (backfill)",
                [ident],
                requestBody={"required": True, "content": json_body(ref("ReplayRequest"))},
                responses={
                    "202": {"description": "Scheduled", "content": json_body(_OBJECT)},
                    "200": {"description": "dry_run: counted only", "content": json_body(_OBJECT)},
                    **errors(
                        400,
                        *AUTH,
                        403,
                        404,
                        422,
                        say={
                            400: "A bad or empty range (invalid_parameter, invalid_range)",
                            403: "The endpoint does not allow replay",
                            404: f"No {noun} has this id, or an offset outside the stream",
                        },
                    ),
                },
            )
        },
    }
    if rotate:
        paths[one + "/rotate-secret"] = {
            "post": op(
                "Add a new signing secret; the old ones keep signing for `grace` seconds",
                [ident],
                requestBody={"required": False, "content": json_body(ref("RotateRequest"))},
                responses={
                    "200": {
                        "description": f"The {noun}, with the new secret unless one was given",
                        "content": json_body(_OBJECT),
                    },
                    **errors(
                        400,
                        *AUTH,
                        404,
                        422,
                        say={**unknown, 422: "Not a valid secret or grace (`path` says where)"},
                    ),
                },
            )
        }
    return paths
