"""Shared consumer routes (the contract: docs/consumers.md).

* ``PUT /api/consumers/{name}/shared`` (admin) — declare or change; 200 ``SharedConsumerInfo``.
* ``GET /api/consumers/{name}/shared`` (read) — the spec and its state.
* ``DELETE /api/consumers/{name}/shared`` (admin) — 204.
* ``POST /api/consumers/{name}/claim`` — ``{"worker", "max", "wait"}`` → ``{"claims": [...]}``,
  long-polling up to ``wait`` seconds (capped by the server's ``max_wait``) without holding a
  database connection.
* ``POST /api/consumers/{name}/ack``, ``.../nack`` (with ``delay``), ``.../in-progress`` —
  ``{"worker", "claims": [ids]}``; all or none.

Names go through the one tenant scoping step (:func:`server.tenancy.scope_of`): a tenant's
``mailer`` on ``mail`` is stored as ``<tenant>~mailer`` on ``<tenant>~mail`` and shown as given.
The work routes need ``read`` on the consumer's stream (claims hand its events out). Errors
are the tree's (:mod:`consumers.shared.errors`): a malformed claim/ack body is 422
``invalid_parameter`` naming the field, a bad nack delay 422 ``invalid_delay``.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, TypeVar

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from consumers.shared import (
    Claim,
    ConsumerConflict,
    ConsumerInConfig,
    InvalidDelay,
    SharedConsumer,
    SharedConsumerInfo,
    SharedConsumers,
    SharedSpec,
)
from consumers.shared.model import MAX_CLAIMS, MAX_WAIT
from consumers.shared.rules import MAX_DELAY
from eventlog.errors import InvalidField, InvalidInput
from server.api.append_body import media_type
from server.api.openapi_parts import AUTH, NAME, errors, json_body, ref
from server.api.streams import json_response
from server.auth import require
from server.quotas import quotas_of
from server.tenancy import scope_of
from server.validation import explained

__all__ = [
    "ClaimList",
    "ClaimRequest",
    "NackRequest",
    "SettleRequest",
    "close_shared_consumers",
    "openapi_paths",
    "routes",
    "shared_consumers",
]

T = TypeVar("T")

Worker = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
ClaimIds = Annotated[list[str], msgspec.Meta(max_length=MAX_CLAIMS)]


class ClaimRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of ``POST /api/consumers/{name}/claim``."""

    worker: Worker
    max: Annotated[int, msgspec.Meta(ge=1, le=MAX_CLAIMS)] = 10
    wait: Annotated[float, msgspec.Meta(ge=0, le=MAX_WAIT)] = 0.0


class SettleRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of ``POST /api/consumers/{name}/ack`` and ``.../in-progress``."""

    worker: Worker
    claims: ClaimIds


class NackRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of ``POST /api/consumers/{name}/nack``: ``delay`` seconds before redelivery."""

    worker: Worker
    claims: ClaimIds
    delay: Annotated[
        Any,
        msgspec.Meta(extra_json_schema={"type": "number", "minimum": 0, "maximum": MAX_DELAY}),
    ] = 0.0


class ClaimList(msgspec.Struct, kw_only=True):
    """The claims handed out (empty when none came within ``wait``)."""

    claims: list[Claim]


class Acked(msgspec.Struct, kw_only=True):
    acked: int


class Nacked(msgspec.Struct, kw_only=True):
    nacked: int


class Extended(msgspec.Struct, kw_only=True):
    expires: datetime


_spec = msgspec.json.Decoder(SharedSpec)
_claim = msgspec.json.Decoder(ClaimRequest)
_settle = msgspec.json.Decoder(SettleRequest)
_nack = msgspec.json.Decoder(NackRequest)


async def shared_consumers(app: Starlette) -> SharedConsumers:
    """The app's shared consumers (made on first use, on the webhook engine's ledger if any)."""
    state = app.state
    shared: SharedConsumers | None = getattr(state, "shared", None)
    if shared is None:
        lock: asyncio.Lock | None = getattr(state, "shared_lock", None)
        if lock is None:  # one per app: apps of other event loops may share this module
            lock = state.shared_lock = asyncio.Lock()
        async with lock:
            shared = getattr(state, "shared", None)
            if shared is None:
                engine = getattr(state, "webhooks", None)
                shared = SharedConsumers(
                    state.log,
                    None if engine is None else engine.store,
                    closing=state.stopping,
                    keep_history=state.config.webhooks.keep_history,
                )
                await shared.open()
                state.shared = shared
    return shared


