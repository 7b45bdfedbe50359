"""``eventlog schedules``: list scheduled appends, and cancel one.

Scheduling itself is ``eventlog append --at TIME`` (or ``--delay SECONDS``).
"""

from __future__ import annotations

import argparse

import msgspec
from rich import box
from rich.table import Table

from eventlog.schedule import ScheduledEvent
from server.cli.backend import Backend
from server.cli.common import connection_options, run, write_out
from server.cli.events import check_stream

__all__ = ["register", "schedules_table"]

_json = msgspec.json.Encoder()


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``schedules list`` and ``schedules cancel`` to the ``eventlog`` parser."""
    conn = connection_options()
    top = subparsers.add_parser("schedules", help="list or cancel scheduled appends")
    sub = top.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sub.add_parser("list", parents=[conn], help="scheduled events, in due order")
    p.add_argument("--stream", help="only this stream's")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(handler=_list)
    p = sub.add_parser("cancel", parents=[conn], help="cancel a scheduled event")
    p.add_argument("stream", help="stream name")
    p.add_argument("id", help="the scheduled event's id")
    p.set_defaults(handler=_cancel)


def schedules_table(rows: list[ScheduledEvent]) -> Table:
    """One row per scheduled event: due time, stream, id, type, key."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for name in ("DUE", "STREAM", "ID", "TYPE", "KEY"):
        table.add_column(name, no_wrap=True)
    for row in rows:
        due = row.deliver_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        table.add_row(due, row.stream, row.id, row.type, row.key or "-")
    return table


def _list(args: argparse.Namespace) -> int:
    async def show(args: argparse.Namespace, backend: Backend) -> int:
        stream = None if args.stream is None else check_stream(args.stream)
        rows = await backend.schedules(stream)
        if args.json:
            write_out(b"".join(_json.encode(r) + b"\n" for r in rows))
        else:
            from server.cli.tables import print_table

            print_table(schedules_table(rows))
        return 0

    return run(args, show, must_exist=True)


def _cancel(args: argparse.Namespace) -> int:
    async def cancel(args: argparse.Namespace, backend: Backend) -> int:
        await backend.cancel_schedule(check_stream(args.stream), args.id)
        return 0

    return run(args, cancel, must_exist=True)
