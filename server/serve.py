"""Running the HTTP API on uvicorn (uvloop + httptools, one worker): what
``eventlog serve`` does once :mod:`server.cli.serve` has read its options.

The server creates the log and hands it to :func:`server.app.create_app` with
``manage_log=True``, so the log's writer starts inside uvicorn's event loop
(the app's lifespan) and is flushed and closed there on shutdown.

SIGTERM and SIGINT shut down gracefully: stop accepting connections, end
long-polls, let in-flight requests finish (up to ``shutdown_timeout``), flush
the writer, close the log, exit 0.
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import logging
import resource
import sys
import time
from collections.abc import Mapping
from types import FrameType
from typing import Any

import uvicorn
from starlette.applications import Starlette

from eventlog import EventLog, EventLogError, LogConfig
from eventlog.log import storage_for
from eventlog.sealed import SecretBox, SecretsKeyError
from server.access_log import BufferedLineWriter, format_line
from server.app import create_app
from server.config import ConfigError, ServerConfig
from server.front import Front
from server.protocols import guarded_protocols
from server.secrets import check_secrets, secret_box
from server.tls import uvicorn_tls_options

__all__ = [
    "exposure_warning",
    "is_loopback",
    "log_config_for",
    "run_server",
    "uvicorn_config",
]

logger = logging.getLogger("eventlog.server")

#: The collector's generation thresholds while serving (CPython's default: 700, 10, 10).
GC_THRESHOLDS = (10_000, 20, 20)

#: Seconds a thread waits for the GIL before asking the running one to let go
#: (CPython's default: 5 ms). SQLite writes run on a worker thread that gives
#: the GIL up inside every statement and needs it back to finish; with the
#: event loop busy serving requests, the default made each commit wait up to
#: 5 ms for it. 0.1 ms measured ~20% more single-event appends per second.
GIL_SWITCH_INTERVAL = 0.0001


def is_loopback(host: str) -> bool:
    """True if ``host`` names only the loopback interface."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _LineFormatter(logging.Formatter):
    """Log records as one JSON object or ``key=value`` line each."""

    def __init__(self, fmt: str) -> None:
        super().__init__()
        self.fmt = fmt

    def format(self, record: logging.LogRecord) -> str:
        if record.name == "eventlog.access":
            return record.getMessage()  # already a formatted line
        fields: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        return format_line(fields, self.fmt)


#: File descriptors the server keeps for itself beyond its connections
#: (database files, the listening socket, logs, outgoing deliveries).
FD_HEADROOM = 256


def _raise_fd_limit(connections: int) -> None:
    """Raise the soft open-file limit so that ``connections`` fit, up to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = connections + FD_HEADROOM
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        if new < want:
            logger.warning(
                "open-file limit %d is too low for max_connections=%d; "
                "new clients may be refused before the limit",
                new,
                connections,
            )


def _setup_logging(config: ServerConfig) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LineFormatter(config.log_format))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.log_level.upper())


class _Server(uvicorn.Server):
    """uvicorn's server, exiting 0 on SIGTERM/SIGINT and ending long-polls first."""

    def __init__(self, config: uvicorn.Config, stopping: asyncio.Event) -> None:
        super().__init__(config)
        self._stopping = stopping
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: Any = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        # Everything made so far (modules, the app, the log, consumers) lives as
        # long as the server: move it out of the collector's reach, or every full
        # collection re-walks it (~20 ms pauses, ~10% of the CPU under a steady
        # append load, measured). Requests make few reference cycles, so the
        # young generation is collected less often than CPython's default of
        # every 700 allocations (~15 us less CPU per request, measured).
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Unlike uvicorn's own handler, do not re-raise the signal after
        # shutdown: a requested, graceful stop exits 0.
        if self.should_exit:
            self.force_exit = True
        self.should_exit = True
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)


def exposure_warning(config: ServerConfig) -> str | None:
    """The warning for a non-loopback host served without API keys (``--insecure``), if any."""
    if is_loopback(config.host) or config.api_keys:
        return None
    return (
        f"serving {config.host} without API keys (--insecure): anyone who can reach it "
        "can read, append and delete every stream"
    )