def close_shared_consumers(app: Starlette) -> None:
    """End the app's shared consumers' long-polls and pruning (shutdown), if any were made."""
    shared: SharedConsumers | None = getattr(app.state, "shared", None)
    if shared is not None:
        shared.close()


def _name(request: Request) -> str:
    """The consumer's stored name (in the key's tenant namespace, :mod:`server.tenancy`)."""
    return scope_of(request).name(request.path_params["name"])


def _shown(request: Request, info: SharedConsumerInfo) -> SharedConsumerInfo:
    scope = scope_of(request)
    return msgspec.structs.replace(
        info, name=scope.shown(info.name), stream=scope.shown(info.stream)
    )


async def _body(request: Request, decoder: msgspec.json.Decoder[Any], *, work: bool) -> Any:
    if media_type(request.headers.get("content-type")) != "application/json":
        raise InvalidInput("send the body as application/json", code="unsupported_media_type")
    try:
        return decoder.decode(await request.body())
    except msgspec.ValidationError as exc:
        text = explained(exc, decoder.type)
        if not work:
            raise msgspec.ValidationError(text) from None
        path = text.rsplit(" - at `", 1)[-1].rstrip("`") if " - at `" in text else "$"
        raise InvalidField(text, code="invalid_parameter", path=path) from None


def _check_not_in_config(request: Request, name: str) -> None:
    """Consumers declared in the config file are changed there (as webhooks are)."""
    if name in getattr(request.app.state, "shared_in_config", ()):
        raise ConsumerInConfig(
            f"shared consumer {scope_of(request).shown(name)!r} is declared in the config "
            "file; change it there"
        )


async def _consumer(request: Request) -> SharedConsumer:
    consumer = await (await shared_consumers(request.app)).get(_name(request))
    require(request, "read", scope_of(request).shown(consumer.spec.stream))
    return consumer


async def declare(request: Request) -> Response:
    """Declare a shared consumer or change it (admin)."""
    name = _name(request)
    require(request, "admin")
    spec: SharedSpec = await _body(request, _spec, work=False)
    spec = msgspec.structs.replace(spec, stream=scope_of(request).name(spec.stream))
    _check_not_in_config(request, name)
    manager = getattr(request.app.state, "consumer_manager", None)
    if manager is not None and manager.get_status(name) is not None:
        raise ConsumerConflict(
            f"consumer {scope_of(request).shown(name)!r} runs a handler in this server; "
            "give the shared consumer a name of its own"
        )
    consumer = await (await shared_consumers(request.app)).declare(name, spec)
    return json_response(_shown(request, await consumer.info()))


async def show(request: Request) -> Response:
    """A shared consumer's spec and state."""
    return json_response(_shown(request, await (await _consumer(request)).info()))


async def delete(request: Request) -> Response:
    """Delete a shared consumer and its claims (admin)."""
    name = _name(request)
    require(request, "admin")
    shared = await shared_consumers(request.app)
    await shared.get(name)  # 404 / 409 as for every route here
    _check_not_in_config(request, name)
    await shared.delete(name)
    return Response(status_code=204)


async def claim(request: Request) -> Response:
    """Claim events for a worker, long-polling up to ``wait`` seconds."""
    consumer = await _consumer(request)
    body: ClaimRequest = await _body(request, _claim, work=True)
    wait = min(body.wait, request.app.state.config.max_wait)
    scope = scope_of(request)
    if wait > 0:  # a long-poll holds one of the tenant's connections (server/quotas.py)
        with quotas_of(request).connection(scope.tenant):
            claims = await _claim_while_connected(request, consumer, body, wait)
    else:
        claims = await consumer.claim(body.worker, body.max, wait)
    if not scope.sees_all and scope.tenant is not None:
        claims = [
            msgspec.structs.replace(c, stream=scope.shown(c.stream), event=scope.event(c.event))
            for c in claims
        ]
    return json_response(ClaimList(claims=claims))


