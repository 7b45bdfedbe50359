"""``/api/webhooks``: the webhook endpoint collection, and the routes only webhooks have.

Every route needs the ``admin`` scope when API keys are configured.

=======================================================  ===========================================
``GET    /api/webhooks``                                  list endpoints
``POST   /api/webhooks``                                  create (201; 409 if the id exists)
``GET    /api/webhooks/{id}``                             show
``PATCH  /api/webhooks/{id}``                             change fields (409 for config endpoints)
``DELETE /api/webhooks/{id}``                             delete with its deliveries (204)
``POST   /api/webhooks/{id}/enable`` / ``disable``        switch delivery on or off
``POST   /api/webhooks/{id}/rotate-secret``               new secret; old ones sign for ``grace`` s
``GET    /api/webhooks/{id}/deliveries``                  ``?status=&from=&limit=``
``GET    /api/webhooks/{id}/deliveries/{delivery_id}``    one delivery with every attempt
``POST   .../deliveries/{delivery_id}/retry`` / ``skip``  202 / 200; 409 while in flight
``POST   /api/webhooks/{id}/replay``                      202 scheduled (200 for ``dry_run``),
                                                          403 replay not allowed, 404 unknown
=======================================================  ===========================================

Secrets never appear in answers except once: the response that *generated*
a secret (create without ``secret``, rotate without ``secret``) carries it in
``"secret"``, because there is no other way to learn it. Everywhere else an
endpoint shows ``whsec_abcd…`` hints and hides extra header values.

This module holds list, create, show, change and rotate-secret. The
per-endpoint routes (delete, enable/disable, deliveries, retry, skip, replay)
serve other families of endpoints of the same engine too and live in
:mod:`server.api.endpoint_routes` (:func:`endpoint_routes` mounts them for
notification targets under ``/api/notifications`` as well); the helpers they
share are in :mod:`server.api.endpoint_family`, the delivery views in
:mod:`server.api.delivery_views`. The engine itself is started and stopped by
:mod:`server.api.webhook_engine`.
"""

from __future__ import annotations

import time

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from consumers.webhook import (
    EndpointPatch,
    EndpointSpec,
    apply_patch,
    build_endpoint,
    rotate_secret,
)
from server.api.delivery_views import attempt_view, delivery_view
from server.api.endpoint_family import (
    WEBHOOKS,
    Family,
    decode_body,
    find_endpoint,
    json_response,
    shown_view,
    visible_endpoints,
)
from server.api.endpoint_routes import (
    ReplayRequest,
    endpoint_routes,
    new_endpoint,
    patch_endpoint,
)
from server.api.webhook_engine import engine_of
from server.auth import require

__all__ = [
    "WEBHOOKS",
    "Family",
    "ReplayRequest",
    "RotateRequest",
    "attempt_view",
    "delivery_view",
    "endpoint_routes",
    "routes",
]


class RotateRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of ``rotate-secret``: an optional new secret and the old ones' grace period."""

    secret: str | None = None
    grace: float = 86400.0


async def list_endpoints(request: Request) -> Response:
    """``GET /api/webhooks``."""
    require(request, "admin")
    views = await visible_endpoints(request, engine_of(request), WEBHOOKS)
    return json_response({"webhooks": views})


async def create_endpoint(request: Request) -> Response:
    """``POST /api/webhooks``: 201 with the endpoint (and a generated secret, once)."""
    spec, endpoint, now = await new_endpoint(
        request, EndpointSpec, build_endpoint, named="a webhook endpoint"
    )
    view = shown_view(request, WEBHOOKS, endpoint, now)
    if spec.secret is None:
        view["secret"] = endpoint.secrets[0].secret
    return json_response(view, 201)


async def change_endpoint(request: Request) -> Response:
    """``PATCH /api/webhooks/{id}``."""
    return await patch_endpoint(
        request, WEBHOOKS, EndpointPatch, lambda e, p, now: apply_patch(e, p, now=now)
    )


async def rotate(request: Request) -> Response:
    """``POST /api/webhooks/{id}/rotate-secret``."""
    require(request, "admin")
    engine = engine_of(request)
    endpoint = await find_endpoint(engine, request)
    body: RotateRequest = await decode_body(request, RotateRequest, required=False)
    now = time.time()
    updated, secret = rotate_secret(endpoint, now=now, secret=body.secret, grace=body.grace)
    await engine.put_endpoint(updated)
    view = shown_view(request, WEBHOOKS, updated, now)
    if body.secret is None:
        view["secret"] = secret
    return json_response(view)


_BASE = "/api/webhooks"
_ONE = _BASE + "/{id}"

routes = [
    Route(_BASE, list_endpoints, methods=["GET"]),
    Route(_BASE, create_endpoint, methods=["POST"]),
    Route(_ONE, change_endpoint, methods=["PATCH"]),
    Route(_ONE + "/rotate-secret", rotate, methods=["POST"]),
    *endpoint_routes(_BASE, WEBHOOKS),
]
