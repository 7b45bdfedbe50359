"""The webhook delivery engine in the server: started and stopped by the app's lifespan.

``server/app.py`` calls :func:`start` once the log is open and :func:`stop`
before it closes. The engine knows the ``webhook`` kind and the notification
kinds (``discord``, ``slack``, ``apprise`` from :mod:`consumers.notify`, with
their pacing sender); endpoints declared in the config file
(``[[webhooks.endpoints]]`` and ``[[notifications.targets]]``) are applied at
start-up. Other features that deliver through the same engine add their
target kinds by appending to :data:`EXTENSIONS`.
Route modules get the engine with :func:`engine_of` (503 when webhooks are
off or the lifespan has not run). Metrics: attempts by
endpoint and verdict, attempt latency, finished deliveries by outcome, queue
depth and the age of the oldest pending delivery (refreshed every 5 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request

from consumers.delivery.engine import AttemptHook, DeliveryEngine, TargetKind, ledger_for
from consumers.delivery.model import Endpoint
from consumers.delivery.retry import AttemptResult, Classification
from consumers.delivery.sender import Sender
from consumers.delivery.ssrf import InvalidTarget, UnsafeTarget, check_url
from consumers.notify.apprise import check_apprise_url
from consumers.notify.spec import NotificationsConfig, declared_notify_endpoint, notify_setup
from consumers.webhook import WEBHOOK, SpecError, WebhooksConfig, declared_endpoint
from eventlog.errors import InvalidStreamName, Unavailable

__all__ = [
    "EXTENSIONS",
    "Extension",
    "check_target",
    "engine_of",
    "notifications_config",
    "start",
    "stop",
    "stream_bounds",
    "webhooks_config",
]

logger = logging.getLogger("eventlog.delivery")


def webhooks_config(app: Starlette) -> WebhooksConfig:
    """The ``[webhooks]`` settings of the app's config."""
    config: WebhooksConfig = app.state.config.webhooks
    return config


def notifications_config(app: Starlette) -> NotificationsConfig:
    """The ``[notifications]`` settings of the app's config."""
    config: NotificationsConfig = app.state.config.notifications
    return config


async def check_target(endpoint: Endpoint, *, allow_private: bool) -> None:
    """The SSRF guard for an endpoint's URL (for an Apprise target, the host its
    Apprise URL reaches: :func:`~consumers.notify.apprise.check_apprise_url`).

    Raises:
        InvalidTarget, UnsafeTarget: As :func:`~consumers.delivery.ssrf.check_url`,
            naming the request field ``$.url``.
    """
    try:
        if endpoint.kind == "apprise":
            await check_apprise_url(str(endpoint.options["url"]), allow_private=allow_private)
        else:
            await check_url(endpoint.url, allow_private=allow_private)
    except InvalidTarget as exc:  # UnsafeTarget too
        exc.json_path = "$.url"
        raise


@dataclass(frozen=True)
class Extension:
    """What another feature adds to the server's one delivery engine.

    Attributes:
        kinds: Target kinds by name (see :mod:`consumers.delivery.engine`).
        sender: A sender to use instead of the notifications' pacing sender
            (at most one extension may give one; it must honour
            ``allow_private``, and pace and carry Apprise requests as
            :class:`~consumers.notify.pacing.PacingSender` does, or chat
            targets lose their rate-limit handling).
        on_start: Called once the engine runs (e.g. to apply endpoints
            declared in the config file).
    """

    kinds: dict[str, TargetKind] = field(default_factory=dict)
    sender: Sender | None = None
    on_start: Callable[[Starlette, DeliveryEngine], Awaitable[None]] | None = None


#: Features that deliver through the engine (notifications) register a factory
#: here at import time, e.g. from their route module:
#: ``EXTENSIONS.append(lambda app: Extension(kinds=..., sender=...))``.
EXTENSIONS: list[Callable[[Starlette], Extension]] = []


async def start(app: Starlette) -> None:
    """Start the delivery engine (call after the log started); apply config-declared endpoints."""
    config = webhooks_config(app)
    if not config.enabled:
        return
    log = app.state.log
    extensions = [factory(app) for factory in EXTENSIONS]
    notify = notify_setup(allow_private=config.allow_private_targets)
    kinds: dict[str, TargetKind] = {"webhook": WEBHOOK, **notify.kinds}
    sender: Sender = notify.sender
    for extension in extensions:
        kinds.update(extension.kinds)
        sender = extension.sender or sender
    try:
        store = ledger_for(log, secrets=app.state.secrets)
    except ValueError as exc:
        logger.warning("webhook delivery is off: %s", exc)
        return
    engine = DeliveryEngine(
        log,
        store,
        kinds=kinds,
        sender=sender,
        allow_private=config.allow_private_targets,
        system_stream=config.system_stream,
        on_attempt=_metrics_hook(app),
    )
    await engine.start()
    try:
        await _apply_declared(app, engine)
    except BaseException:
        await engine.close()
        raise
    app.state.webhooks = engine
    for extension in extensions:
        if extension.on_start is not None:
            await extension.on_start(app, engine)
    app.state.webhooks_gauges = asyncio.create_task(_refresh_gauges(app, engine))


