"""HTTP and WebSocket route modules. Each module exports ``routes``."""

from __future__ import annotations

from starlette.routing import BaseRoute

__all__ = ["all_routes"]


def all_routes() -> list[BaseRoute]:
    """Every API route, gathered from the route modules."""
    routes: list[BaseRoute] = []
    # Each feature module appends its routes here, e.g.:
    # from server.api import streams; routes += streams.routes
    from server.api import consumers, retention, streams, system

    routes += streams.routes + retention.routes + consumers.routes + system.routes
    from server.api import ingest

    routes += ingest.routes
    from server.api import firehose

    routes += firehose.routes
    from server.api import webhooks

    routes += webhooks.routes
    from server.api import notifications

    routes += notifications.routes
    from server.api import schedules, sources

    routes += schedules.routes + sources.routes
    from server.api import ui

    routes += ui.routes
    from server.api import shared_consumers

    routes += shared_consumers.routes
    return routes
