"""The dashboard: ``/ui`` (static files shipped inside the package) and ``GET /api/whoami``.

The page (``server/ui/``: one HTML file, one script, one stylesheet, no
framework, nothing fetched from elsewhere) talks to the same HTTP API and
firehose as any client, with the API key the operator types in. Serving the
files needs no key: they hold no data. ``/api/whoami`` tells the page what its
key may do, so a key without ``admin`` gets no buttons.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from server.auth import Authenticator, token_of
from server.errors import ApiError

__all__ = ["routes", "whoami"]


async def whoami(request: Request) -> Response:
    """``GET /api/whoami``: the presented key's name and scopes (401 for an unknown key)."""
    auth: Authenticator = request.app.state.auth
    if not auth.enabled:
        return JSONResponse({"auth": False, "name": None, "admin": True, "scopes": ["admin"]})
    token = token_of(request)
    if not token:
        raise ApiError(401, "unauthorized", "an API key is required (Authorization: Bearer)")
    grant = auth.grant_for(token)
    if grant is None:
        raise ApiError(401, "unauthorized", "unknown API key")
    scopes = ["admin"] if grant.admin else []
    scopes += [f"{action}:{glob}" for action, globs in grant.globs.items() for glob in globs]
    return JSONResponse({"auth": True, "name": grant.name, "admin": grant.admin, "scopes": scopes})


async def _to_ui(request: Request) -> Response:
    return RedirectResponse("/ui/", status_code=308)


routes = [
    Route("/api/whoami", whoami, methods=["GET"]),
    Route("/ui", _to_ui, methods=["GET"]),
    Mount("/ui", StaticFiles(packages=[("server", "ui")], html=True), name="ui"),
]
