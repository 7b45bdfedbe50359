"""The webhook delivery engine in the server: started and stopped by the app's lifespan.

``server/app.py`` calls :func:`start` once the log is open and :func:`stop`
before it closes; the engine is assembled, with the endpoints declared in the
config file, by :func:`consumers.delivery_setup.start_engine`. Route modules
get the engine with :func:`engine_of` (503 when webhooks are off or the
lifespan has not run). Metrics: attempts by endpoint and verdict, attempt
latency, finished deliveries by outcome, queue depth and the age of the
oldest pending delivery (refreshed every 5 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from starlette.applications import Starlette
from starlette.requests import Request

from consumers.delivery.engine import DeliveryEngine
from consumers.delivery.kinds import AttemptHook
from consumers.delivery.model import Endpoint
from consumers.delivery.retry import AttemptResult, Classification
from consumers.delivery_setup import check_target, start_engine, stream_bounds
from consumers.notify.spec import NotificationsConfig
from consumers.webhook import WebhooksConfig
from eventlog.errors import Unavailable

__all__ = [
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


async def start(app: Starlette) -> None:
    """Start the delivery engine (call after the log started); apply config-declared endpoints."""
    engine = await start_engine(
        app.state.log,
        webhooks_config(app),
        notifications_config(app),
        secrets=app.state.secrets,
        on_attempt=_metrics_hook(app),
    )
    if engine is None:
        return
    app.state.webhooks = engine
    app.state.webhooks_gauges = asyncio.create_task(_refresh_gauges(app, engine))


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
