"""Inbound webhooks: ``POST /ingest/{source}`` and ``/api/ingest/sources``.

``POST /ingest/{source}`` needs no API key: the sender proves itself with its
own signature scheme (see :mod:`server.ingest.verify`). Answers:

* ``202`` ``{"stream", "offset", "id", "duplicate"}``: appended (or, for a
  delivery id seen before, the original offset with ``duplicate: true``);
* ``200`` ``{"challenge"}``: Slack's ``url_verification`` handshake;
* ``400`` ``malformed_payload`` / ``mapping_failed`` (with ``path``);
* ``401`` ``missing_signature`` / ``malformed_signature`` / ``bad_signature`` /
  ``timestamp_out_of_tolerance``;
* ``404`` ``unknown_source``; ``413`` ``payload_too_large``.

Each request to a known source counts in ``eventlog_ingest_requests_total``
by ``source`` and ``outcome`` (``appended``, ``duplicate``, ``challenge``,
or the error code), so a sender with a wrong secret shows on ``/metrics``.

The checks run in that order of cost: the source is looked up before the
body is read, the size limit is enforced while it is read, and the signature
is verified over the raw bytes before anything parses them.

``/api/ingest/sources`` (``admin`` scope when API keys are configured):
``GET`` lists, ``POST`` creates (``409`` if the name exists), and
``GET|PUT|DELETE /api/ingest/sources/{name}`` read, create-or-replace and
delete one. Secrets are never returned. Sources from the config file are
listed with ``"origin": "config"`` and cannot be changed through the API
(``409``).
"""

from __future__ import annotations

import re
import time
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from eventlog import EventLog
from eventlog.errors import (
    Conflict,
    EventLogError,
    InvalidField,
    InvalidInput,
    InvalidStreamName,
    NotFound,
)
from server.auth import require
from server.config import ServerConfig
from server.ingest.mapping import MappingError
from server.ingest.pipeline import Challenge, MalformedBody, prepare
from server.ingest.sources import CompiledSource, Source, redacted
from server.ingest.store import SourceRegistry
from server.ingest.verify import SignatureError
from server.quotas import quotas_of
from server.secrets import sealed_source_store
from server.tenancy import TenantScope, namespace_of, scope_of

__all__ = ["registry_of", "routes"]

_FIELD = re.compile(r"([A-Za-z_][\w.\[\]-]*): ")


async def registry_of(app: Starlette) -> SourceRegistry:
    """The app's source registry, made on first use from its config and log."""
    registry: SourceRegistry | None = getattr(app.state, "ingest_sources", None)
    if registry is None:  # no await between the check and the set: no race
        config: ServerConfig = app.state.config
        log: EventLog = app.state.log
        registry = SourceRegistry(
            config.ingest.sources, sealed_source_store(log, app.state.secrets)
        )
        app.state.ingest_sources = registry
    return registry


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise InvalidInput(
            f"the body is over this source's {limit} bytes", code="payload_too_large"
        )
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise InvalidInput(
                    f"the body is over this source's {limit} bytes", code="payload_too_large"
                )
            chunks.append(chunk)
    except ClientDisconnect as exc:
        raise InvalidInput("the client went away mid-body", code="client_disconnected") from exc
    return b"".join(chunks)


def _count(request: Request, source: str, outcome: str) -> None:
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.counter(
            "ingest_requests",
            "Inbound webhook requests by source and outcome",
            ["source", "outcome"],
        ).labels(source, outcome).inc()


async def ingest(request: Request) -> Response:
    """Verify, map and append one inbound webhook."""
    name = request.path_params["source"]
    registry = await registry_of(request.app)
    source = await registry.get(name)
    if source is None:
        raise NotFound(f"no ingest source is named {name!r}", code="unknown_source")
    config: ServerConfig = request.app.state.config
    try:
        body = await _read_body(request, min(source.spec.max_body_bytes, config.max_body_bytes))
    except EventLogError as exc:
        _count(request, name, exc.code)
        raise
    correlation = getattr(request.state, "correlation_id", None)
    try:
        outcome = prepare(
            source,
            request.headers,
            body,
            now=time.time(),
            extra_headers={"correlation-id": correlation} if correlation else None,
        )
    except (SignatureError, MalformedBody, MappingError) as exc:
        _count(request, name, exc.code)
        raise
    if isinstance(outcome, Challenge):
        _count(request, name, "challenge")
        return JSONResponse({"challenge": outcome.challenge})
    tenant = namespace_of(source.name)[0]
    if tenant is not None:  # a tenant's source counts against its quotas
        await quotas_of(request).admit_append(tenant, 1, len(body))
    log: EventLog = request.app.state.log
    result = await log.append_batch_result(source.spec.stream, [outcome])
    duplicate = result.written == 0
    _count(request, name, "duplicate" if duplicate else "appended")
    return JSONResponse(
        {
            "stream": source.spec.stream,
            "offset": result.offsets[0],
            "id": outcome.id,
            "duplicate": duplicate,
        },
        status_code=202,
    )


