"""One place that turns errors into HTTP answers and WebSocket close codes.

Routes raise errors of the one tree (:mod:`eventlog.errors` draws it); they
never pick a status. :data:`ERRORS` maps each stable ``code`` to its HTTP
status and WebSocket close code. An error is looked up by its own code, then
by the codes of its classes, most specific first, so a new error answers like
its branch until it gets a row of its own. One exception: an
:class:`~eventlog.errors.InvalidField` (a field of a well-formed request body
failed validation) is always a 422, whatever its code.

Every error body is ``{"error": {"code": "...", "message": "..."}}`` (plus
``"path"`` when the error names a request field). A 500 means a bug in eventlog.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import Route

from eventlog import errors as e
from eventlog.model import NAMESPACE_SEPARATOR, STREAM_NAME_PATTERN

if TYPE_CHECKING:
    from server.tenancy import TenantScope

__all__ = [
    "CLOSE_CODES",
    "CLOSE_GONE",
    "CLOSE_SLOW",
    "ERRORS",
    "HANDLED",
    "allowed_methods",
    "error_details",
    "error_response",
    "handle_error",
    "message_for",
    "response_for",
    "shown_text",
    "status_for",
    "tenant_of",
    "ws_close_code_for",
]

logger = logging.getLogger("eventlog.server")

#: The close codes the firehose uses after the WebSocket upgrade, and what they mean.
CLOSE_CODES: dict[int, str] = {
    1000: "normal closure",
    1001: "server shutting down, or the stream was deleted",
    1003: "the client sent a message: the firehose is send-only",
    1011: "internal error (a bug in eventlog)",
    1013: "too many firehose clients; retry later",
    4008: "slow client: reconnect with the from= offset named in the reason",
    4416: "events the client needed were removed by retention; reconnect from=beginning",
}
CLOSE_SLOW = 4008
CLOSE_GONE = 4416

#: code -> (HTTP status, WebSocket close code; None: 4000 + status below 500, else 1011).
ERRORS: dict[str, tuple[int, int | None]] = {
    # InvalidInput: the caller sent something wrong
    "invalid_input": (400, None),
    "invalid_stream_name": (400, None),
    "invalid_position": (400, None),
    "invalid_schedule": (400, None),
    "invalid_parameter": (400, None),
    "invalid_range": (400, None),
    "invalid_idempotency_key": (400, None),
    "invalid_event": (422, None),
    "event_too_large": (413, None),
    "validation_error": (422, None),
    "empty_batch": (422, None),
    "batch_too_large": (422, None),
    "idempotency_conflict": (422, None),
    "invalid_endpoint": (422, None),
    "invalid_template": (422, None),
    "invalid_url": (422, None),
    "unsafe_target": (422, None),
    "invalid_secret": (422, None),
    "invalid_source": (422, None),
    "invalid_json_path": (422, None),
    "invalid_config": (422, None),
    "invalid_delay": (422, None),
    "mapping_failed": (400, None),
    "malformed_payload": (400, None),
    "malformed_json": (400, None),
    "empty_body": (400, None),
    "bad_content_length": (400, None),
    "malformed_http": (400, None),
    "malformed_body": (400, None),
    "client_disconnected": (400, None),
    "body_timeout": (408, None),
    "header_timeout": (408, None),
    "headers_too_large": (431, None),
    "body_too_large": (413, None),
    "payload_too_large": (413, None),
    "unsupported_media_type": (415, None),
    "unsupported_encoding": (415, None),
    # NotFound
    "not_found": (404, None),
    "stream_not_found": (404, None),
    "consumer_not_found": (404, None),
    "schedule_not_found": (404, None),
    "consumer_not_running": (404, None),
    "offset_not_found": (404, None),
    "unknown_endpoint": (404, None),
    "unknown_target": (404, None),
    "unknown_delivery": (404, None),
    "unknown_source": (404, None),
    "claim_not_found": (404, None),
    # Conflict
    "conflict": (409, None),
    "expected_offset_mismatch": (409, None),
    "checkpoint_moved": (409, None),
    "delivery_conflict": (409, None),
    "consumer_busy": (409, None),
    "endpoint_exists": (409, None),
    "endpoint_in_config": (409, None),
    "source_exists": (409, None),
    "source_in_config": (409, None),
    "config_source": (409, None),
    "consumer_not_shared": (409, None),
    "consumer_conflict": (409, None),
    "consumer_in_config": (409, None),
    "claim_expired": (409, None),
    "claim_not_held": (409, None),
    "already_acked": (409, None),
    # Unauthorized, Forbidden (every SignatureError code answers as its class: 401)
    "unauthorized": (401, None),
    "forbidden": (403, None),
    "replay_not_allowed": (403, None),
    # QuotaExceeded (server.quotas): a tenant's quota; Retry-After says when to retry
    "quota_exceeded": (429, None),
    "append_rate_exceeded": (429, None),
    "storage_quota_exceeded": (429, None),
    "connection_quota_exceeded": (429, None),
    # OffsetOutOfRange
    "offset_out_of_range": (416, CLOSE_GONE),
    # Unavailable: try again later
    "unavailable": (503, 1013),
    "log_closed": (503, 1001),
    "shutting_down": (503, 1001),
    "not_ready": (503, 1013),
    "webhooks_unavailable": (503, 1013),
    "too_many_clients": (503, 1013),
    "secrets_key": (503, 1011),
    "too_many_connections": (503, 1013),
    "slow_client": (503, CLOSE_SLOW),
    "subscription_ended": (503, 1001),
    # Unsupported: the storage backend cannot do this (memory: no offset transactions)
    "unsupported": (501, None),
    # StorageError
    "storage_error": (503, 1011),
    "corrupt_database": (503, 1011),
    "schema_too_new": (503, 1011),
}


def _row(exc: e.EventLogError) -> tuple[int, int | None]:
    if isinstance(exc, e.InvalidField):  # a field of a well-formed body: 422, whatever its code
        return ERRORS[e.InvalidField.code]
    row = ERRORS.get(exc.code)
    if row is not None:
        return row
    for cls in type(exc).__mro__:
        if issubclass(cls, e.EventLogError) and cls.code in ERRORS:
            return ERRORS[cls.code]
    return 500, 1011


def status_for(exc: e.EventLogError) -> int:
    """The HTTP status for an error of the tree (500: not in :data:`ERRORS`, a bug)."""
    return _row(exc)[0]


def ws_close_code_for(exc: e.EventLogError) -> int:
    """The WebSocket close code for an error of the tree."""
    status, close = _row(exc)
    if close is not None:
        return close
    return 4000 + status if status < 500 else 1011


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app serves at the request's path (Starlette's
    own 405 names only the first matching route's, and the API has one route per method)."""
    path = request.scope.get("path", "")
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods and route.path_regex.fullmatch(path):
            methods |= route.methods
    return sorted(methods)


