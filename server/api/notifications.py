"""``/api/notifications``: chat notification targets (Discord, Slack, Apprise).

A notification target is an endpoint of the server's one delivery engine
whose kind is ``discord``, ``slack`` or ``apprise`` (:mod:`consumers.notify`):
same ledger, retries, replay and auto-disable as webhooks. It has its own
path because its body differs (``kind``, ``options``, no secret or headers)
and because its URL is a credential: every answer shows it masked
(``https://discord.com/api/webhooks/…``; an Apprise URL never). The
per-target routes are those of ``/api/webhooks``
(:func:`server.api.endpoint_routes.endpoint_routes`), mounted here for these kinds;
an id names one endpoint of either family (409 on a clash).

Every route needs the ``admin`` scope when API keys are configured.

=========================================================  ====================================
``GET    /api/notifications``                               list targets
``POST   /api/notifications``                               create (201; 409 if the id exists)
``GET    /api/notifications/{id}``                          show, with delivery counts
``PATCH  /api/notifications/{id}``                          change fields (409 for config ones)
``DELETE /api/notifications/{id}``                          delete with its deliveries (204)
``POST   /api/notifications/{id}/enable`` / ``disable``     switch delivery on or off
``GET    /api/notifications/{id}/deliveries``               ``?status=&from=&limit=``
``GET    .../deliveries/{delivery_id}``                     one delivery with every attempt
``POST   .../deliveries/{delivery_id}/retry`` / ``skip``    202 / 200; 409 while in flight
``POST   /api/notifications/{id}/replay``                   202 scheduled, 200 ``dry_run``
=========================================================  ====================================
"""

from __future__ import annotations

from typing import cast

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from consumers.notify import (
    KINDS,
    ChatSpec,
    NotifyPatch,
    NotifySpec,
    notify_view,
)
from consumers.webhook import apply_patch, build_endpoint
from server.api.endpoint_family import (
    FIXED,
    Family,
    json_response,
    shown_view,
    visible_endpoints,
)
from server.api.endpoint_routes import endpoint_routes, new_endpoint, patch_endpoint
from server.api.webhook_engine import engine_of
from server.auth import require

__all__ = ["NOTIFICATIONS", "routes"]

#: The notification targets among the engine's endpoints.
NOTIFICATIONS = Family(
    frozenset(KINDS), "notification target", "unknown_target", notify_view, fixed=FIXED
)


async def list_targets(request: Request) -> Response:
    """``GET /api/notifications``."""
    require(request, "admin")
    views = await visible_endpoints(request, engine_of(request), NOTIFICATIONS)
    return json_response({"notifications": views})


async def create_target(request: Request) -> Response:
    """``POST /api/notifications``: 201 with the target (its URL masked)."""
    # NotifySpec is the tagged union of the chat kinds: decoding picks the kind.
    union = cast("type[ChatSpec]", NotifySpec)
    _, endpoint, now = await new_endpoint(request, union, build_endpoint, named="an endpoint")
    return json_response(shown_view(request, NOTIFICATIONS, endpoint, now), 201)


async def change_target(request: Request) -> Response:
    """``PATCH /api/notifications/{id}``: ``options`` is replaced as a whole."""
    return await patch_endpoint(
        request, NOTIFICATIONS, NotifyPatch, lambda e, p, now: apply_patch(e, p, now=now)
    )


_BASE = "/api/notifications"

routes = [
    Route(_BASE, list_targets, methods=["GET"]),
    Route(_BASE, create_target, methods=["POST"]),
    Route(_BASE + "/{id}", change_target, methods=["PATCH"]),
    *endpoint_routes(_BASE, NOTIFICATIONS),
]