def _view(source: CompiledSource, scope: TenantScope) -> dict[str, Any]:
    view = redacted(source.spec)
    view["name"] = scope.shown(source.spec.name)
    view["stream"] = scope.shown(source.spec.stream)
    view["origin"] = source.origin
    view["url"] = f"/ingest/{source.name}"  # the stored name: senders carry no key
    return view


async def _decode_source(request: Request, name: str | None) -> Source:
    """The body's source with its name and stream stored in the key's tenant."""
    scope = scope_of(request)
    source = await _decode_given(request, name)
    return msgspec.structs.replace(
        source, name=scope.name(source.name), stream=scope.name(source.stream)
    )


async def _decode_given(request: Request, name: str | None) -> Source:
    body = await request.body()
    raw = msgspec.json.decode(body)
    if not isinstance(raw, dict):
        raise InvalidField("a source is a JSON object", path="$")
    if name is not None:
        given = raw.setdefault("name", name)
        if given != name:
            raise InvalidField(f"the body names {given!r}, the URL {name!r}", path="$.name")
    try:
        return msgspec.convert(raw, Source)
    except msgspec.ValidationError as exc:
        # Semantic checks (Source.__post_init__) say "<field>: <message>".
        match = _FIELD.match(str(exc))
        if match is None or " - at `" in str(exc):
            raise
        raise InvalidInput(str(exc), code="invalid_source", path="$." + match.group(1)) from exc


async def list_sources(request: Request) -> Response:
    """``GET /api/ingest/sources``."""
    require(request, "admin")
    scope = scope_of(request)
    registry = await registry_of(request.app)
    sources = [_view(s, scope) for s in await registry.all() if scope.visible(s.name)]
    return JSONResponse({"sources": sources})


async def create_source(request: Request) -> Response:
    """``POST /api/ingest/sources``: create; 409 if the name is taken."""
    require(request, "admin")
    spec = await _decode_source(request, None)
    registry = await registry_of(request.app)
    if await registry.get(spec.name) is not None:
        shown = scope_of(request).shown(spec.name)
        raise Conflict(f"an ingest source named {shown!r} exists", code="source_exists")
    return await _put(request, registry, spec)


async def _put(request: Request, registry: SourceRegistry, spec: Source) -> Response:
    compiled, created = await registry.put(spec)
    return JSONResponse(_view(compiled, scope_of(request)), status_code=201 if created else 200)


def _stored(request: Request, given: str) -> str:
    """The stored name of a source the path names; a name no source can have is not found."""
    try:
        return scope_of(request).name(given)
    except InvalidStreamName:
        raise NotFound(f"no ingest source is named {given!r}", code="unknown_source") from None


async def get_source(request: Request) -> Response:
    """``GET /api/ingest/sources/{name}``."""
    require(request, "admin")
    given = request.path_params["name"]
    source = await (await registry_of(request.app)).get(_stored(request, given))
    if source is None:
        raise NotFound(f"no ingest source is named {given!r}", code="unknown_source")
    return JSONResponse(_view(source, scope_of(request)))


async def put_source(request: Request) -> Response:
    """``PUT /api/ingest/sources/{name}``: create (201) or replace (200)."""
    require(request, "admin")
    spec = await _decode_source(request, request.path_params["name"])
    return await _put(request, await registry_of(request.app), spec)


async def delete_source(request: Request) -> Response:
    """``DELETE /api/ingest/sources/{name}``: 204, or 404."""
    require(request, "admin")
    given = request.path_params["name"]
    deleted = await (await registry_of(request.app)).delete(_stored(request, given))
    if not deleted:
        raise NotFound(f"no ingest source is named {given!r}", code="unknown_source")
    return Response(status_code=204)


routes = [
    Route("/ingest/{source}", ingest, methods=["POST"]),
    Route("/api/ingest/sources", list_sources, methods=["GET"]),
    Route("/api/ingest/sources", create_source, methods=["POST"]),
    Route("/api/ingest/sources/{name}", get_source, methods=["GET"]),
    Route("/api/ingest/sources/{name}", put_source, methods=["PUT"]),
    Route("/api/ingest/sources/{name}", delete_source, methods=["DELETE"]),
]
