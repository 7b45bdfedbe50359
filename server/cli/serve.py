"""The ``serve`` and ``keygen`` commands' arguments.

Kept apart from :mod:`server.serve` so that building the CLI parser does not
import the server (uvicorn, Starlette, every route): client commands such as
``eventlog tail`` start in a fraction of the time.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def _serve(args: argparse.Namespace) -> int:
    from server.serve import serve_command

    return serve_command(args)


def _keygen(args: argparse.Namespace) -> int:
    from server.serve import keygen_command

    return keygen_command(args)


def register(sub: Any) -> None:
    """Register ``serve`` and ``keygen`` on the CLI's subparsers."""
    p = sub.add_parser(
        "serve",
        help="run the HTTP server",
        description="Run the eventlog HTTP server (every option is also EVENTLOG_<NAME> "
        "or a key of the --config TOML file; flags win over env, env over the file).",
    )
    p.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="TCP port (default 7432)")
    p.add_argument("--db", help="SQLite file or postgresql:// URL (default ./eventlog.db)")
    p.add_argument("--config", help="TOML config file (or EVENTLOG_CONFIG)")
    p.add_argument(
        "--insecure", action="store_true", help="allow a non-loopback host without API keys"
    )
    p.add_argument("--log-format", choices=["json", "kv"], help="request log lines (default kv)")
    p.add_argument("--log-level", help="debug, info, warning, error (default info)")
    p.add_argument("--synchronous", choices=["full", "normal", "off"], help="SQLite durability")
    p.add_argument("--max-body-bytes", type=int, help="largest request body (default 16 MiB)")
    p.add_argument("--no-access-log", action="store_true", help="no per-request log lines")
    p.add_argument(
        "--max-header-bytes", type=int, help="largest request target plus headers (default 64 KiB)"
    )
    p.add_argument(
        "--header-timeout", type=float, help="seconds for a request's headers (default 10)"
    )
    p.add_argument(
        "--idle-timeout", type=float, help="seconds a keep-alive connection may idle (default 5)"
    )
    p.add_argument("--max-connections", type=int, help="most open connections (default 2048)")
    p.add_argument(
        "--ssl-certfile", help="PEM certificate: serve HTTPS and wss:// (with --ssl-keyfile)"
    )
    p.add_argument("--ssl-keyfile", help="PEM private key of --ssl-certfile")
    p.add_argument(
        "--ssl-keyfile-password",
        help="password of an encrypted key (prefer EVENTLOG_SSL_KEYFILE_PASSWORD)",
    )
    p.add_argument(
        "--secrets-key-file",
        help="keys sealing stored secrets, one a line (else EVENTLOG_SECRETS_KEY)",
    )
    p.set_defaults(handler=_serve)

    k = sub.add_parser(
        "keygen",
        help="make an API key and its config entry",
        description="Print a new API key (stderr) and the [[api_keys]] entry with its hash.",
    )
    k.add_argument("--name", default="key", help="label of the key (default: key)")
    k.add_argument(
        "--scope", action="append", help="append:<glob>, read:<glob> or admin (repeatable)"
    )
    k.set_defaults(handler=_keygen)
