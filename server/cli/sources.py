"""``eventlog sources``: list, add and delete file sources of a running server.

Over HTTP like ``eventlog webhooks`` (``--url``, ``--api-key``, ``--json``);
sources declared in the config file are listed but cannot be changed here.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich import box
from rich.table import Table

from eventlog.client import Client
from server.cli.tables import print_table
from server.cli.targets import call, command, connection_options

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``sources list|add|delete`` to the ``eventlog`` parser."""
    conn = connection_options()
    top = subparsers.add_parser("sources", help="list, add or delete file sources")
    sub = top.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sub.add_parser("list", parents=[conn], help="every source with its status")
    p.set_defaults(handler=command(_list))
    p = sub.add_parser("add", parents=[conn], help="watch a file or directory into a stream")
    p.add_argument("name", help="source name")
    p.add_argument("--kind", required=True, help="ndjson-tail, json-file, directory or a plugin's")
    p.add_argument("--path", required=True, help="the file (or directory) to watch")
    p.add_argument("--stream", required=True, help="where its events go")
    p.add_argument("--type", help="event type (default <name>.line / <name>.file)")
    p.add_argument("--errors", help="stream bad input is parked to (default <stream>.errors)")
    p.add_argument("--pattern", help="directory: file name glob (default *)")
    p.add_argument(
        "--mode", choices=["event", "lines"], help="directory: a file is one event or its lines"
    )
    p.add_argument("--done", help="directory: move each file here once appended")
    p.set_defaults(handler=command(_add))
    p = sub.add_parser("delete", parents=[conn], help="stop and forget a source")
    p.add_argument("name", help="source name")
    p.set_defaults(handler=command(_delete))


def _list(client: Client, args: argparse.Namespace) -> Any:
    result = call(client, "GET", "/api/sources")
    if not args.json:
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
        for name in ("NAME", "KIND", "PATH", "STREAM", "ORIGIN", "APPENDED", "PARKED", "ERROR"):
            table.add_column(name, no_wrap=name != "ERROR")
        for s in result["sources"]:
            spec, status = s["spec"], s["status"]
            table.add_row(
                spec["name"], spec["kind"], spec["path"], spec["stream"], s["origin"],
                str(status["appended"]), str(status["parked"]), status["error"] or "-",
            )  # fmt: skip
        print_table(table)
    return result


def _add(client: Client, args: argparse.Namespace) -> Any:
    fields = ("kind", "path", "stream", "type", "errors", "pattern", "mode", "done")
    body = {"name": args.name, **{f: getattr(args, f) for f in fields if getattr(args, f)}}
    result = call(client, "POST", "/api/sources", body)
    if not args.json:
        print(
            f"added {args.name}: {result['spec']['kind']} {result['spec']['path']} -> "
            f"{result['spec']['stream']}"
        )
    return result


def _delete(client: Client, args: argparse.Namespace) -> Any:
    call(client, "DELETE", f"/api/sources/{args.name}")
    if not args.json:
        print(f"deleted {args.name}")
    return {"deleted": args.name}
