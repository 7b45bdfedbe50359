"""File sources over HTTP: ``/api/sources`` (admin).

File sources read the server's own files, so they belong to the server, not to
a tenant: a tenant's key gets 403 here, even with ``admin`` (docs/tenants.md).

* ``GET /api/sources`` — ``{"sources": [{"spec", "origin", "status"}]}``.
* ``POST /api/sources`` — create from a spec (``{"name", "kind", "path",
  "stream", ...}``): ``201``; ``409`` if the name is taken; ``422`` invalid,
  or its ``path``/``done`` outside ``source_dirs`` (:mod:`server.sources.confine`).
* ``GET|PUT|DELETE /api/sources/{name}`` — one; replace (``200``/``201``);
  stop and forget (``204``). Sources of the config file answer ``409``.
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from eventlog.errors import Forbidden, Unavailable
from server.api.openapi_parts import AUTH, errors, json_body, param, ref
from server.auth import require
from server.sources.manager import SourceManager, SourceView
from server.tenancy import scope_of

__all__ = ["SourceList", "openapi_paths", "routes"]

_encoder = msgspec.json.Encoder()


class SourceList(msgspec.Struct, kw_only=True):
    """Every file source."""

    sources: list[SourceView]


def _json(value: object, status: int = 200) -> Response:
    return Response(_encoder.encode(value), status_code=status, media_type="application/json")


def _manager(request: Request) -> SourceManager:
    require(request, "admin")
    if scope_of(request).tenant is not None:
        raise Forbidden("file sources read the server's files: a tenant's key may not manage them")
    manager: SourceManager | None = getattr(request.app.state, "sources", None)
    if manager is None:
        raise Unavailable("file sources are not running", code="not_ready")
    return manager


async def _body(request: Request) -> object:
    return msgspec.json.decode(await request.body())


def _name(request: Request) -> str:
    name: str = request.path_params["name"]
    return name


async def list_sources(request: Request) -> Response:
    """``GET /api/sources``."""
    return _json(SourceList(sources=_manager(request).views()))


async def create_source(request: Request) -> Response:
    """``POST /api/sources``."""
    manager = _manager(request)
    body = await _body(request)
    view, _ = await manager.put(body)
    return _json(view, 201)


async def get_source(request: Request) -> Response:
    """``GET /api/sources/{name}``."""
    manager = _manager(request)
    return _json(manager.view(_name(request)))


async def put_source(request: Request) -> Response:
    """``PUT /api/sources/{name}``: create or replace."""
    manager = _manager(request)
    body = await _body(request)
    view, created = await manager.put(body, _name(request))
    return _json(view, 201 if created else 200)


async def delete_source(request: Request) -> Response:
    """``DELETE /api/sources/{name}``."""
    manager = _manager(request)
    await manager.delete(_name(request))
    return Response(status_code=204)


routes = [
    Route("/api/sources", list_sources, methods=["GET"]),
    Route("/api/sources", create_source, methods=["POST"]),
    Route("/api/sources/{name}", get_source, methods=["GET"]),
    Route("/api/sources/{name}", put_source, methods=["PUT"]),
    Route("/api/sources/{name}", delete_source, methods=["DELETE"]),
]


def openapi_paths() -> dict[str, Any]:
    """The ``/api/sources`` routes for the OpenAPI document."""
    name = param("name", "path", "The source's name", {"type": "string"})
    spec = {"required": True, "content": json_body(ref("SourceSpec"))}
    view = json_body(ref("SourceView"))
    owned = {
        "409": {
            "description": "Declared in the config file (or, creating, the name is taken)",
            "content": json_body(ref("Error")),
        }
    }
    missing = {"404": {"description": "No such source", "content": json_body(ref("Error"))}}
    return {
        "/api/sources": {
            "get": {
                "summary": "Every file source with its status",
                "responses": {
                    "200": {"description": "The sources", "content": json_body(ref("SourceList"))},
                    **errors(*AUTH, 503),
                },
            },
            "post": {
                "summary": "Watch a file or directory into a stream",
                "requestBody": spec,
                "responses": {
                    "201": {"description": "Created and running", "content": view},
                    **owned,
                    **errors(400, *AUTH, 422, 503),
                },
            },
        },
        "/api/sources/{name}": {
            "get": {
                "summary": "One source",
                "parameters": [name],
                "responses": {
                    "200": {"description": "It", "content": view},
                    **missing,
                    **errors(*AUTH, 503),
                },
            },
            "put": {
                "summary": "Create or replace a source made over the API",
                "parameters": [name],
                "requestBody": spec,
                "responses": {
                    "200": {"description": "Replaced", "content": view},
                    "201": {"description": "Created", "content": view},
                    **owned,
                    **errors(400, *AUTH, 422, 503),
                },
            },
            "delete": {
                "summary": "Stop and forget a source made over the API",
                "parameters": [name],
                "responses": {
                    "204": {"description": "Deleted"},
                    **missing,
                    **owned,
                    **errors(*AUTH, 503),
                },
            },
        },
    }
