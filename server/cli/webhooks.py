"""``eventlog webhooks ...``, ``eventlog deliveries ...``, ``eventlog replay ...``.

The commands of webhook endpoints; what they share with ``eventlog notifications``
(connection options, errors and exit codes, the delivery commands) is
:mod:`server.cli.targets`. See ``docs/webhooks.md``.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table

from eventlog.client import Client
from server.cli.tables import print_table
from server.cli.targets import (
    Failed,
    add_crud_actions,
    add_delivery_actions,
    add_delivery_options,
    add_replay_options,
    call,
    command,
    connection_options,
    delivery_fields,
    note,
    print_endpoint,
    update_target,
)

__all__ = ["register"]


def _spec_options(p: argparse.ArgumentParser, *, create: bool) -> None:
    add_delivery_options(p, create=create, what="endpoint")
    p.add_argument(
        "--header", dest="headers", action="append", metavar="NAME:VALUE",
        help="extra static request header, e.g. 'Authorization: Bearer …' (repeatable)",
    )  # fmt: skip
    p.add_argument("--max-in-flight", type=int, help="concurrent attempts (1-1000)")
    if create:
        p.add_argument("--secret", help="whsec_… signing secret (generated when omitted)")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``webhooks``, ``deliveries`` and ``replay`` to the ``eventlog`` parser."""
    conn = connection_options()

    hooks = subparsers.add_parser("webhooks", help="manage webhook endpoints")
    sub = hooks.add_subparsers(dest="action", metavar="ACTION", required=True)
    handlers = (_list, _create, _update)
    add_crud_actions(sub, conn, "endpoint", handlers, _spec_options, "where to POST events")
    p = sub.add_parser("rotate-secret", parents=[conn], help="new signing secret")
    p.add_argument("id", help="the endpoint's id")
    p.add_argument("--secret", help="the new whsec_… secret (generated when omitted)")
    p.add_argument("--grace", type=float, help="seconds the old secrets keep signing (1 day)")
    p.set_defaults(handler=command(_rotate))

    dels = subparsers.add_parser("deliveries", help="inspect, retry or skip deliveries")
    sub = dels.add_subparsers(dest="action", metavar="ACTION", required=True)
    add_delivery_actions(sub, conn, names=("list", "show", "retry", "skip"))

    p = subparsers.add_parser(
        "replay", parents=[conn], help="deliver a range of the log to an endpoint again"
    )
    add_replay_options(p)


def _headers(values: list[str] | None) -> dict[str, str] | None:
    if not values:
        return None
    out = {}
    for item in values:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise Failed(f"--header wants NAME:VALUE, got {item!r}")
        out[name.strip()] = value.strip()
    return out


def _spec(args: argparse.Namespace, *, create: bool) -> dict[str, Any]:
    extra = {
        "headers": _headers(args.headers),
        "max_in_flight": args.max_in_flight,
        "secret": getattr(args, "secret", None),
    }
    given = {k: v for k, v in extra.items() if v is not None}
    return {**delivery_fields(args, create=create), **given}


def _endpoint_table(endpoints: list[dict[str, Any]]) -> Table:
    table = Table("id", "url", "stream", "types", "ordering", "enabled", "secret", "note")
    for e in endpoints:
        hint = e["secrets"][0]["hint"] if e["secrets"] else "-"
        table.add_row(
            e["id"],
            e["url"],
            e["stream"],
            ",".join(e["types"]) or "*",
            e["ordering"],
            "yes" if e["enabled"] else "no",
            hint,
            note(e),
        )
    return table


def _list(client: Client, args: argparse.Namespace) -> Any:
    result = call(client, "GET", "/api/webhooks")
    if not args.json:
        print_table(_endpoint_table(result["webhooks"]))
    return result


def _create(client: Client, args: argparse.Namespace) -> Any:
    result = call(client, "POST", "/api/webhooks", {"url": args.target, **_spec(args, create=True)})
    print_endpoint(result, args)
    return result


def _update(client: Client, args: argparse.Namespace) -> Any:
    return update_target(client, args, _spec(args, create=False))


def _rotate(client: Client, args: argparse.Namespace) -> Any:
    body = {k: v for k, v in (("secret", args.secret), ("grace", args.grace)) if v is not None}
    result = call(client, "POST", f"/api/webhooks/{args.id}/rotate-secret", body)
    print_endpoint(result, args)
    return result
