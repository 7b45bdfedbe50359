"""The per-endpoint routes every family of delivery endpoints shares.

Delete, enable/disable, the delivery list, one delivery with its attempts,
retry, skip and replay. :func:`endpoint_routes` mounts them under a base path
for one :class:`~server.api.endpoint_family.Family`: ``/api/webhooks``
(:mod:`server.api.webhooks`) and ``/api/notifications``
(:mod:`server.api.notifications`). Every route needs the ``admin`` scope when
API keys are configured.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any, Protocol, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from consumers.delivery.engine import DeliveryEngine
from consumers.delivery.model import Attempt, Delivery, Endpoint
from consumers.webhook import SpecError
from eventlog.errors import Conflict, Forbidden, InvalidParameter, InvalidStreamName, NotFound
from server.api.delivery_views import attempt_view, delivery_view
from server.api.endpoint_family import (
    WEBHOOKS,
    Family,
    decode_body,
    find_endpoint,
    json_response,
    not_config,
    save_endpoint,
    shown_view,
    stream_bounds,
)
from server.api.params import non_negative_int
from server.api.webhook_engine import engine_of
from server.auth import require
from server.tenancy import namespace_of, scope_of

__all__ = [
    "ReplayRequest",
    "endpoint_routes",
    "new_endpoint",
    "patch_endpoint",
    "show_endpoint",
]

_STATUSES = ("pending", "in_flight", "delivered", "failed")
P = TypeVar("P")


class _Spec(Protocol):
    @property
    def id(self) -> str | None: ...
    @property
    def stream(self) -> str: ...


S = TypeVar("S", bound=_Spec)


class ReplayRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of ``replay``: ``[from, to)`` by offsets or times, and ``dry_run``."""

    from_offset: int | None = None
    to_offset: int | None = None
    from_time: datetime | None = None
    to_time: datetime | None = None
    dry_run: bool = False


async def show_endpoint(request: Request, family: Family = WEBHOOKS) -> Response:
    """``GET /api/webhooks/{id}``: the endpoint with its delivery counts."""
    require(request, "admin")
    engine = engine_of(request)
    endpoint = await find_endpoint(engine, request, family)
    view = shown_view(request, family, endpoint, time.time())
    counts = (await engine.store.counts()).get(endpoint.id)
    view["pending"] = 0 if counts is None else counts.pending
    view["in_flight"] = 0 if counts is None else counts.in_flight
    return json_response(view)


async def new_endpoint(
    request: Request,
    spec_type: type[S],
    build: Callable[..., Endpoint],
    *,
    named: str,
) -> tuple[S, Endpoint, float]:
    """``POST`` of a new endpoint: decode ``spec_type``, ``build`` it at its stream's head,
    check and save it; the spec, the endpoint and the time.

    An id that any endpoint has already is a 409 (``{named} named 'x' exists``).
    A tenant's endpoint is stored under its tenant's id and stream (:mod:`server.tenancy`).
    """
    require(request, "admin")
    scope = scope_of(request)
    engine = engine_of(request)
    spec: S = await decode_body(request, spec_type)
    try:
        stream = scope.name(spec.stream)
    except InvalidStreamName as exc:  # a field of the spec: 422 like its other fields
        raise SpecError("stream", str(exc)) from None
    stored_id = None if spec.id is None else scope.stored(spec.id)
    if stored_id is not None and await engine.store.get_endpoint(stored_id) is not None:  # any
        raise Conflict(f"{named} named {spec.id!r} exists", code="endpoint_exists")
    now = time.time()
    head, first = await stream_bounds(engine, stream)
    endpoint = build(spec, now=now, head=head, first=first)  # checks the id as given
    endpoint = msgspec.structs.replace(endpoint, id=scope.stored(endpoint.id), stream=stream)
    await save_endpoint(engine, request, endpoint)
    return spec, endpoint, now


