"""``/api/webhooks``: endpoints, their deliveries, retry and replay; and the engine's life cycle.

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

The engine itself is started and stopped by :mod:`server.api.webhook_engine`.
The per-endpoint routes (delete, enable/disable, deliveries, retry, skip,
replay) serve other families of endpoints of the same engine too:
:func:`endpoint_routes` mounts them for notification targets under
``/api/notifications`` (:mod:`server.api.notifications`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from consumers.delivery.engine import DeliveryEngine
from consumers.delivery.ledger import DeliveryConflict
from consumers.delivery.model import Attempt, Delivery, Endpoint
from consumers.delivery.ssrf import InvalidTarget, UnsafeTarget
from consumers.webhook import (
    EndpointPatch,
    EndpointSpec,
    SpecError,
    apply_patch,
    build_endpoint,
    public_view,
    rotate_secret,
)
from server.api.params import non_negative_int
from server.api.webhook_engine import check_target, engine_of, webhooks_config
from server.auth import require
from server.errors import ApiError

__all__ = ["WEBHOOKS", "Family", "attempt_view", "delivery_view", "endpoint_routes", "routes"]

_STATUSES = ("pending", "in_flight", "delivered", "failed")


class RotateRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of ``rotate-secret``: an optional new secret and the old ones' grace period."""

    secret: str | None = None
    grace: float = 86400.0


class ReplayRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of ``replay``: ``[from, to)`` by offsets or times, and ``dry_run``."""

    from_offset: int | None = None
    to_offset: int | None = None
    from_time: datetime | None = None
    to_time: datetime | None = None
    dry_run: bool = False


@dataclass(frozen=True)
class Family:
    """Which of the engine's endpoints a set of routes manages, and how it shows them.

    Attributes:
        kinds: The endpoint kinds (an endpoint of another kind is a 404 here).
        noun: What the API calls one, for messages (``webhook endpoint``).
        missing: The error code of a 404 (``unknown_endpoint``).
        view: The endpoint as the API shows it (never a secret).
    """

    kinds: frozenset[str]
    noun: str
    missing: str
    view: Callable[[Endpoint, float], dict[str, Any]]


WEBHOOKS = Family(frozenset({"webhook"}), "webhook endpoint", "unknown_endpoint", public_view)


# -- helpers --------------------------------------------------------------------------


async def stream_bounds(engine: DeliveryEngine, stream: str) -> tuple[int, int]:
    """``(head, first offset)`` of a stream; ``(0, 0)`` when it does not exist yet."""
    info = await engine.log.storage.stream_info(stream)
    return (0, 0) if info is None else (info.next_offset, info.first_offset)


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def delivery_view(d: Delivery) -> dict[str, Any]:
    """A delivery as the API shows it."""
    return {
        "id": d.id,
        "seq": d.seq,
        "status": d.status,
        "stream": d.stream,
        "offset": d.offset,
        "event_id": d.event_id,
        "event_type": d.event_type,
        "key": d.key,
        "attempts": d.attempts,
        "rate_limited": d.rate_limited,
        "next_attempt_at": _iso(d.next_attempt_at) if d.status == "pending" else None,
        "last_status": d.last_status,
        "last_error": d.last_error,
        "replay": d.replay,
        "created": _iso(d.created),
        "updated": _iso(d.updated),
    }


def attempt_view(a: Attempt) -> dict[str, Any]:
    """An attempt as the API shows it (the response snippet is already redacted)."""
    return {
        "number": a.number,
        "time": _iso(a.started),
        "duration_ms": round(a.duration * 1000, 3),
        "status": a.status,
        "verdict": a.verdict,
        "error": a.error,
        "response": a.response,
    }


def json_response(data: Any, status: int = 200) -> Response:
    """``data`` as a JSON response."""
    return Response(msgspec.json.encode(data), status_code=status, media_type="application/json")


async def decode_body(request: Request, type_: type[Any]) -> Any:
    """The JSON body as ``type_`` (an empty body is ``{}``); msgspec errors become 400s."""
    body = await request.body()
    if not body.strip():
        body = b"{}"
    return msgspec.json.decode(body, type=type_)


async def find_endpoint(
    engine: DeliveryEngine, request: Request, family: Family = WEBHOOKS
) -> Endpoint:
    """The endpoint named by the ``{id}`` path parameter, of one of ``family``'s kinds, or 404."""
    endpoint_id = request.path_params["id"]
    endpoint = await engine.store.get_endpoint(endpoint_id)
    if endpoint is None or endpoint.kind not in family.kinds:  # others have their own routes
        raise ApiError(404, family.missing, f"no {family.noun} is named {endpoint_id!r}")
    return endpoint


