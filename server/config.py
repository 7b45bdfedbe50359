"""Server configuration: defaults, an optional TOML file, ``EVENTLOG_*`` variables, flags.

Precedence, lowest first: defaults, the config file, environment variables,
command-line flags. Every field of :class:`ServerConfig` can be set in each
layer: in the TOML file by its name (``port = 7500``), in the environment as
``EVENTLOG_<NAME>`` (``EVENTLOG_PORT=7500``; list and table fields take JSON,
e.g. ``EVENTLOG_API_KEYS='[{"name": "ci", "hash": "sha256:…", "scopes": ["admin"]}]'``),
on the command line as ``--<name>`` with dashes (``--port 7500``).

:func:`load_config` merges the layers (sans-I/O apart from reading the file):
each layer is a plain mapping, merged in order, then validated once by msgspec
so a bad value anywhere fails with the field's name.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from consumers.notify import NotificationsConfig
from consumers.registry import ConsumerInstance
from consumers.webhook import WebhooksConfig
from eventlog.errors import EventLogError
from server.ingest.sources import IngestConfig
from server.validation import explained

__all__ = ["ApiKey", "ConfigError", "ServerConfig", "TenantQuota", "env_layer", "load_config"]

ENV_PREFIX = "EVENTLOG_"
_TENANT = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


class ConfigError(EventLogError):
    """The configuration is invalid: an unknown option, a wrong type, an unreadable file."""

    code = "invalid_config"


class ApiKey(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """One API key, stored as a hash (never the key itself).

    Attributes:
        name: A label for logs and metrics (never the key).
        hash: ``sha256:<hex>`` of the key; make one with ``eventlog keygen``.
        scopes: ``append:<stream glob>``, ``read:<stream glob>`` or ``admin``.
        tenant: The tenant the key belongs to (1-32 of ``[a-z0-9_-]``): it
            names and sees only that tenant's streams, consumers and endpoints
            (docs/tenants.md). None: no tenant, today's behaviour.
    """

    name: str
    hash: str
    scopes: list[str] = []
    tenant: Annotated[str, msgspec.Meta(pattern="^[a-z0-9][a-z0-9_-]{0,31}$")] | None = None


class TenantQuota(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """One tenant's limits (``[tenants.acme]``, see docs/tenants.md); None: unlimited.

    Attributes:
        append_rate: Events per second the tenant may append, sustained.
        append_burst: Events it may append at once (default: one second's worth).
        max_bytes: Payload bytes its streams may hold; appends are refused at or past it.
        max_connections: Firehose WebSockets, SSE streams and long-polls open at once.
        retry_after: Seconds a refused client is told to wait when no time frees
            the quota by itself (stored bytes, connections).
    """

    append_rate: float | None = None
    append_burst: int | None = None
    max_bytes: int | None = None
    max_connections: int | None = None
    retry_after: int = 10

    def __post_init__(self) -> None:
        if self.append_rate is not None and not self.append_rate > 0:
            raise ValueError("append_rate must be a positive number of events per second")
        for name in ("append_burst", "max_bytes", "max_connections", "retry_after"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1")


class ServerConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """How the server runs. Extended by each feature (auth, firehose, webhooks).

    Attributes:
        host: Interface to bind (default loopback).
        port: TCP port (default 7432).
        db: SQLite path or ``postgresql://`` URL.
        max_body_bytes: Largest request body accepted (413 beyond).
        insecure: Allow binding a non-loopback interface without API keys.
        api_keys: Accepted API keys (hashes and scopes). Empty: no auth.
        log_format: Request log lines as ``"json"`` or ``"kv"`` (key=value).
        log_level: Python logging level name for the server's loggers.
        access_log: Write one log line per request.
        synchronous: SQLite durability (``full``, ``normal``, ``off``).
        schedule_horizon: Farthest due time a scheduled append may have, in
            seconds from now (default 366 days; further is a 400).
        max_wait: Longest long-poll ``wait`` a read may ask for, in seconds.
        max_read_limit: Most events one read returns.
        shutdown_timeout: Seconds in-flight requests get to finish on shutdown.
        ingest: Inbound webhook sources (``[[ingest.sources]]``, see docs/ingest.md).
        body_timeout: Seconds a client gets to send a whole request body (408 after).
        max_header_bytes: Largest request line plus headers (431 beyond).
        header_timeout: Seconds from a connection's opening, or a request's first
            byte, to the end of its headers (closed after; 408 if a request began).
        idle_timeout: Seconds a keep-alive connection may wait between requests.
        max_connections: Most open connections (HTTP and WebSocket); one more
            closes the one waiting longest without a request in progress.
        firehose_max_clients: Most concurrent firehose clients (WebSocket and SSE).
        firehose_queue_events: Events a firehose client may lag behind before it
            is closed as slow (close code 4008).
        firehose_queue_bytes: Bytes a firehose client may have queued, likewise.
        firehose_backlog_events: Recent events each stream's hub keeps in memory
            so that clients close to the head catch up without reading storage.
        firehose_page: Events per firehose catch-up read.
        firehose_close_timeout: Seconds a closing firehose client gets to read its close frame.
        firehose_keepalive: Seconds between SSE keepalive comments on an idle stream.
        ws_compression: Offer permessage-deflate to WebSocket clients (off: it costs
            ~2.7x the server CPU per frame).
        ws_ping_interval: Seconds between WebSocket pings (dead connections are reaped).
        ws_ping_timeout: Seconds a WebSocket client has to answer a ping.
        consumers: Handler consumers to run (``[[consumers]]``, see docs/consumers.md).
        sources: File sources to watch (``[[sources]]``, see docs/producers.md).
        source_dirs: Directories file sources made over the API may read
            (``path``, ``done``); unset: the SQLite database file's directory,
            none with PostgreSQL. Config-file sources are not confined.
        retention_protect: Retention keeps what named consumers have not read.
        retention_max_hold: Seconds without a commit after which a consumer no
            longer holds retention (unset: never; see docs/consumers.md).
        ssl_certfile: PEM certificate (chain) to serve HTTPS and ``wss://`` with;
            needs ``ssl_keyfile`` (see docs/http.md, "TLS").
        ssl_keyfile: PEM private key of ``ssl_certfile``.
        ssl_keyfile_password: Password of an encrypted ``ssl_keyfile``.
        secrets_key_file: File of the keys that seal stored secrets (one a
            line, newest first); else ``EVENTLOG_SECRETS_KEY``. Never the keys
            themselves in this file (see docs/secrets.md).
        webhooks: Webhook delivery (``[webhooks]``, see docs/webhooks.md).
        notifications: Chat notification targets delivered by the same engine
            (``[[notifications.targets]]``, see docs/notifications.md).
        tenants: Per-tenant quotas by tenant name (``[tenants.acme]``, see
            docs/tenants.md); a tenant without an entry is unlimited.
    """

    host: str = "127.0.0.1"
    port: int = 7432
    db: str = "eventlog.db"
    max_body_bytes: int = 16 << 20
    insecure: bool = False
    api_keys: list[ApiKey] = []
    log_format: Literal["json", "kv"] = "kv"
    log_level: str = "info"
    access_log: bool = True
    synchronous: Literal["full", "normal", "off"] = "full"
    schedule_horizon: float = 366 * 86_400.0
    retention_protect: bool = True
    retention_max_hold: float | None = None
    max_wait: float = 60.0
    max_read_limit: int = 10_000
    shutdown_timeout: float = 10.0
    ingest: IngestConfig = msgspec.field(default_factory=IngestConfig)
    body_timeout: float = 30.0
    max_header_bytes: int = 64 << 10
    header_timeout: float = 10.0
    idle_timeout: float = 5.0
    max_connections: int = 2048
    firehose_max_clients: int = 1000
    firehose_queue_events: int = 10_000
    firehose_queue_bytes: int = 16 << 20
    firehose_backlog_events: int = 10_000
    firehose_page: int = 1000
    firehose_close_timeout: float = 5.0
    firehose_keepalive: float = 15.0
    ws_compression: bool = False
    ws_ping_interval: float = 20.0
    ws_ping_timeout: float = 20.0
    consumers: list[ConsumerInstance] = []
    sources: list[dict[str, Any]] = []
    source_dirs: list[str] | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_keyfile_password: str | None = None
    secrets_key_file: str | None = None
    webhooks: WebhooksConfig = msgspec.field(default_factory=WebhooksConfig)
    notifications: NotificationsConfig = msgspec.field(default_factory=NotificationsConfig)
    tenants: dict[str, TenantQuota] = {}

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError("port must be between 0 and 65535")
        if self.max_body_bytes < 1:
            raise ValueError("max_body_bytes must be positive")
        if self.max_wait < 0 or self.max_read_limit < 1:
            raise ValueError("max_wait must be >= 0 and max_read_limit >= 1")
        firehose_limits = (
            self.firehose_max_clients,
            self.firehose_queue_events,
            self.firehose_queue_bytes,
            self.firehose_backlog_events,
            self.firehose_page,
        )
        if min(firehose_limits) < 1:
            raise ValueError("firehose limits must be positive")
        if self.firehose_close_timeout <= 0 or self.firehose_keepalive <= 0:
            raise ValueError("firehose timeouts must be positive")
        if not self.schedule_horizon > 0:
            raise ValueError("schedule_horizon must be a positive number of seconds")
        if self.body_timeout <= 0 or self.shutdown_timeout < 0:
            raise ValueError("body_timeout must be > 0 and shutdown_timeout >= 0")
        if min(self.max_header_bytes, self.max_connections) < 1:
            raise ValueError("max_header_bytes and max_connections must be positive")
        if self.header_timeout <= 0 or self.idle_timeout <= 0:
            raise ValueError("header_timeout and idle_timeout must be positive")
        if self.log_level.upper() not in _LOG_LEVELS:
            levels = ", ".join(level.lower() for level in _LOG_LEVELS)
            raise ValueError(f"log_level must be one of {levels}, not {self.log_level!r}")
        for tenant in self.tenants:
            if _TENANT.fullmatch(tenant) is None:
                raise ValueError(f"tenants: {tenant!r} is not a tenant name (1-32 of [a-z0-9_-])")


#: The level names ``log_level`` takes (in any case).
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

_SCALARS = (
    msgspec.inspect.StrType,
    msgspec.inspect.IntType,
    msgspec.inspect.FloatType,
    msgspec.inspect.BoolType,
    msgspec.inspect.LiteralType,
)


def _json_fields() -> dict[str, bool]:
    """Field name → True if its environment variable holds JSON (lists, tables)."""
    info = msgspec.inspect.type_info(ServerConfig)
    assert isinstance(info, msgspec.inspect.StructType)
    return {f.name: not _is_scalar(f.type) for f in info.fields}


def _is_scalar(kind: msgspec.inspect.Type) -> bool:
    """A scalar, or an optional one (``str | None``: the variable is the string)."""
    if isinstance(kind, msgspec.inspect.UnionType):
        return all(isinstance(t, msgspec.inspect.NoneType) or _is_scalar(t) for t in kind.types)
    return isinstance(kind, _SCALARS)


def env_layer(environ: Mapping[str, str]) -> dict[str, Any]:
    """The ``EVENTLOG_*`` variables that name a config field, as a raw layer.

    Scalars stay strings (converted when the layers are validated); list and
    table fields are decoded from JSON.
    """
    fields = _json_fields()
    layer: dict[str, Any] = {}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        name = key[len(ENV_PREFIX) :].lower()
        is_json = fields.get(name)
        if is_json is None:
            continue  # other EVENTLOG_* variables (tests, clients) are not ours
        if is_json:
            try:
                layer[name] = msgspec.json.decode(value)
            except msgspec.DecodeError as exc:
                raise ConfigError(f"{key} must be JSON: {exc}") from exc
        else:
            layer[name] = value
    return layer


def file_layer(path: str | Path) -> dict[str, Any]:
    """A TOML config file as a raw layer."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def load_config(
    *,
    file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> ServerConfig:
    """Merge defaults < ``file`` < ``environ`` < ``flags`` into a :class:`ServerConfig`.

    ``flags`` holds only the options given on the command line (None values
    are ignored). A missing ``file`` is an error; ``file=None`` skips it.

    Raises:
        ConfigError: An unknown option or a value of the wrong type, named.
    """
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}  # option -> where its value came from, for errors
    if file is not None:
        layer = file_layer(file)
        merged.update(layer)
        origin.update({k: f"{k} in {file}" for k in layer})
    if environ is not None:
        layer = env_layer(environ)
        merged.update(layer)
        origin.update({k: f"{ENV_PREFIX}{k.upper()}" for k in layer})
    if flags:
        given = {k: v for k, v in flags.items() if v is not None}
        merged.update(given)
        origin.update({k: "--" + k.replace("_", "-") for k in given})
    try:
        config = msgspec.convert(merged, ServerConfig, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(_config_error(explained(exc, ServerConfig), merged, origin)) from exc
    _check_sources(config.sources)
    return config


def _check_sources(declared: list[dict[str, Any]]) -> None:
    """``[[sources]]`` checked before the server starts (kinds: built-in and plugins')."""
    if not declared:
        return
    from server.sources.kinds import source_kinds
    from server.sources.spec import SourceError, parse_spec

    kinds = tuple(source_kinds())
    names: set[str] = set()
    for index, raw in enumerate(declared):
        try:
            spec = parse_spec(raw, kinds)
        except SourceError as exc:
            raise ConfigError(f"invalid configuration: sources[{index}]: {exc}") from exc
        if spec.name in names:
            raise ConfigError(f"invalid configuration: two [[sources]] are named {spec.name!r}")
        names.add(spec.name)


def _config_error(text: str, merged: Mapping[str, Any], origin: Mapping[str, str]) -> str:
    """An invalid-configuration message naming where the bad option was set."""
    match = re.search(r" - at `\$\.([A-Za-z_]+)", text)
    unknown = re.fullmatch(r"Object contains unknown field `([^`]+)`", text)
    name = match.group(1) if match else unknown.group(1) if unknown else None
    if name is None or name not in origin:
        return f"invalid configuration: {text}"
    hint = " (use true or false)" if "Expected `bool`" in text else ""
    if unknown:
        hint = " (no such option; docs/http.md#running-the-server lists them)"
    # The value itself is left out: it may be a secret (a database URL with its
    # password, a chat webhook token).
    return f"invalid configuration: {origin[name]}: {text}{hint}"