async def patch_endpoint(
    request: Request,
    family: Family,
    patch_type: type[P],
    apply: Callable[[Endpoint, P, float], Endpoint],
) -> Response:
    """``PATCH`` of one endpoint: decode ``patch_type``, ``apply`` it, save.

    A changed stream starts the endpoint at that stream's head.
    """
    require(request, "admin")
    engine = engine_of(request)
    endpoint = await find_endpoint(engine, request, family)
    not_config(endpoint)
    patch = await decode_body(request, patch_type, refused=family.fixed)
    now = time.time()
    # The patch applies to the endpoint as its tenant named it (its checks are
    # those of a new endpoint), and the result is stored back in the tenant.
    scope = scope_of(request)
    bare = msgspec.structs.replace(
        endpoint, id=namespace_of(endpoint.id)[1], stream=scope.shown(endpoint.stream)
    )
    updated = apply(bare, patch, now)
    updated = msgspec.structs.replace(updated, id=endpoint.id, stream=scope.name(updated.stream))
    if updated.stream != endpoint.stream:
        head, _ = await stream_bounds(engine, updated.stream)
        updated = msgspec.structs.replace(updated, start_offset=head)
    await save_endpoint(engine, request, updated)
    return json_response(shown_view(request, family, updated, now))


async def delete_endpoint(request: Request, family: Family = WEBHOOKS) -> Response:
    """``DELETE /api/webhooks/{id}``: 204."""
    require(request, "admin")
    engine = engine_of(request)
    endpoint = await find_endpoint(engine, request, family)
    not_config(endpoint)
    await engine.delete_endpoint(endpoint.id)
    return Response(status_code=204)


async def _switch(request: Request, enabled: bool, family: Family) -> Response:
    require(request, "admin")
    engine = engine_of(request)
    endpoint = await find_endpoint(engine, request, family)
    now = time.time()
    updated = msgspec.structs.replace(
        endpoint,
        enabled=enabled,
        disabled_reason=None if enabled else "disabled by an operator",
        failing_since=None if enabled else endpoint.failing_since,
        updated=now,
    )
    await engine.put_endpoint(updated)
    return json_response(shown_view(request, family, updated, now))


async def enable_endpoint(request: Request, family: Family = WEBHOOKS) -> Response:
    """``POST /api/webhooks/{id}/enable``: deliveries resume from the committed offset."""
    return await _switch(request, True, family)


async def disable_endpoint(request: Request, family: Family = WEBHOOKS) -> Response:
    """``POST /api/webhooks/{id}/disable``."""
    return await _switch(request, False, family)


async def list_deliveries(request: Request, family: Family = WEBHOOKS) -> Response:
    """``GET /api/webhooks/{id}/deliveries?status=&from=&limit=``."""
    require(request, "admin")
    engine = engine_of(request)
    endpoint = await find_endpoint(engine, request, family)
    params = request.query_params
    status = params.get("status")
    if status is not None and status not in _STATUSES:
        raise InvalidParameter(f"status must be one of {', '.join(_STATUSES)}")
    start = non_negative_int(params, "from", 0)
    limit = non_negative_int(params, "limit", 100, minimum=1, maximum=1000)
    rows = await engine.store.deliveries(
        endpoint.id,
        status=status,  # type: ignore[arg-type]
        from_seq=start,
        limit=limit,
    )
    head = await _ordered_head(engine, endpoint)
    return json_response(
        {
            "deliveries": [_shown_delivery(request, d, head) for d in rows],
            "next": rows[-1].seq + 1 if len(rows) == limit else None,
        }
    )


async def _delivery_or_404(
    engine: DeliveryEngine, endpoint: Endpoint, delivery_id: str
) -> tuple[Delivery, list[Attempt]]:
    got = await engine.store.delivery(endpoint.id, delivery_id)
    if got is None:
        raise NotFound(
            f"endpoint {endpoint.id!r} has no delivery {delivery_id!r}", code="unknown_delivery"
        )
    return got


async def get_delivery(request: Request, family: Family = WEBHOOKS) -> Response:
    """``GET /api/webhooks/{id}/deliveries/{delivery_id}`` with every attempt."""
    require(request, "admin")
    engine = engine_of(request)
    endpoint = await find_endpoint(engine, request, family)
    delivery, attempts = await _delivery_or_404(
        engine, endpoint, request.path_params["delivery_id"]
    )
    view = _shown_delivery(request, delivery, await _ordered_head(engine, endpoint))
    view["attempt_log"] = [attempt_view(a) for a in attempts]
    return json_response(view)


