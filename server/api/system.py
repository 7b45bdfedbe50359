"""Operational endpoints: ``/healthz``, ``/readyz``, ``/metrics``, ``/openapi.json``, ``/docs``.

``/healthz`` answers 200 while the process serves requests. ``/readyz`` answers
200 once the log is open and the app is not shutting down, else 503.
``/metrics`` is the Prometheus text format. None of them needs an API key:
they carry no event data (put them behind your proxy if that matters). With
tenants, ``/metrics`` shows a request only the series of names its key sees
(:meth:`server.tenancy.TenantScope.metrics`): a tenant's key its tenant's,
no key the names without a tenant, an admin key without a tenant all.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from eventlog import EventLog
from eventlog.errors import Unavailable
from server.api.docs_page import docs_html
from server.api.openapi import openapi_document
from server.metrics import metrics_of
from server.tenancy import scope_of

__all__ = ["routes"]


async def healthz(request: Request) -> Response:
    """Liveness: the process answers."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Readiness: the log is open and the server is not shutting down."""
    log: EventLog = request.app.state.log
    if not request.app.state.ready or log.closed or request.app.state.stopping.is_set():
        raise Unavailable("the server is starting or shutting down", code="not_ready")
    return JSONResponse({"status": "ready"})


async def metrics(request: Request) -> Response:
    """Prometheus metrics."""
    m = metrics_of(request.app)
    manager = getattr(request.app.state, "consumer_manager", None)
    await m.refresh(manager.status() if manager is not None else ())
    scope = scope_of(request, anonymous=True)
    body = m.render()
    if not scope.sees_all:
        body = scope.metrics(body.decode()).encode()
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


async def openapi(request: Request) -> Response:
    """The OpenAPI 3.1 document of the HTTP API."""
    return JSONResponse(openapi_document(request.app.state.config.max_read_limit))


async def docs(request: Request) -> Response:
    """Human-readable API reference, rendered from the OpenAPI document."""
    return HTMLResponse(docs_html(request.app.state.config.max_read_limit))


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
    Route("/docs", docs, methods=["GET"]),
]
