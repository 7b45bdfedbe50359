"""Server configuration: defaults, an optional TOML file, ``EVENTLOG_*`` variables, flags.

Precedence, lowest first: defaults, the config file, environment variables,
command-line flags.
"""

from __future__ import annotations

import msgspec

__all__ = ["ServerConfig"]


class ServerConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """How the server runs. Extended by each feature (auth, firehose, webhooks).

    Attributes:
        host: Interface to bind (default loopback).
        port: TCP port (default 7432).
        db: SQLite path or ``postgresql://`` URL.
        max_body_bytes: Largest request body accepted (413 beyond).
    """

    host: str = "127.0.0.1"
    port: int = 7432
    db: str = "eventlog.db"
    max_body_bytes: int = 16 << 20
