"""One place that turns errors into HTTP answers and WebSocket close codes.

Every error body is ``{"error": {"code": "...", "message": "..."}}`` (plus
``"path"`` for validation errors). A 500 means a bug in eventlog.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from eventlog import errors as e

__all__ = [
    "ApiError",
    "allowed_methods",
    "error_details",
    "error_response",
    "handle_error",
    "status_for",
    "ws_close_code_for",
]

logger = logging.getLogger("eventlog.server")

_STATUS: list[tuple[type[e.EventLogError], int]] = [
    (e.EventTooLarge, 413),
    (e.InvalidStreamName, 400),
    (e.InvalidPosition, 400),
    (e.InvalidEvent, 422),
    (e.InvalidInput, 400),
    (e.NotFound, 404),
    (e.ExpectedOffsetMismatch, 409),
    (e.CheckpointMoved, 409),
    (e.OffsetOutOfRange, 416),
    (e.LogClosed, 503),
    (e.StorageError, 503),
]


class ApiError(Exception):
    """An error the API answers with directly: status, stable code, message."""

    def __init__(self, status: int, code: str, message: str, *, path: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.path = path


def status_for(exc: e.EventLogError) -> int:
    """The HTTP status for an eventlog error."""
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def ws_close_code_for(exc: e.EventLogError) -> int:
    """The WebSocket close code for an eventlog error (4000 + HTTP status)."""
    return 4000 + status_for(exc) if status_for(exc) < 500 else 1011


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


async def handle_error(request: Request, exc: Exception) -> Response:
    """Starlette exception handler for every error type."""
    if isinstance(exc, ApiError):
        return error_response(exc.status, exc.code, exc.message, path=exc.path)
    if isinstance(exc, e.EventLogError):
        status = status_for(exc)
        if status >= 500 and status != 503:
            logger.error("unmapped eventlog error: %r", exc)
        path = exc.path if isinstance(exc, e.InvalidEvent) else None
        return error_response(status, exc.code, str(exc), path=path, details=error_details(exc))
    if isinstance(exc, msgspec.ValidationError):
        text = str(exc)
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
