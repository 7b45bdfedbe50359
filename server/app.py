"""``create_app(log, config)``: the ASGI application, mountable in any Starlette/FastAPI app.

Two ways to use it:

* ``eventlog serve`` builds the log itself and passes ``manage_log=True``: the
  app's lifespan starts the log (so its writer runs inside the server's
  event loop) and, on shutdown, flushes the writer and closes it.
* Embedded in your own application, open the log yourself and mount the app;
  a mounted app's lifespan does not run, so the log stays yours to close.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware

from eventlog import EventLog
from eventlog.sealed import SecretBox
from server import consumer_runtime
from server.api import all_routes, streams, webhook_engine
from server.api.shared_consumers import close_shared_consumers
from server.auth import Authenticator
from server.config import ServerConfig
from server.errors import HANDLED, handle_error
from server.metrics import Metrics
from server.middleware import RequestMiddleware
from server.quotas import Quotas
from server.unrouted import answer_unrouted

__all__ = ["create_app"]


def create_app(
    log: EventLog,
    config: ServerConfig | None = None,
    *,
    manage_log: bool = False,
    access_sink: Callable[[str], None] | None = None,
    secrets: SecretBox | None = None,
) -> Starlette:
    """Build the eventlog ASGI app over an open (or, with ``manage_log``, unstarted) log.

    Args:
        log: The log to serve.
        config: Server settings (defaults if omitted).
        manage_log: Start the log in the app's lifespan and close it on shutdown.
        access_sink: Receives each request's log line (default: the
            ``eventlog.access`` logger at INFO).
        secrets: Seals webhook endpoints and ingest sources at rest (default:
            no key, stored as plain JSON; see docs/secrets.md).

    The app keeps ``log``, ``config``, ``metrics`` (a :class:`server.metrics.Metrics`)
    and ``stopping`` (an :class:`asyncio.Event` set when shutdown begins, which
    ends long-polls early) on ``app.state``.
    """
    config = config or ServerConfig()
    metrics = Metrics(log)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if manage_log:
            await log.start()
        try:
            await webhook_engine.start(
                app
            )  # webhook delivery workers (server/api/webhook_engine.py)
            await consumer_runtime.start(app)  # [[consumers]] from the config file
            await _start_sources(app)  # [[sources]] and those made over the API
        except BaseException:
            # A failed start-up must not leave the log's threads running (the
            # process would never exit).
            await _stop_sources(app)
            await webhook_engine.stop(app)
            if manage_log:
                await log.close()
            raise
        app.state.ready = True
        try:
            yield
        finally:
            app.state.ready = False
            app.state.stopping.set()
            close_shared_consumers(app)
            await _stop_sources(app)
            await consumer_runtime.stop(app)
            await webhook_engine.stop(app)
            if manage_log:
                await log.close()

    app = Starlette(
        routes=all_routes(),
        # Expected errors go to ExceptionMiddleware (inside ours, so they are
        # logged and counted with their real status); ``Exception`` is the 500 path.
        exception_handlers={**dict.fromkeys(HANDLED, handle_error), Exception: handle_error},
        middleware=[
            Middleware(
                RequestMiddleware,
                config=config,
                metrics=metrics,
                access_sink=access_sink,
                direct=streams.append_route,
            )
        ],
        lifespan=lifespan,
    )
    answer_unrouted(app.router)  # a trailing-slash miss is a JSON 404, not an empty 307
    app.state.log = log
    app.state.config = config
    app.state.metrics = metrics
    app.state.auth = Authenticator(config.api_keys)
    app.state.quotas = Quotas(config.tenants, log)
    app.state.stopping = asyncio.Event()
    app.state.secrets = secrets or SecretBox()
    app.state.config_file = None  # set by server.serve.run_server
    # Mounted without a lifespan, the app is ready as soon as the log is open.
    app.state.ready = not manage_log
    return app


async def _start_sources(app: Starlette) -> None:
    from server.sources import SourceManager
    from server.sources.confine import SourceDirs, default_source_dirs

    config: ServerConfig = app.state.config
    dirs = config.source_dirs
    if dirs is None:
        dirs = default_source_dirs(config.db)
    own = [app.state.config_file, config.secrets_key_file, config.ssl_keyfile]
    if default_source_dirs(config.db):  # an SQLite file: it and its journals
        own += [config.db + suffix for suffix in ("", "-wal", "-shm", "-journal")]
    allowed = SourceDirs(dirs, [f for f in own if f is not None])
    manager = SourceManager(app.state.log, config.sources, allowed)
    await manager.start()
    app.state.sources = manager


async def _stop_sources(app: Starlette) -> None:
    manager = getattr(app.state, "sources", None)
    if manager is not None:
        app.state.sources = None
        await manager.close()
