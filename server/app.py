"""``create_app(log, config)``: the ASGI application, mountable in any Starlette/FastAPI app."""

from __future__ import annotations

from starlette.applications import Starlette

from eventlog import EventLog
from server.api import all_routes
from server.config import ServerConfig
from server.errors import handle_error

__all__ = ["create_app"]


def create_app(log: EventLog, config: ServerConfig | None = None) -> Starlette:
    """Build the eventlog ASGI app over an open (or to-be-started) log.

    The app keeps ``log`` and ``config`` on ``app.state``.
    """
    config = config or ServerConfig()
    app = Starlette(routes=all_routes(), exception_handlers={Exception: handle_error})
    app.state.log = log
    app.state.config = config
    return app