async def save_endpoint(engine: DeliveryEngine, request: Request, endpoint: Endpoint) -> None:
    """Check the target (SSRF guard: 422) and store the endpoint in the engine."""
    config = webhooks_config(request.app)
    try:
        await check_target(endpoint, allow_private=config.allow_private_targets)
    except UnsafeTarget as exc:
        raise ApiError(422, "unsafe_target", str(exc), path="$.url") from exc
    except InvalidTarget as exc:
        raise ApiError(422, "invalid_url", str(exc), path="$.url") from exc
    try:
        await engine.put_endpoint(endpoint)
    except ValueError as exc:
        raise ApiError(422, "invalid_endpoint", str(exc)) from exc


def spec_error(exc: SpecError) -> ApiError:
    """A 422 naming the invalid field."""
    return ApiError(422, "invalid_endpoint", f"{exc.path}: {exc}", path="$." + exc.path)


def not_config(endpoint: Endpoint) -> None:
    """409 for endpoints declared in the config file (they change there)."""
    if endpoint.origin == "config":
        raise ApiError(
            409,
            "endpoint_in_config",
            f"endpoint {endpoint.id!r} is declared in the config file; change it there",
        )


# -- routes ---------------------------------------------------------------------------


async def list_endpoints(request: Request) -> Response:
    """``GET /api/webhooks``."""
    require(request, "admin")
    engine = engine_of(request)
    now = time.time()
    endpoints = [e for e in await engine.store.endpoints() if e.kind == "webhook"]
    return json_response({"webhooks": [public_view(e, now) for e in endpoints]})


async def create_endpoint(request: Request) -> Response:
    """``POST /api/webhooks``: 201 with the endpoint (and a generated secret, once)."""
    require(request, "admin")
    engine = engine_of(request)
    spec: EndpointSpec = await decode_body(request, EndpointSpec)
    if spec.id is not None and await engine.store.get_endpoint(spec.id) is not None:  # any kind
        raise ApiError(409, "endpoint_exists", f"a webhook endpoint named {spec.id!r} exists")
    now = time.time()
    head, first = await stream_bounds(engine, spec.stream)
    try:
        endpoint = build_endpoint(spec, now=now, head=head, first=first)
    except SpecError as exc:
        raise spec_error(exc) from exc
    await save_endpoint(engine, request, endpoint)
    view = public_view(endpoint, now)
    if spec.secret is None:
        view["secret"] = endpoint.secrets[0].secret
    return json_response(view, 201)


async def get_endpoint(request: Request) -> Response:
    """``GET /api/webhooks/{id}`` with delivery counts."""
    require(request, "admin")
    engine = engine_of(request)
    endpoint = await find_endpoint(engine, request)
    view = public_view(endpoint, time.time())
    counts = (await engine.store.counts()).get(endpoint.id)
    view["pending"] = 0 if counts is None else counts.pending
    view["in_flight"] = 0 if counts is None else counts.in_flight
    return json_response(view)


async def patch_endpoint(request: Request) -> Response:
    """``PATCH /api/webhooks/{id}``."""
    require(request, "admin")
    engine = engine_of(request)
    endpoint = await find_endpoint(engine, request)
    not_config(endpoint)
    patch: EndpointPatch = await decode_body(request, EndpointPatch)
    now = time.time()
    try:
        updated = apply_patch(endpoint, patch, now=now)
    except SpecError as exc:
        raise spec_error(exc) from exc
    if updated.stream != endpoint.stream:
        head, _ = await stream_bounds(engine, updated.stream)
        updated = msgspec.structs.replace(updated, start_offset=head)
    await save_endpoint(engine, request, updated)
    return json_response(public_view(updated, now))


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
    return json_response(family.view(updated, now))


async def enable_endpoint(request: Request, family: Family = WEBHOOKS) -> Response:
    """``POST /api/webhooks/{id}/enable``: deliveries resume from the committed offset."""
    return await _switch(request, True, family)


async def disable_endpoint(request: Request, family: Family = WEBHOOKS) -> Response:
    """``POST /api/webhooks/{id}/disable``."""
    return await _switch(request, False, family)


async def rotate(request: Request) -> Response:
    """``POST /api/webhooks/{id}/rotate-secret``."""
    require(request, "admin")
    engine = engine_of(request)
    endpoint = await find_endpoint(engine, request)
    body: RotateRequest = await decode_body(request, RotateRequest)
    now = time.time()
    try:
        updated, secret = rotate_secret(endpoint, now=now, secret=body.secret, grace=body.grace)
    except SpecError as exc:
        raise spec_error(exc) from exc
    await engine.put_endpoint(updated)
    view = public_view(updated, now)
    if body.secret is None:
        view["secret"] = secret
    return json_response(view)


