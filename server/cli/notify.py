"""``eventlog notifications ...``: chat notification targets (Discord, Slack, Apprise).

Like ``eventlog webhooks`` they talk to a running server over HTTP
(``--url``, env ``EVENTLOG_URL``; ``--api-key``, env ``EVENTLOG_API_KEY``;
``--json``) and work on ``/api/notifications``. The target's URL is a
credential: the server never shows it whole, so neither does the CLI.
Deliveries, retry, skip and replay of a target are the webhook commands'
(same engine and ledger), under ``notifications deliveries|delivery|retry|skip|replay``.
See ``docs/notifications.md``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.table import Table

from eventlog.client import Client
from server.cli import targets
from server.cli.tables import print_table

__all__ = ["register"]

_BASE = "/api/notifications"


def _spec_options(p: argparse.ArgumentParser, *, create: bool) -> None:
    targets.add_delivery_options(p, create=create, what="target")
    p.add_argument("--template", help="message template, e.g. 'New order {data.order.id}'")
    p.add_argument(
        "--option", dest="option", action="append", metavar="NAME=VALUE",
        help="a message option (value: JSON, else text), e.g. username=eventlog (repeatable)",
    )  # fmt: skip
    p.add_argument("--options", dest="options_json", metavar="JSON", help="all options as JSON")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``notifications`` to the ``eventlog`` parser."""
    conn = targets.connection_options()
    top = subparsers.add_parser("notifications", help="manage chat notification targets")
    sub = top.add_subparsers(dest="action", metavar="ACTION", required=True)
    handlers = (_list, _create, _update)
    targets.add_crud_actions(
        sub,
        conn,
        "target",
        handlers,
        _spec_options,
        "incoming-webhook URL or Apprise URL",
        kinds=("discord", "slack", "apprise"),
        api_base=_BASE,
    )
    targets.add_delivery_actions(
        sub, conn, names=("deliveries", "delivery", "retry", "skip"), api_base=_BASE, noun="target"
    )
    p = sub.add_parser("replay", parents=[conn], help="notify a range of the log again")
    targets.add_replay_options(p, api_base=_BASE, noun="target")


def _option_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _options(args: argparse.Namespace, current: dict[str, Any]) -> dict[str, Any] | None:
    """The options to send: ``current`` (or ``--options``) with ``--template``/``--option``."""
    if args.options_json is None and args.template is None and not args.option:
        return None
    options = dict(current)
    if args.options_json is not None:
        try:
            options = json.loads(args.options_json)
        except ValueError as exc:
            raise targets.Failed(f"--options must be a JSON object: {exc}") from exc
        if not isinstance(options, dict):
            raise targets.Failed("--options must be a JSON object")
    for item in args.option or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise targets.Failed(f"--option wants NAME=VALUE, got {item!r}")
        options[name.strip()] = _option_value(value)
    if args.template is not None:
        options["template"] = args.template
    return options


def _spec(
    args: argparse.Namespace, current_options: dict[str, Any], *, create: bool
) -> dict[str, Any]:
    options = _options(args, current_options)
    given = {"options": options} if options is not None else {}
    return {**targets.delivery_fields(args, create=create), **given}


def _list(client: Client, args: argparse.Namespace) -> Any:
    result = targets.call(client, "GET", _BASE)
    if not args.json:
        table = Table("id", "kind", "url", "stream", "types", "enabled", "note")
        for t in result["notifications"]:
            table.add_row(
                t["id"],
                t["kind"],
                t["url"],
                t["stream"],
                ",".join(t["types"]) or "*",
                "yes" if t["enabled"] else "no",
                targets.note(t),
            )
        print_table(table)
    return result


def _create(client: Client, args: argparse.Namespace) -> Any:
    body = {"kind": args.kind, "url": args.target, **_spec(args, {}, create=True)}
    result = targets.call(client, "POST", _BASE, body)
    targets.print_endpoint(result, args)
    return result


def _update(client: Client, args: argparse.Namespace) -> Any:
    current: dict[str, Any] = {}
    if args.template is not None or args.option:  # merge into the target's options
        current = targets.call(client, "GET", f"{_BASE}/{args.id}")["options"]
    return targets.update_target(client, args, _spec(args, current, create=False))