async def _claim_while_connected(
    request: Request, consumer: SharedConsumer, body: ClaimRequest, wait: float
) -> list[Claim]:
    """Long-poll a claim while the client waits for the answer.

    A claim made for a client that has hung up would sit with nobody until its
    ``ack_wait`` ran out, so the poll ends when the client leaves, and claims
    made as it left are given back (nacked with no delay).
    """

    async def left() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watch = asyncio.ensure_future(left())
    claiming = asyncio.ensure_future(consumer.claim(body.worker, body.max, wait))
    try:
        await asyncio.wait((watch, claiming), return_when=asyncio.FIRST_COMPLETED)
        if not (watch.done() and watch.exception() is None):
            return await claiming
        claiming.cancel()  # a no-op when the claim came in as the client left
        claims = (await asyncio.gather(claiming, return_exceptions=True))[0]
        if isinstance(claims, list) and claims:
            await consumer.nack(body.worker, [c.id for c in claims], 0.0)
        return []
    finally:
        for task in (watch, claiming):
            task.cancel()
        await asyncio.gather(watch, claiming, return_exceptions=True)


async def ack(request: Request) -> Response:
    """Ack claims (all or none)."""
    consumer = await _consumer(request)
    body: SettleRequest = await _body(request, _settle, work=True)
    return json_response(Acked(acked=await consumer.ack(body.worker, body.claims)))


async def nack(request: Request) -> Response:
    """Give claims back, to be handed out again after ``delay`` seconds (all or none)."""
    consumer = await _consumer(request)
    try:
        body: NackRequest = await _body(request, _nack, work=True)
    except InvalidField as exc:
        if exc.json_path == "$.delay":
            raise InvalidDelay(str(exc), path="$.delay") from None
        raise
    n = await consumer.nack(body.worker, body.claims, body.delay)
    return json_response(Nacked(nacked=n))


async def in_progress(request: Request) -> Response:
    """Extend claims by the consumer's ``ack_wait`` (all or none)."""
    consumer = await _consumer(request)
    body: SettleRequest = await _body(request, _settle, work=True)
    return json_response(Extended(expires=await consumer.in_progress(body.worker, body.claims)))


routes = [
    Route("/api/consumers/{name}/shared", declare, methods=["PUT"]),
    Route("/api/consumers/{name}/shared", show, methods=["GET"]),
    Route("/api/consumers/{name}/shared", delete, methods=["DELETE"]),
    Route("/api/consumers/{name}/claim", claim, methods=["POST"]),
    Route("/api/consumers/{name}/ack", ack, methods=["POST"]),
    Route("/api/consumers/{name}/nack", nack, methods=["POST"]),
    Route("/api/consumers/{name}/in-progress", in_progress, methods=["POST"]),
]

#: The structs whose schemas the OpenAPI document lists.
STRUCTS: list[type[msgspec.Struct]] = [
    SharedSpec,
    SharedConsumerInfo,
    ClaimRequest,
    SettleRequest,
    NackRequest,
    ClaimList,
    Acked,
    Nacked,
    Extended,
]


def _post(summary: str, body: str, answer: str, *statuses: int) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "parameters": [NAME],
            "requestBody": {"required": True, "content": json_body(ref(body))},
            "responses": {
                "200": {"description": answer, "content": json_body(ref(answer))},
                **errors(400, *AUTH, 404, 409, 415, 422, *statuses),
            },
        }
    }


def openapi_paths() -> dict[str, Any]:
    """The OpenAPI path items of these routes."""
    info = {"description": "The consumer", "content": json_body(ref("SharedConsumerInfo"))}
    base = "/api/consumers/{name}"
    return {
        f"{base}/shared": {
            "put": {
                "summary": "Declare or change a shared consumer (admin)",
                "parameters": [NAME],
                "requestBody": {"required": True, "content": json_body(ref("SharedSpec"))},
                "responses": {"200": info, **errors(400, *AUTH, 409, 415, 422)},
            },
            "get": {
                "summary": "A shared consumer: spec, ack floor, pending/claimed/parked counts",
                "parameters": [NAME],
                "responses": {"200": info, **errors(400, *AUTH, 404, 409)},
            },
            "delete": {
                "summary": "Delete a shared consumer and its claims (admin)",
                "parameters": [NAME],
                "responses": {"204": {"description": "Deleted"}, **errors(400, *AUTH, 404, 409)},
            },
        },
        f"{base}/claim": _post(
            "Claim events for a worker (long-poll)", "ClaimRequest", "ClaimList"
        ),
        f"{base}/ack": _post("Ack claims (all or none)", "SettleRequest", "Acked"),
        f"{base}/nack": _post("Give claims back, after a delay", "NackRequest", "Nacked"),
        f"{base}/in-progress": _post("Extend claims by ack_wait", "SettleRequest", "Extended"),
    }
