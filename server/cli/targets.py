"""What the commands of the delivery-target families share: ``eventlog webhooks``
(endpoints) and ``eventlog notifications`` (chat targets) run on the same engine
and ledger, so their create/update/delete/enable/disable, deliveries, retry,
skip and replay are registered and run here once, on ``{api_base}/...``.

They talk to a running server over HTTP (``--url``, env ``EVENTLOG_URL``,
default ``http://127.0.0.1:7432``; ``--api-key``, env ``EVENTLOG_API_KEY``)
and print aligned tables (``--json`` prints the server's JSON instead).
Exit codes: 0 success, 1 the server refused or could not be reached (the
message says why), 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from rich.table import Table

from eventlog import EventLogError
from eventlog.client import Client
from server.cli.backend import CliError, cli_error
from server.cli.common import add_url_option, discard_stdout, warn
from server.cli.tables import print_table

__all__ = [
    "Failed",
    "Handler",
    "add_crud_actions",
    "add_delivery_actions",
    "add_delivery_options",
    "add_replay_options",
    "call",
    "command",
    "connection_options",
    "delivery_fields",
    "note",
    "print_endpoint",
    "retry_setting",
    "simple_action",
    "update_target",
]


class Failed(Exception):
    """A usage error found after parsing (a bad ``--header``, nothing to change): exit 2."""


def _base(args: argparse.Namespace) -> str:
    """The API path of the endpoint family a command works on (``/api/webhooks``)."""
    return str(getattr(args, "api_base", "/api/webhooks"))


def connection_options() -> argparse.ArgumentParser:
    """The ``--url``, ``--api-key`` and ``--json`` options every client command takes."""
    parent = argparse.ArgumentParser(add_help=False)
    add_url_option(parent)
    parent.add_argument(
        "--api-key",
        default=os.environ.get("EVENTLOG_API_KEY"),
        help="API key with the admin scope (env EVENTLOG_API_KEY)",
    )
    parent.add_argument("--json", action="store_true", help="print the server's JSON answer")
    return parent


def add_delivery_options(p: argparse.ArgumentParser, *, create: bool, what: str) -> None:
    """Options every delivery target shares (webhook endpoints and notification targets).

    ``what`` names the target in help texts ("endpoint", "target").
    """
    p.add_argument("--stream", help="stream to deliver (default: events)")
    p.add_argument(
        "--type", dest="types", action="append", metavar="PATTERN",
        help="event type pattern, '*' matches anything (repeatable; default: all types)",
    )  # fmt: skip
    p.add_argument("--key", help="pattern the event key must match")
    p.add_argument("--timeout", type=float, help="seconds per attempt (0.1-300)")
    p.add_argument(
        "--retry", type=retry_setting, metavar="PRESET|JSON",
        help="retry preset: default (about a day) or short (1 s, 2 s, 4 s), or a policy as "
        'a JSON object, e.g. \'{"schedule": [1, 10, 60], "jitter": 0}\'',
    )  # fmt: skip
    p.add_argument("--max-attempts", type=int, help="attempts in all, the first included")
    p.add_argument(
        "--ordering", choices=["concurrent", "ordered", "per-key"],
        help="concurrent (any order), ordered (one at a time, in log order) or per-key",
    )  # fmt: skip
    p.add_argument("--rate-limit", type=float, help="attempts per second at most")
    p.add_argument("--disable-after", type=float, help="seconds of failure before auto-disable")
    p.add_argument("--description", help="free text")
    replay = p.add_mutually_exclusive_group()
    replay.add_argument(
        "--no-replay", dest="allow_replay", action="store_false", default=None,
        help="refuse replay and retry (403)",
    )  # fmt: skip
    replay.add_argument(
        "--allow-replay", dest="allow_replay", action="store_true",
        help="allow replay and retry (the default)",
    )  # fmt: skip
    if create:
        p.add_argument("--id", help=f"{what} id (generated when omitted)")
        p.add_argument(
            "--start", choices=["end", "beginning"], help="deliver only new events (end, default)"
        )


def retry_setting(value: str) -> str | dict[str, Any]:
    """``--retry``: a preset's name as given (the server names the accepted ones), or
    a value starting with ``{`` as the JSON object of a retry policy."""
    if not value.lstrip().startswith("{"):
        return value
    try:
        policy = json.loads(value)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not a JSON object: {exc}") from None
    if not isinstance(policy, dict):
        raise argparse.ArgumentTypeError("not a JSON object")
    return policy


def delivery_fields(args: argparse.Namespace, *, create: bool) -> dict[str, Any]:
    """The shared fields of :func:`add_delivery_options` that were given, as a request body.

    ``id`` and ``start`` only on create: on update the positional id names the
    target, it is not a field to change.
    """
    names = [
        "stream", "types", "key", "timeout", "retry", "max_attempts", "ordering",
        "rate_limit", "disable_after", "description", "allow_replay",
    ]  # fmt: skip
    if create:
        names += ["id", "start"]
    fields = {name: getattr(args, name) for name in names}
    return {k: v for k, v in fields.items() if v is not None}


def note(target: dict[str, Any]) -> str:
    """The ``note`` column of a target list: why it is disabled, else since when it
    has been failing, else its description."""
    if target.get("disabled_reason"):
        return str(target["disabled_reason"])
    if target.get("failing_since"):
        return f"failing since {str(target['failing_since'])[:19]}Z"
    return str(target.get("description") or "")


def _a(noun: str) -> str:
    return "an" if noun[0] in "aeiou" else "a"


def add_crud_actions(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    conn: argparse.ArgumentParser,
    noun: str,
    handlers: tuple[Handler, Handler, Handler],
    spec_options: Callable[..., None],
    target_help: str,
    *,
    kinds: Sequence[str] = (),
    **defaults: Any,
) -> None:
    """Add ``list``, ``show``, ``create``, ``update``, ``delete``, ``enable`` and
    ``disable`` of a family of delivery targets (webhook endpoints, notification
    targets) to ``sub``. ``handlers`` run list, create and update; ``spec_options(p,
    create=...)`` adds the family's fields; ``create`` takes a ``kind`` first
    when ``kinds`` are given, then the target URL (``target_help``)."""
    list_, create, update = handlers
    a = _a(noun)
    p = sub.add_parser("list", parents=[conn], help=f"list {noun}s")
    p.set_defaults(handler=command(list_), **defaults)
    p = sub.add_parser("show", parents=[conn], help=f"show one {noun}")
    p.add_argument("id", help=f"the {noun}'s id")
    p.set_defaults(handler=command(_show), **defaults)
    p = sub.add_parser("create", parents=[conn], help=f"create {a} {noun}")
    if kinds:
        p.add_argument("kind", choices=list(kinds), help=f"the {noun}'s kind")
    p.add_argument("target", metavar="URL", help=target_help)
    spec_options(p, create=True)
    p.set_defaults(handler=command(create), **defaults)
    p = sub.add_parser("update", parents=[conn], help=f"change {a} {noun}'s fields")
    p.add_argument("id", help=f"the {noun}'s id")
    p.add_argument("--target", metavar="URL", help="new target URL")
    spec_options(p, create=False)
    p.set_defaults(handler=command(update), **defaults)
    for action, text in (
        ("delete", f"delete {a} {noun} and its deliveries"),
        ("enable", "enable delivery (resumes from the committed offset)"),
        ("disable", "disable delivery"),
    ):
        p = sub.add_parser(action, parents=[conn], help=text)
        p.add_argument("id", help=f"the {noun}'s id")
        p.set_defaults(handler=command(simple_action(action)), **defaults)


def add_delivery_actions(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    conn: argparse.ArgumentParser,
    *,
    names: tuple[str, str, str, str],
    api_base: str = "/api/webhooks",
    noun: str = "endpoint",
) -> None:
    """Add the actions that list, show, retry and skip the deliveries of a ``noun``
    to ``sub`` under ``names``; they call ``{api_base}/{id}/deliveries…``."""
    p = sub.add_parser(names[0], parents=[conn], help=f"the deliveries of {_a(noun)} {noun}")
    p.add_argument("endpoint", metavar=noun, help=f"the {noun}'s id")
    p.add_argument(
        "--status", choices=["pending", "in_flight", "delivered", "failed"],
        help="only deliveries in this state",
    )  # fmt: skip
    p.add_argument("--from", dest="start", type=int, help="first ledger sequence number")
    p.add_argument("--limit", type=int, default=50, help="rows (1-1000, default 50)")
    p.set_defaults(handler=command(_deliveries), api_base=api_base)
    p = sub.add_parser(names[1], parents=[conn], help="one delivery with every attempt")
    p.add_argument("endpoint", metavar=noun, help=f"the {noun}'s id")
    p.add_argument("delivery", help="the delivery id (msg_…)")
    p.set_defaults(handler=command(_delivery), api_base=api_base)
    for name, action, text in (
        (names[2], "retry", "deliver again (same delivery id, fresh attempts)"),
        (names[3], "skip", "give up a pending delivery (ends head-of-line blocking)"),
    ):
        p = sub.add_parser(name, parents=[conn], help=text)
        p.add_argument("endpoint", metavar=noun, help=f"the {noun}'s id")
        p.add_argument("delivery", help="the delivery id (msg_…)")
        p.set_defaults(handler=command(_act(action)), api_base=api_base)


def add_replay_options(
    p: argparse.ArgumentParser, api_base: str = "/api/webhooks", noun: str = "endpoint"
) -> None:
    """The arguments of a replay command (``endpoint``, ranges, ``--dry-run``)."""
    p.add_argument("endpoint", metavar=noun, help=f"the {noun}'s id")
    p.add_argument(
        "--from-offset", type=int, help="first offset replayed (default: the first retained)"
    )
    p.add_argument("--to-offset", type=int, help="first offset not replayed (default: the head)")
    p.add_argument("--from-time", help="RFC 3339 time, e.g. 2026-11-22T10:00:00Z")
    p.add_argument("--to-time", help="RFC 3339 time")
    p.add_argument("--dry-run", action="store_true", help="only count what would be replayed")
    p.set_defaults(handler=command(_replay), api_base=api_base)


Handler = Callable[[Client, argparse.Namespace], Any]


def command(fn: Handler) -> Callable[[argparse.Namespace], int]:
    """An argparse handler that runs ``fn`` with a client for ``--url``.

    Errors and exit codes are the other client commands' (see
    :mod:`server.cli.common`): one ``eventlog: error:`` line quoting the
    server's message, code and status, 1 for what the server refused or could
    not answer, 2 for a usage error, 0 when the reader of stdout went away.
    """

    def run(args: argparse.Namespace) -> int:
        if not str(args.url).startswith(("http://", "https://")):
            warn(f"error: --url must start with http:// or https://, not {args.url!r}")
            return 2
        try:
            with Client(args.url, api_key=args.api_key, retry_for=0) as client:
                result = fn(client, args)
            if args.json:
                print(json.dumps(result, indent=2))
            sys.stdout.flush()
        except Failed as exc:
            warn(f"error: {exc}")
            return 2
        except CliError as exc:
            warn(f"error: {exc.message}")
            return exc.exit_code
        except BrokenPipeError:
            discard_stdout()
            return 0
        return 0

    return run


def call(client: Client, method: str, path: str, body: Any = None, **params: Any) -> Any:
    """One API request through the client; the JSON answer (None for 204).

    Raises:
        CliError: The server refused (quoting its error) or could not be reached.
    """
    try:
        return client.call(method, path, body, **params)
    except EventLogError as exc:
        raise cli_error(exc) from exc


def print_endpoint(e: dict[str, Any], args: argparse.Namespace) -> None:
    """An endpoint as a field/value table (nothing with ``--json``)."""
    if args.json:
        return
    table = Table("field", "value")
    for name, value in e.items():
        if name == "secret":
            continue  # printed below, once
        if name == "secrets":
            value = ", ".join(
                s["hint"] + ("" if s["active"] else " (expired)") for s in value
            )  # fmt: skip
        elif isinstance(value, dict | list):
            value = json.dumps(value)
        table.add_row(name, "-" if value is None else str(value))
    print_table(table)
    if "secret" in e:
        print(f"secret: {e['secret']}  (shown once: store it now)")


def _show(client: Client, args: argparse.Namespace) -> Any:
    result = call(client, "GET", f"{_base(args)}/{args.id}")
    print_endpoint(result, args)
    return result


def update_target(client: Client, args: argparse.Namespace, body: dict[str, Any]) -> Any:
    """``PATCH`` ``body`` (with ``--target`` as its URL) to the target ``args.id``; print it."""
    if args.target is not None:
        body["url"] = args.target
    if not body:
        raise Failed("nothing to change: give at least one option")
    result = call(client, "PATCH", f"{_base(args)}/{args.id}", body)
    print_endpoint(result, args)
    return result


def simple_action(action: str) -> Handler:
    """``delete``, ``enable`` or ``disable`` one endpoint (``args.id``)."""

    def handler(client: Client, args: argparse.Namespace) -> Any:
        if action == "delete":
            call(client, "DELETE", f"{_base(args)}/{args.id}")
            if not args.json:
                print(f"deleted {args.id}")
            return {"deleted": args.id}
        result = call(client, "POST", f"{_base(args)}/{args.id}/{action}")
        if not args.json:
            print(f"{args.id}: {'enabled' if result['enabled'] else 'disabled'}")
        return result

    return handler


def _deliveries(client: Client, args: argparse.Namespace) -> Any:
    result = call(
        client,
        "GET",
        f"{_base(args)}/{args.endpoint}/deliveries",
        status=args.status,
        limit=args.limit,
        **{"from": args.start},
    )
    if not args.json:
        table = Table("seq", "id", "status", "offset", "type", "attempts", "last", "next attempt")
        for d in result["deliveries"]:
            last = d["last_error"] or (str(d["last_status"]) if d["last_status"] else "")
            table.add_row(
                str(d["seq"]),
                d["id"],
                d["status"],
                str(d["offset"]),
                d["event_type"],
                str(d["attempts"]),
                last,
                _next(d),
            )
        print_table(table)
        if result["next"] is not None:
            print(f"more: --from {result['next']}")
    return result


def _next(d: dict[str, Any]) -> str:
    """The "next attempt" cell: a blocked delivery names the one it waits behind."""
    at = d["next_attempt_at"] or ""
    blocked = d.get("blocked_by")
    return f"{at} (behind {blocked})" if blocked else at


def _delivery(client: Client, args: argparse.Namespace) -> Any:
    path = f"{_base(args)}/{args.endpoint}/deliveries/{args.delivery}"
    d = call(client, "GET", path)
    if not args.json:
        print(f"{d['id']}  {d['status']}  {d['stream']}@{d['offset']}  {d['event_type']}")
        table = Table("#", "time", "ms", "status", "verdict", "error", "response")
        for a in d["attempt_log"]:
            table.add_row(
                str(a["number"]),
                a["time"],
                f"{a['duration_ms']:.1f}",
                "-" if a["status"] is None else str(a["status"]),
                a["verdict"],
                a["error"] or "",
                a["response"][:60].replace("\n", " "),
            )
        print_table(table)
    return d


def _act(action: str) -> Handler:
    def handler(client: Client, args: argparse.Namespace) -> Any:
        path = f"{_base(args)}/{args.endpoint}/deliveries/{args.delivery}/{action}"
        result = call(client, "POST", path)
        if not args.json:
            print(f"{result['id']}: {result['status']}")
        return result

    return handler


def _replay(client: Client, args: argparse.Namespace) -> Any:
    body = {
        "from_offset": args.from_offset,
        "to_offset": args.to_offset,
        "from_time": args.from_time,
        "to_time": args.to_time,
        "dry_run": args.dry_run,
    }
    body = {k: v for k, v in body.items() if v is not None}
    result = call(client, "POST", f"{_base(args)}/{args.endpoint}/replay", body)
    if not args.json:
        verb = "would schedule" if result["dry_run"] else "scheduled"
        print(
            f"{args.endpoint}: offsets {result['from_offset']}..{result['to_offset']}: "
            f"{result['scanned']} scanned, {result['matched']} matching, {verb} "
            f"{result['matched']} deliveries"
        )
    return result
