"""``eventlog export STREAM > file.ndjson`` and ``eventlog import STREAM < file.ndjson``.

Export writes every retained event up to the head at the time it started,
one compact JSON object per line (the same lines ``eventlog tail`` prints).
Import reads such lines (or any event objects, see :mod:`server.cli.events`)
and appends them in atomic batches, keeping each event's ``id``: importing
the same file again writes nothing new. The target log assigns new offsets
and append times. A rich progress bar is drawn on stderr when it is a terminal.
"""

from __future__ import annotations

import argparse
import sys

from eventlog import Event
from server.cli.backend import Backend, CliError
from server.cli.client import BATCH_BYTES, append_numbered, read_range
from server.cli.common import Meter, connection_options, input_size, read_lines, run, warn
from server.cli.events import Batcher, InputError, check_stream, encode_event, parse_line

__all__ = ["register"]

IMPORT_BATCH = 1000
"""Events per import request by default (each request is one atomic batch)."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add export and import to the ``eventlog`` parser."""
    conn = connection_options()
    p = subparsers.add_parser(
        "export",
        parents=[conn],
        help="write a stream's events to stdout as NDJSON",
        description="Write every retained event of STREAM to stdout, one JSON object per line.",
    )
    p.add_argument("stream", help="stream name")
    p.set_defaults(handler=_export)

    p = subparsers.add_parser(
        "import",
        parents=[conn],
        help="append NDJSON events from stdin, keeping their ids",
        description=(
            "Append the events of an NDJSON file (e.g. from `eventlog export`) read on stdin, "
            "in atomic batches, keeping ids so that a re-import writes nothing new."
        ),
    )
    p.add_argument("stream", help="target stream name")
    p.add_argument(
        "--batch-size",
        type=int,
        default=IMPORT_BATCH,
        metavar="N",
        help="events per request (default %(default)s)",
    )
    p.set_defaults(handler=_import)


def _export(args: argparse.Namespace) -> int:
    try:
        stream = check_stream(args.stream)
    except InputError as exc:
        warn(f"error: {exc}")
        return 2

    async def export(args: argparse.Namespace, backend: Backend) -> int:
        info = await backend.stream_info(stream)
        if info is None:
            raise CliError(f"stream {stream!r} does not exist")
        out = sys.stdout.buffer
        with Meter(f"export {stream}", info.next_offset - info.first_offset) as meter:

            def emit(events: list[Event]) -> None:
                out.write(b"".join(encode_event(e) for e in events))
                meter.advance(len(events))

            total = await read_range(
                backend, stream, info.first_offset, stop=info.next_offset, on_page=emit
            )
        out.flush()
        warn(f"exported {total} events from {stream}")
        return 0

    return run(args, export, must_exist=True)


def _import(args: argparse.Namespace) -> int:
    try:
        stream = check_stream(args.stream)
        if not 1 <= args.batch_size <= 10_000:
            raise InputError("--batch-size must be between 1 and 10000")
    except InputError as exc:
        warn(f"error: {exc}")
        return 2

    async def import_(args: argparse.Namespace, backend: Backend) -> int:
        source = sys.stdin.buffer
        size = input_size(source)
        batcher = Batcher(args.batch_size, BATCH_BYTES)
        total = written = 0
        known = True
        unit = "bytes" if size is not None else "events"
        with Meter(f"import {stream}", size, unit=unit) as meter:
            async for group in read_lines(source, args.batch_size):
                numbered = [
                    (n, e) for n, raw in group if (e := parse_line(raw, lineno=n)) is not None
                ]
                for batch in batcher.batches(numbered):
                    result = await append_numbered(backend, stream, batch)
                    total += len(batch)
                    if result.written is None:
                        known = False
                    else:
                        written += result.written
                    if unit == "events":
                        meter.advance(len(batch))
                if unit == "bytes":
                    meter.advance(sum(len(raw) + 1 for _, raw in group))
        detail = f" ({written} new, {total - written} already present)" if known else ""
        warn(f"imported {total} events into {stream}{detail}")
        return 0

    return run(args, import_, must_exist=False)
