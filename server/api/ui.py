"""The dashboard: ``/ui`` (static files shipped inside the package) and ``GET /api/whoami``.

The page (``server/ui/``: one HTML file, one script, one stylesheet, no
framework, nothing fetched from elsewhere) talks to the same HTTP API and
firehose as any client, with the API key the operator types in. Serving the
files needs no key: they hold no data. ``/api/whoami`` tells the page what its
key may do, so a key without ``admin`` gets no buttons.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from eventlog.errors import Unauthorized
from server.api.openapi_parts import errors, json_body
from server.auth import Authenticator, token_of

__all__ = ["openapi_paths", "routes", "whoami"]


async def whoami(request: Request) -> Response:
    """``GET /api/whoami``: the presented key's name and scopes (401 for an unknown key)."""
    auth: Authenticator = request.app.state.auth
    if not auth.enabled:
        return JSONResponse(
            {"auth": False, "name": None, "admin": True, "scopes": ["admin"], "tenant": None}
        )
    token = token_of(request)
    if not token:
        raise Unauthorized("an API key is required (Authorization: Bearer)")
    grant = auth.grant_for(token)
    if grant is None:
        raise Unauthorized("unknown API key")
    scopes = ["admin"] if grant.admin else []
    scopes += [f"{action}:{glob}" for action, globs in grant.globs.items() for glob in globs]
    return JSONResponse(
        {
            "auth": True,
            "name": grant.name,
            "admin": grant.admin,
            "scopes": scopes,
            "tenant": grant.tenant,
        }
    )


def openapi_paths() -> dict[str, Any]:
    """The OpenAPI path item of ``/api/whoami`` (``/ui`` is static files, not API)."""
    who = {
        "type": "object",
        "required": ["auth", "name", "admin", "scopes", "tenant"],
        "properties": {
            "auth": {"type": "boolean", "description": "false: the server has no API keys"},
            "name": {"type": ["string", "null"], "description": "the key's name"},
            "admin": {"type": "boolean"},
            "scopes": {"type": "array", "items": {"type": "string"}},
            "tenant": {
                "type": ["string", "null"],
                "description": "the key's tenant (docs/tenants.md); null: none",
            },
        },
    }
    return {
        "/api/whoami": {
            "get": {
                "summary": "What the presented API key may do (the dashboard shows buttons by it)",
                "responses": {
                    "200": {"description": "The key's name and scopes", "content": json_body(who)},
                    **errors(401),
                },
            }
        },
    }


routes = [
    Route("/api/whoami", whoami, methods=["GET"]),
    Mount("/ui", StaticFiles(packages=[("server", "ui")], html=True), name="ui"),
]