def log_config_for(config: ServerConfig) -> LogConfig:
    """The log's settings that ``eventlog serve`` derives from the server's."""
    return LogConfig(
        synchronous=config.synchronous,
        protect_consumers=config.retention_protect,
        max_hold=config.retention_max_hold,
        schedule_horizon=config.schedule_horizon,
        system_stream=config.webhooks.system_stream,  # one system stream for every notice
    )


def uvicorn_config(app: Starlette, config: ServerConfig, tls: Mapping[str, Any]) -> uvicorn.Config:
    """uvicorn's settings for ``app`` as ``eventlog serve`` runs it (the tests' servers too).

    ``tls`` is :func:`server.tls.uvicorn_tls_options` of ``config``. uvicorn runs
    :class:`server.front.Front` around ``app``, which applies uvicorn's proxy
    headers (``X-Forwarded-For``/``-Proto`` from ``FORWARDED_ALLOW_IPS``, by default
    127.0.0.1 and ::1) itself, only to the requests that carry one.
    """
    http_protocol, ws_protocol = guarded_protocols(config)
    settings = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        loop="uvloop",
        http=http_protocol,
        ws=ws_protocol,
        lifespan="on",
        workers=1,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(max(config.shutdown_timeout, 1)),
        server_header=False,
        proxy_headers=False,  # Front applies them
        # Fan-out cost: permessage-deflate costs ~2.7x per frame (BASELINES.md);
        # off unless configured.
        ws_per_message_deflate=config.ws_compression,
        ws_ping_interval=config.ws_ping_interval,
        ws_ping_timeout=config.ws_ping_timeout,
        **tls,
    )
    settings.app = Front(app, settings.forwarded_allow_ips)
    return settings


def run_server(config: ServerConfig, config_file: str | None = None) -> int:
    """Serve until SIGTERM/SIGINT. Returns the exit code.

    ``config_file`` (the file ``config`` was read from, if any) is one of the
    server's own files that no file source made over the API may read.
    """
    if not is_loopback(config.host) and not config.api_keys and not config.insecure:
        print(
            f"eventlog serve: refusing to bind {config.host} without API keys; "
            "configure api_keys or pass --insecure",
            file=sys.stderr,
        )
        return 2
    try:
        tls = uvicorn_tls_options(config)
        secrets = secret_box(config)
    except (ConfigError, SecretsKeyError) as exc:
        print(f"eventlog serve: {exc}", file=sys.stderr)
        return 2
    _setup_logging(config)
    warning = exposure_warning(config)
    if warning is not None:
        logger.warning(warning)
    _raise_fd_limit(config.max_connections)
    log_config = log_config_for(config)
    try:
        log = EventLog(storage_for(config.db, log_config), log_config)
    except EventLogError as exc:  # an unsupported URL, a bad schema name: nothing opened yet
        print(f"eventlog serve: invalid --db: {exc}", file=sys.stderr)
        return 2
    failure = _check_secrets(config.db, log_config, secrets)
    if failure is not None:
        print(f"eventlog serve: {failure}", file=sys.stderr)
        return 2
    # Request lines skip the logging machinery: buffered, written every 50 ms.
    access = BufferedLineWriter(sys.stderr)
    access_sink = (
        access if logging.getLogger("eventlog.access").isEnabledFor(logging.INFO) else None
    )
    app = create_app(log, config, manage_log=True, access_sink=access_sink, secrets=secrets)
    app.state.config_file = config_file
    uv_config = uvicorn_config(app, config, tls)
    server = _Server(uv_config, app.state.stopping)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    try:
        server.run()
    finally:
        access.flush()
    if not server.started:
        return 1
    return 0


def _check_secrets(db: str, log_config: LogConfig, secrets: SecretBox) -> str | None:
    """Why the stored secrets cannot be opened with ``secrets``, if they cannot."""

    async def check() -> None:
        async with EventLog(storage_for(db, log_config), log_config) as log:
            await check_secrets(log, secrets)

    try:
        asyncio.run(check())
    except SecretsKeyError as exc:
        return str(exc)
    except EventLogError:
        pass  # the database itself fails: the server's own start says how
    return None
