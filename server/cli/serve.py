"""The ``serve`` and ``keygen`` commands; ``python -m server.cli.serve`` runs just these two.

The server itself (uvicorn, Starlette, every route: :mod:`server.serve`) is
imported only when ``serve`` runs, so that building the CLI parser stays
cheap: client commands such as ``eventlog tail`` start in a fraction of the
time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

__all__ = ["main", "register"]


def _serve(args: argparse.Namespace) -> int:
    """``eventlog serve``: load the layered config and run the server."""
    from server.config import ConfigError, load_config
    from server.serve import run_server

    flags = {
        "host": args.host,
        "port": args.port,
        "db": args.db,
        "insecure": True if args.insecure else None,
        "log_format": args.log_format,
        "log_level": args.log_level,
        "synchronous": args.synchronous,
        "max_body_bytes": args.max_body_bytes,
        "access_log": False if args.no_access_log else None,
        "max_header_bytes": args.max_header_bytes,
        "header_timeout": args.header_timeout,
        "idle_timeout": args.idle_timeout,
        "max_connections": args.max_connections,
        "ssl_certfile": args.ssl_certfile,
        "ssl_keyfile": args.ssl_keyfile,
        "ssl_keyfile_password": args.ssl_keyfile_password,
        "secrets_key_file": args.secrets_key_file,
        "source_dirs": args.source_dirs,
    }
    file = args.config or os.environ.get("EVENTLOG_CONFIG")
    try:
        config = load_config(file=file, environ=os.environ, flags=flags)
    except ConfigError as exc:
        print(f"eventlog serve: {exc}", file=sys.stderr)
        return 2
    return run_server(config, file)


def _keygen(args: argparse.Namespace) -> int:
    """``eventlog keygen``: print a new key and its config entry."""
    from server.auth import hash_key, new_key, parse_scope
    from server.config import ConfigError
    from server.tenancy import TENANT_NAME

    scopes = args.scope or ["admin"]
    try:
        for scope in scopes:
            parse_scope(scope)
        if args.tenant is not None and TENANT_NAME.fullmatch(args.tenant) is None:
            raise ConfigError(f"invalid tenant {args.tenant!r}: use 1-32 of [a-z0-9_-]")
    except ConfigError as exc:
        print(f"eventlog keygen: {exc}", file=sys.stderr)
        return 2
    key = new_key()
    print(f"key:  {key}", file=sys.stderr)
    print("Add to the config file (the key itself is not stored):", file=sys.stderr)
    quoted = ", ".join(_toml_string(s) for s in scopes)
    name = _toml_string(args.name)
    print(f'[[api_keys]]\nname = {name}\nhash = "{hash_key(key)}"\nscopes = [{quoted}]')
    if args.tenant is not None:
        print(f'tenant = "{args.tenant}"')
    return 0


def _toml_string(text: str) -> str:
    """``text`` as a TOML basic string: JSON's escapes are TOML's, but for DEL."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


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
    p.add_argument(
        "--source-dir",
        dest="source_dirs",
        action="append",
        metavar="DIR",
        help="a directory file sources made over the API may read (repeatable; "
        "default: the database file's)",
    )
    p.set_defaults(handler=_serve)

    k = sub.add_parser(
        "keygen",
        help="make an API key and its config entry",
        description="Print a new API key (stderr) and the [[api_keys]] entry with its hash.",
    )
    k.add_argument("--name", default="key", help="label of the key (default: key)")
    k.add_argument(
        "--scope",
        action="append",
        help="append:<glob>, read:<glob> or admin (repeatable; default: admin)",
    )
    k.add_argument("--tenant", help="the tenant the key belongs to (docs/tenants.md)")
    k.set_defaults(handler=_keygen)


def main(argv: list[str] | None = None) -> int:
    """``python -m server.cli.serve serve|keygen ...``: just these two commands of the CLI."""
    parser = argparse.ArgumentParser(prog="eventlog")
    register(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
