"""A family of delivery endpoints, and the request helpers every endpoint route shares.

A :class:`Family` names which of the engine's endpoints a set of routes
manages (webhooks, notification targets) and how it shows them. The helpers
find the endpoint of a ``{id}`` path (404 for other families), decode a JSON
body, and check and save an endpoint (SSRF guard).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from consumers.delivery.engine import DeliveryEngine
from consumers.delivery.model import Endpoint
from consumers.webhook import public_view
from eventlog.errors import Conflict, InvalidInput, NotFound
from server.api.webhook_engine import check_target, stream_bounds, webhooks_config
from server.tenancy import SEP, scope_of
from server.validation import decode

__all__ = [
    "FIXED",
    "WEBHOOKS",
    "Family",
    "decode_body",
    "find_endpoint",
    "json_response",
    "not_config",
    "save_endpoint",
    "shown_view",
    "stream_bounds",
    "visible_endpoints",
]


@dataclass(frozen=True)
class Family:
    """Which of the engine's endpoints a set of routes manages, and how it shows them.

    Attributes:
        kinds: The endpoint kinds (an endpoint of another kind is a 404 here).
        noun: What the API calls one, for messages (``webhook endpoint``).
        missing: The error code of a 404 (``unknown_endpoint``).
        view: The endpoint as the API shows it (never a secret).
        fixed: Fields a ``PATCH`` cannot change, each with how it changes instead
            (its 422 says so rather than only "unknown field").
    """

    kinds: frozenset[str]
    noun: str
    missing: str
    view: Callable[[Endpoint, float], dict[str, Any]]
    fixed: Mapping[str, str] = field(default_factory=dict)


#: Why ``id`` and ``start`` are not in a patch (both families).
FIXED = {
    "id": "an endpoint's id cannot change (create one with the new id, then delete this one)",
    "start": "start applies only when an endpoint is created (deliver past events with replay)",
}

WEBHOOKS = Family(
    frozenset({"webhook"}),
    "webhook endpoint",
    "unknown_endpoint",
    public_view,
    fixed={
        **FIXED,
        "secret": "the secret is changed with POST /api/webhooks/{id}/rotate-secret "
        "(CLI: eventlog webhooks rotate-secret ID), which lets the old secret sign "
        "for a grace period",
    },
)


# -- helpers --------------------------------------------------------------------------


def json_response(data: Any, status: int = 200) -> Response:
    """``data`` as a JSON response."""
    return Response(msgspec.json.encode(data), status_code=status, media_type="application/json")


async def decode_body(
    request: Request,
    type_: type[Any],
    *,
    required: bool = True,
    refused: Mapping[str, str] | None = None,
) -> Any:
    """The JSON body as ``type_``; msgspec errors become 400s and 422s (a choice's
    422 names what it accepts, one of the ``refused`` fields why:
    :func:`server.validation.decode`).

    A missing body is 400 ``empty_body``, or ``{}`` when not ``required``
    (``rotate-secret``: every field has a default). A change or a replay is
    never made from a body that was not sent.
    """
    body = await request.body()
    if not body.strip():
        if required:
            raise InvalidInput("a JSON body is required", code="empty_body")
        body = b"{}"
    return decode(body, type_, refused=refused)


async def find_endpoint(
    engine: DeliveryEngine, request: Request, family: Family = WEBHOOKS
) -> Endpoint:
    """The endpoint named by the ``{id}`` path parameter, of one of ``family``'s kinds, or 404."""
    endpoint_id = request.path_params["id"]
    scope = scope_of(request)
    endpoint = None
    if scope.sees_all or SEP not in endpoint_id:  # another tenant's id is never found
        endpoint = await engine.store.get_endpoint(scope.stored(endpoint_id))
    if endpoint is None or endpoint.kind not in family.kinds:  # others have their own routes
        raise NotFound(f"no {family.noun} is named {endpoint_id!r}", code=family.missing)
    return endpoint


async def save_endpoint(engine: DeliveryEngine, request: Request, endpoint: Endpoint) -> None:
    """Check the target (SSRF guard: 422) and store the endpoint in the engine."""
    config = webhooks_config(request.app)
    await check_target(endpoint, allow_private=config.allow_private_targets)
    await engine.put_endpoint(endpoint)


def not_config(endpoint: Endpoint) -> None:
    """409 for endpoints declared in the config file (they change there)."""
    if endpoint.origin == "config":
        raise Conflict(
            f"endpoint {endpoint.id!r} is declared in the config file; change it there",
            code="endpoint_in_config",
        )


def shown_view(request: Request, family: Family, endpoint: Endpoint, now: float) -> dict[str, Any]:
    """``family``'s view of an endpoint with its id and stream as the request's key
    sees them (:mod:`server.tenancy`)."""
    view = family.view(endpoint, now)
    scope = scope_of(request)
    view["id"] = scope.shown(endpoint.id)
    view["stream"] = scope.shown(endpoint.stream)
    return view


async def visible_endpoints(
    request: Request, engine: DeliveryEngine, family: Family
) -> list[dict[str, Any]]:
    """The views of ``family``'s endpoints the request's key sees, now."""
    scope = scope_of(request)
    now = time.time()
    return [
        shown_view(request, family, e, now)
        for e in await engine.store.endpoints()
        if e.kind in family.kinds and scope.visible(e.id)
    ]