async def _apply_declared(app: Starlette, engine: DeliveryEngine) -> None:
    """Create or update the endpoints and targets declared in the config file."""
    config = webhooks_config(app)
    targets = notifications_config(app).targets
    clash = {str(e.id) for e in config.endpoints} & {str(t.id) for t in targets}
    if clash:
        raise RuntimeError(
            f"config file: {sorted(clash)!r} declared both as webhook endpoint and notification"
        )
    declared: list[tuple[str, Endpoint]] = []
    now = time.time()
    families: list[tuple[str, Sequence[Any], Callable[..., Endpoint]]] = [
        ("webhook endpoint", config.endpoints, declared_endpoint),
        ("notification target", targets, declared_notify_endpoint),
    ]
    for what, specs, build in families:
        for spec in specs:
            assert spec.id is not None
            existing = await engine.store.get_endpoint(spec.id)
            head, first = await stream_bounds(engine, spec.stream)
            try:
                endpoint = build(spec, existing, now=now, head=head, first=first)
            except SpecError as exc:
                raise RuntimeError(f"{what} {spec.id!r} in the config file: {exc}") from exc
            declared.append((what, endpoint))
    for what, endpoint in declared:
        try:
            await check_target(endpoint, allow_private=config.allow_private_targets)
        except (InvalidTarget, UnsafeTarget) as exc:
            raise RuntimeError(f"{what} {endpoint.id!r} in the config file: {exc}") from exc
        await engine.put_endpoint(endpoint)


async def stream_bounds(engine: DeliveryEngine, stream: str) -> tuple[int, int]:
    """``(head, first offset)`` of a stream; ``(0, 0)`` when it does not exist yet,
    or cannot (a bad name: the endpoint's own checks then say why)."""
    try:
        first, head = await engine.log.bounds(stream)
    except InvalidStreamName:
        return 0, 0
    return head, first


async def stop(app: Starlette) -> None:
    """Stop the engine: claimed deliveries go back to pending, the ledger is flushed."""
    task: asyncio.Task[None] | None = getattr(app.state, "webhooks_gauges", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    engine: DeliveryEngine | None = getattr(app.state, "webhooks", None)
    if engine is not None:
        app.state.webhooks = None
        await engine.close()


def engine_of(request: Request) -> DeliveryEngine:
    """The running engine, or 503 when webhooks are off or the server is not started."""
    engine: DeliveryEngine | None = getattr(request.app.state, "webhooks", None)
    if engine is None:
        raise Unavailable("webhook delivery is not running", code="webhooks_unavailable")
    return engine


def _metrics_hook(app: Starlette) -> AttemptHook | None:
    metrics = getattr(app.state, "metrics", None)
    if metrics is None:
        return None
    deliveries = metrics.counter(
        "webhook_attempts", "Delivery attempts by endpoint and verdict", ["endpoint", "verdict"]
    )
    latency = metrics.histogram(
        "webhook_attempt_duration_seconds",
        "Seconds per delivery attempt",
        ["endpoint"],
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    )
    outcomes = metrics.counter(
        "webhook_deliveries", "Finished deliveries by endpoint and outcome", ["endpoint", "outcome"]
    )

    def hook(ep: Endpoint, verdict: Classification, result: AttemptResult, status: str) -> None:
        deliveries.labels(ep.id, verdict.verdict).inc()
        latency.labels(ep.id).observe(result.duration)
        if status in ("delivered", "failed"):
            outcomes.labels(ep.id, status).inc()

    return hook


async def _refresh_gauges(app: Starlette, engine: DeliveryEngine) -> None:
    metrics = getattr(app.state, "metrics", None)
    if metrics is None:
        return
    depth = metrics.gauge(
        "webhook_queue_depth",
        "Unfinished deliveries by endpoint and status",
        ["endpoint", "status"],
    )
    oldest = metrics.gauge(
        "webhook_oldest_pending_seconds", "Age of the oldest pending delivery", ["endpoint"]
    )
    while True:
        with contextlib.suppress(Exception):
            counts = await engine.store.counts()
            now = time.time()
            depth.clear()
            oldest.clear()
            for ep in await engine.store.endpoints():
                c = counts.get(ep.id)
                depth.labels(ep.id, "pending").set(0 if c is None else c.pending)
                depth.labels(ep.id, "in_flight").set(0 if c is None else c.in_flight)
                age = 0.0 if c is None or c.oldest_pending is None else now - c.oldest_pending
                oldest.labels(ep.id).set(max(age, 0.0))
        await asyncio.sleep(5.0)