async def _act(request: Request, action: str, status: int, family: Family) -> Response:
    require(request, "admin")
    engine = engine_of(request)
    endpoint = await find_endpoint(engine, request, family)
    delivery_id = request.path_params["delivery_id"]
    if action == "retry" and not endpoint.allow_replay:
        raise Forbidden(
            f"endpoint {endpoint.id!r} does not allow replay", code="replay_not_allowed"
        )
    delivery = await engine.act(endpoint.id, delivery_id, action)
    if delivery is None:
        await _delivery_or_404(engine, endpoint, delivery_id)
        raise AssertionError("unreachable")
    head = await _ordered_head(engine, endpoint)
    return json_response(_shown_delivery(request, delivery, head), status)


async def retry_delivery(request: Request, family: Family = WEBHOOKS) -> Response:
    """``POST .../deliveries/{delivery_id}/retry``: 202, same ``webhook-id``, fresh attempts."""
    return await _act(request, "retry", 202, family)


async def skip_delivery(request: Request, family: Family = WEBHOOKS) -> Response:
    """``POST .../deliveries/{delivery_id}/skip``: a pending delivery becomes failed."""
    return await _act(request, "skip", 200, family)


async def replay(request: Request, family: Family = WEBHOOKS) -> Response:
    """``POST /api/webhooks/{id}/replay``: 202 scheduled, 200 dry run, 403, 404."""
    require(request, "admin")
    engine = engine_of(request)
    endpoint = await find_endpoint(engine, request, family)
    if not endpoint.allow_replay:
        raise Forbidden(
            f"endpoint {endpoint.id!r} does not allow replay", code="replay_not_allowed"
        )
    body: ReplayRequest = await decode_body(request, ReplayRequest)
    for name in ("from_time", "to_time"):
        value = getattr(body, name)
        if value is not None and value.tzinfo is None:
            raise InvalidParameter(f"{name} needs a timezone", path="$." + name)
    for name in ("from_offset", "to_offset"):
        value = getattr(body, name)
        if value is not None and value < 0:
            raise InvalidParameter(f"{name} must be >= 0", path="$." + name)
    if body.from_offset is not None and body.from_time is not None:
        raise InvalidParameter("give from_offset or from_time, not both")
    if body.to_offset is not None and body.to_time is not None:
        raise InvalidParameter("give to_offset or to_time, not both")
    result = await engine.replay(
        endpoint,
        from_offset=body.from_offset,
        to_offset=body.to_offset,
        from_time=body.from_time,
        to_time=body.to_time,
        dry_run=body.dry_run,
    )
    return json_response(
        {
            "endpoint": scope_of(request).shown(endpoint.id),
            "from_offset": result.from_offset,
            "to_offset": result.to_offset,
            "scanned": result.scanned,
            "matched": result.matched,
            "scheduled": 0 if result.dry_run else result.matched,
            "dry_run": result.dry_run,
        },
        200 if result.dry_run else 202,
    )


async def _ordered_head(engine: DeliveryEngine, endpoint: Endpoint) -> Delivery | None:
    """The first unfinished delivery of an ``ordered`` endpoint (every later one waits
    behind it), else None."""
    if endpoint.ordering != "ordered":
        return None
    firsts = [
        rows[0]
        for status in ("in_flight", "pending")
        if (rows := await engine.store.deliveries(endpoint.id, status=status, limit=1))
    ]
    return min(firsts, key=lambda d: d.seq, default=None)


def _shown_delivery(
    request: Request, delivery: Delivery, head: Delivery | None = None
) -> dict[str, Any]:
    view = delivery_view(delivery, head)
    view["stream"] = scope_of(request).shown(delivery.stream)
    return view


def endpoint_routes(base: str, family: Family) -> list[Route]:
    """The per-endpoint routes under ``base`` (``/api/webhooks``) for one family:
    show, delete, enable, disable, deliveries, one delivery, retry, skip, replay."""
    one = base + "/{id}"
    delivery = one + "/deliveries/{delivery_id}"

    def route(path: str, handler: Callable[..., Any], method: str) -> Route:
        return Route(path, partial(handler, family=family), methods=[method])

    return [
        route(one, show_endpoint, "GET"),
        route(one, delete_endpoint, "DELETE"),
        route(one + "/enable", enable_endpoint, "POST"),
        route(one + "/disable", disable_endpoint, "POST"),
        route(one + "/deliveries", list_deliveries, "GET"),
        route(delivery, get_delivery, "GET"),
        route(delivery + "/retry", retry_delivery, "POST"),
        route(delivery + "/skip", skip_delivery, "POST"),
        route(one + "/replay", replay, "POST"),
    ]
