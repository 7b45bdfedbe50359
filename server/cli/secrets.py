"""``eventlog secrets keygen|rotate``: keys that seal stored secrets, and re-sealing.

``keygen`` prints a new key. ``rotate`` opens every stored webhook endpoint and
ingest source with any of the keys given (``EVENTLOG_SECRETS_KEY``, newest
first, or ``--secrets-key-file``) and writes it back sealed with the first, so
the older keys can then be dropped; documents stored before any key was given
are sealed too. Exit codes: 0 done, 1 the database failed, 2 no key, a wrong
key, no database file at ``--db`` or a bad argument.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    """Register ``secrets`` and its verbs on the CLI's subparsers."""
    p = sub.add_parser(
        "secrets",
        help="keys for secrets at rest: keygen, rotate",
        description="Secrets at rest (webhook secrets and headers, notification URLs, "
        "ingest secrets) sealed with Fernet keys; see docs/secrets.md.",
    )
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    k = verbs.add_parser("keygen", help="print a new key")
    k.set_defaults(handler=_keygen)
    r = verbs.add_parser(
        "rotate",
        help="re-encrypt every stored secret with the first key",
        description="Open every stored secret with any of the keys and write it back "
        "encrypted with the first (EVENTLOG_SECRETS_KEY=new,old). Run it with the "
        "server stopped, then start the server with the new key alone.",
    )
    r.add_argument("--db", default="eventlog.db", help="SQLite file or postgresql:// URL")
    r.add_argument("--secrets-key-file", help="keys, one a line (else EVENTLOG_SECRETS_KEY)")
    r.set_defaults(handler=_rotate)


def _keygen(args: argparse.Namespace) -> int:
    from eventlog.sealed import SecretBox

    print(SecretBox.new_key())
    return 0


def _rotate(args: argparse.Namespace) -> int:
    from eventlog import EventLog, EventLogError, LogConfig
    from eventlog.log import storage_for
    from eventlog.sealed import SecretBox, SecretsKeyError
    from server.secrets import rotate_secrets

    async def rotate(box: SecretBox) -> tuple[int, int]:
        config = LogConfig(retention_interval=0)
        async with EventLog(storage_for(args.db, config), config) as log:
            return await rotate_secrets(log, box)

    if "://" not in args.db and not os.path.isfile(args.db):  # a typo must not make a database
        print(f"eventlog secrets rotate: no database file at {args.db!r}", file=sys.stderr)
        return 2
    try:
        box = SecretBox.from_sources(os.environ, args.secrets_key_file)
        endpoints, sources = asyncio.run(rotate(box))
    except SecretsKeyError as exc:
        print(f"eventlog secrets rotate: {exc}", file=sys.stderr)
        return 2
    except EventLogError as exc:
        print(f"eventlog secrets rotate: {exc}", file=sys.stderr)
        return 1
    print(
        f"re-encrypted {endpoints} webhook endpoint(s) and {sources} ingest source(s) "
        "with the first key",
        file=sys.stderr,
    )
    return 0