def error_details(exc: Exception) -> dict[str, object] | None:
    """Fields an error adds to its body: what a reader lost to retention."""
    if isinstance(exc, e.OffsetOutOfRange):
        return {"first_offset": exc.first, "skipped": exc.skipped}
    return None


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    path: str | None = None,
    headers: Mapping[str, str] | None = None,
    details: Mapping[str, object] | None = None,
) -> Response:
    """A JSON error response in eventlog's shape (``details`` join the error object)."""
    body: dict[str, object] = {"code": code, "message": message}
    if path is not None:
        body["path"] = path
    if details:
        body.update(details)
    return Response(
        msgspec.json.encode({"error": body}),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def response_for(
    exc: e.EventLogError,
    headers: Mapping[str, str] | None = None,
    *,
    tenant: str | None = None,
) -> Response:
    """The JSON error response for an error of the tree (with ``Retry-After`` when it says).

    ``tenant``: the request's key's tenant; its names lose their ``<tenant>~``
    prefix in the message, as the key sees them (:mod:`server.tenancy`).
    """
    if exc.retry_after is not None:
        headers = {**(headers or {}), "retry-after": str(exc.retry_after)}
    return error_response(
        status_for(exc),
        exc.code,
        message_for(exc, tenant),
        path=exc.json_path,
        headers=headers,
        details=error_details(exc),
    )


# A name field's error says the rule, not the regex (which also spells the tenant form).
_NAME_REGEX = f"`str` matching regex '{STREAM_NAME_PATTERN}'"
_NAME_RULE = "a name of 1-128 characters of [A-Za-z0-9._-], starting with a letter or digit"


def shown_text(text: str, tenant: str | None) -> str:
    """A message as a key of ``tenant`` sees it: its names without ``<tenant>~``."""
    return text if tenant is None else text.replace(tenant + NAMESPACE_SEPARATOR, "")


def message_for(exc: e.EventLogError, tenant: str | None) -> str:
    """The error's message as a key of ``tenant`` sees it (:func:`shown_text`)."""
    return shown_text(str(exc), tenant)


def tenant_of(conn: HTTPConnection) -> str | None:
    """The tenant of the request's key, once :func:`server.tenancy.scope_of` has worked it out."""
    scope: TenantScope | None = conn.scope.get("state", {}).get("tenant_scope")
    return None if scope is None else scope.tenant


#: The exceptions :func:`handle_error` answers as expected errors (Starlette's
#: exception layer, and the middleware for the route it serves directly); any
#: other exception is a bug, answered 500 by the outermost layer.
HANDLED: tuple[type[Exception], ...] = (
    e.EventLogError,
    msgspec.ValidationError,
    msgspec.DecodeError,
    HTTPException,
    RecursionError,
)


async def handle_error(request: Request, exc: Exception) -> Response:
    """Starlette exception handler for every error type."""
    if isinstance(exc, e.EventLogError):
        status = status_for(exc)
        if status == 500:
            logger.error("unmapped eventlog error: %r", exc)
        return response_for(exc, tenant=tenant_of(request))
    if isinstance(exc, msgspec.ValidationError):
        text = str(exc).replace(_NAME_REGEX, _NAME_RULE)
        if " - at `" in text:
            path = text.rsplit(" - at `", 1)[-1].rstrip("`")
        else:  # msgspec names no path for the document itself (e.g. a missing field)
            path, text = "$", f"{text} - at `$`"
        return error_response(422, "validation_error", text, path=path)
    if isinstance(exc, msgspec.DecodeError):
        return error_response(400, "malformed_json", f"malformed JSON: {exc}")
    if isinstance(exc, RecursionError):  # msgspec's answer to absurdly deep JSON
        return error_response(400, "malformed_json", "malformed JSON: nested too deeply")
    if isinstance(exc, HTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        headers = exc.headers
        if exc.status_code == 405:
            headers = {"allow": ", ".join(allowed_methods(request))}
        return error_response(exc.status_code, code, str(exc.detail), headers=headers)
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "internal error (a bug in eventlog)")