async def list_deliveries(request: Request, family: Family = WEBHOOKS) -> Response:
    """``GET /api/webhooks/{id}/deliveries?status=&from=&limit=``."""
    require(request, "admin")
    engine = engine_of(request)
    endpoint = await find_endpoint(engine, request, family)
    params = request.query_params
    status = params.get("status")
    if status is not None and status not in _STATUSES:
        raise ApiError(400, "invalid_parameter", f"status must be one of {', '.join(_STATUSES)}")
    start = non_negative_int(params, "from", 0)
    limit = non_negative_int(params, "limit", 100, maximum=1000)
    if limit < 1:
        raise ApiError(400, "invalid_parameter", "limit must be from 1 to 1000")
    rows = await engine.store.deliveries(
        endpoint.id,
        status=status,  # type: ignore[arg-type]
        from_seq=start,
        limit=limit,
    )
    return json_response(
        {
            "deliveries": [delivery_view(d) for d in rows],
            "next": rows[-1].seq + 1 if len(rows) == limit else None,
        }
    )


async def _delivery_or_404(
    engine: DeliveryEngine, endpoint: Endpoint, delivery_id: str
) -> tuple[Delivery, list[Attempt]]:
    got = await engine.store.delivery(endpoint.id, delivery_id)
    if got is None:
        raise ApiError(
            404, "unknown_delivery", f"endpoint {endpoint.id!r} has no delivery {delivery_id!r}"
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
    view = delivery_view(delivery)
    view["attempt_log"] = [attempt_view(a) for a in attempts]
    return json_response(view)


async def _act(request: Request, action: str, status: int, family: Family) -> Response:
    require(request, "admin")
    engine = engine_of(request)
    endpoint = await find_endpoint(engine, request, family)
    delivery_id = request.path_params["delivery_id"]
    if action == "retry" and not endpoint.allow_replay:
        raise ApiError(403, "replay_not_allowed", f"endpoint {endpoint.id!r} does not allow replay")
    try:
        delivery = await engine.act(endpoint.id, delivery_id, action)
    except DeliveryConflict as exc:
        raise ApiError(409, "delivery_conflict", str(exc)) from exc
    if delivery is None:
        await _delivery_or_404(engine, endpoint, delivery_id)
        raise AssertionError("unreachable")
    return json_response(delivery_view(delivery), status)


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
        raise ApiError(403, "replay_not_allowed", f"endpoint {endpoint.id!r} does not allow replay")
    body: ReplayRequest = await decode_body(request, ReplayRequest)
    for name in ("from_time", "to_time"):
        value = getattr(body, name)
        if value is not None and value.tzinfo is None:
            raise ApiError(400, "invalid_parameter", f"{name} needs a timezone", path="$." + name)
    for name in ("from_offset", "to_offset"):
        value = getattr(body, name)
        if value is not None and value < 0:
            raise ApiError(400, "invalid_parameter", f"{name} must be >= 0", path="$." + name)
    if body.from_offset is not None and body.from_time is not None:
        raise ApiError(400, "invalid_parameter", "give from_offset or from_time, not both")
    if body.to_offset is not None and body.to_time is not None:
        raise ApiError(400, "invalid_parameter", "give to_offset or to_time, not both")
    try:
        result = await engine.replay(
            endpoint,
            from_offset=body.from_offset,
            to_offset=body.to_offset,
            from_time=body.from_time,
            to_time=body.to_time,
            dry_run=body.dry_run,
        )
    except ValueError as exc:
        raise ApiError(400, "invalid_range", str(exc)) from exc
    return json_response(
        {
            "endpoint": endpoint.id,
            "from_offset": result.from_offset,
            "to_offset": result.to_offset,
            "scanned": result.scanned,
            "matched": result.matched,
            "scheduled": 0 if result.dry_run else result.matched,
            "dry_run": result.dry_run,
        },
        200 if result.dry_run else 202,
    )


def endpoint_routes(base: str, family: Family) -> list[Route]:
    """The per-endpoint routes under ``base`` (``/api/webhooks``) for one family:
    delete, enable, disable, deliveries, one delivery, retry, skip, replay."""
    one = base + "/{id}"
    delivery = one + "/deliveries/{delivery_id}"

    def route(path: str, handler: Callable[..., Any], method: str) -> Route:
        return Route(path, partial(handler, family=family), methods=[method])

    return [
        route(one, delete_endpoint, "DELETE"),
        route(one + "/enable", enable_endpoint, "POST"),
        route(one + "/disable", disable_endpoint, "POST"),
        route(one + "/deliveries", list_deliveries, "GET"),
        route(delivery, get_delivery, "GET"),
        route(delivery + "/retry", retry_delivery, "POST"),
        route(delivery + "/skip", skip_delivery, "POST"),
        route(one + "/replay", replay, "POST"),
    ]


_BASE = "/api/webhooks"
_ONE = _BASE + "/{id}"

routes = [
    Route(_BASE, list_endpoints, methods=["GET"]),
    Route(_BASE, create_endpoint, methods=["POST"]),
    Route(_ONE, get_endpoint, methods=["GET"]),
    Route(_ONE, patch_endpoint, methods=["PATCH"]),
    Route(_ONE + "/rotate-secret", rotate, methods=["POST"]),
    *endpoint_routes(_BASE, WEBHOOKS),
]
