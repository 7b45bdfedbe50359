"""The ``eventlog`` command line. Exit codes: 0 success, 1 server-side error, 2 usage error."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="eventlog", description="An append-only event log server with pluggable consumers."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # Each command module registers itself: module.register(sub).
    from server.cli.serve import register as register_serve

    register_serve(sub)
    from server.cli.client import register as register_client

    register_client(sub)
    from server.cli.transfer import register as register_transfer

    register_transfer(sub)
    from server.cli.migrate import register as register_migrate

    register_migrate(sub)
    from server.cli.webhooks import register as register_webhooks

    register_webhooks(sub)
    from server.cli.notify import register as register_notify

    register_notify(sub)
    from server.cli.schedules import register as register_schedules

    register_schedules(sub)
    from server.cli.sources import register as register_sources

    register_sources(sub)
    from server.cli.secrets import register as register_secrets

    register_secrets(sub)
    del sub
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``eventlog`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:  # pragma: no cover - argparse enforces a command
        parser.print_usage(sys.stderr)
        return 2
    return int(handler(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
