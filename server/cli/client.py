"""Client commands: ``eventlog append``, ``tail``, ``streams``, ``consumers``.

They talk to a server over HTTP (``--url``, default ``http://127.0.0.1:7432``)
or open a database file in-process (``--db PATH``). See ``docs/cli.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from typing import Any, Literal

import msgspec

from eventlog import Event
from eventlog.backoff import Backoff
from server.cli import retention
from server.cli.backend import Appended, Backend, CliError, OutOfRange, Unavailable
from server.cli.common import IntermixedParser, connection_options, read_lines, run, warn, write_out
from server.cli.events import (
    Batcher,
    InputError,
    Numbered,
    check_stream,
    encode_event,
    line_of,
    parse_argument,
    parse_due,
    parse_from,
    parse_line,
)

__all__ = ["append_numbered", "read_range", "register", "retry_delay"]

PAGE = 1000
"""Events asked for per read request."""

FOLLOW_WAIT = 20.0
"""Seconds one long-poll read waits for an append while following."""

BATCH_EVENTS = 1000
BATCH_BYTES = 4 << 20


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add append, tail, streams and consumers to the ``eventlog`` parser."""
    conn = connection_options()

    p = subparsers.add_parser(
        "append",
        parents=[conn],
        help="append events; prints their offsets",
        description=(
            "Append a JSON argument, or NDJSON lines from stdin. Without --type the JSON "
            'is an event object {"type","data","key","id","headers"} (or an array of them); '
            "with --type T it is the event's data. Prints one offset per event."
        ),
    )
    p.add_argument("stream", help="stream name")
    p.add_argument("json", nargs="?", help="event object / array, or data with --type")
    p.add_argument("--type", "-t", help="payload mode: the JSON is data of events of this type")
    p.add_argument("--key", "-k", help="event key (default key in event mode)")
    p.add_argument("--id", help="idempotency key (one event from the JSON argument only)")
    when = p.add_mutually_exclusive_group()
    when.add_argument(
        "--at", metavar="TIME", help="schedule: append at this RFC 3339 time (prints ids)"
    )
    when.add_argument("--delay", metavar="SECONDS", help="schedule: append after this many seconds")
    p.set_defaults(handler=_append)
    p.__class__ = IntermixedParser  # JSON may follow the options

    p = subparsers.add_parser(
        "tail",
        parents=[conn],
        help="print events as JSON lines; -f follows",
        description="Print events of a stream, one compact JSON object per line.",
    )
    p.add_argument("stream", help="stream name")
    p.add_argument(
        "--from",
        dest="start",
        default="-10",
        metavar="N|-N|beginning|end",
        help="start offset, -N for the last N events (default -10), beginning or end",
    )
    p.add_argument(
        "-f", "--follow", action="store_true", help="keep waiting for new events (Ctrl-C stops)"
    )
    p.set_defaults(handler=_tail)

    parsers = {}
    for name, what, handler in (
        ("streams", "list streams: offsets, counts, sizes, retention", _streams),
        ("consumers", "list consumers: committed offsets and lag", _consumers),
    ):
        p = subparsers.add_parser(name, parents=[conn], help=what, description=what.capitalize())
        p.add_argument("--json", action="store_true", help="print JSON instead of a table")
        p.set_defaults(handler=handler)
        parsers[name] = p
    streams = parsers["streams"]
    streams.description = (
        "List streams (no action); `retention STREAM`: show a stream's retention policy, or "
        "with limit options replace it (--clear removes every limit) and show the result."
    )
    streams.add_argument("action", nargs="?", choices=["retention"], help="what to do")
    streams.add_argument("name", nargs="?", help="the stream (with an action)")
    retention.add_options(streams)
    streams.__class__ = IntermixedParser  # the STREAM may follow the options
    p.description = (
        "List consumers (no action); `show NAME`: one consumer's offsets, parked events and "
        "state; `replay-parked NAME`: hand its parked events back to its handler (in the server)."
    )
    p.add_argument("action", nargs="?", choices=["show", "replay-parked"], help="what to do")
    p.add_argument("name", nargs="?", help="the consumer (with an action)")


# -- append ---------------------------------------------------------------------------------


def _append(args: argparse.Namespace) -> int:
    try:
        stream = check_stream(args.stream)
        if args.json is not None:
            events = parse_argument(args.json, type=args.type, key=args.key, id=args.id)
        elif args.id is not None:
            raise InputError("--id works with a JSON argument only, not with stdin")
        else:
            events = None
        at = parse_due(args.at, args.delay)
    except InputError as exc:
        warn(f"error: {exc}")
        return 2

    async def put(backend: Backend, batch: list[Numbered]) -> bytes:
        if at is None:
            result = await append_numbered(backend, stream, batch)
            return b"".join(b"%d\n" % o for o in result.offsets)
        scheduled = await backend.schedule(stream, [e for _, e in batch], at)
        return b"".join(_json.encode(s) + b"\n" for s in scheduled)

    async def append(args: argparse.Namespace, backend: Backend) -> int:
        if events is not None:
            write_out(await put(backend, [(0, e) for e in events]))  # 0: not a stdin line
            return 0
        if sys.stdin.isatty():
            warn("reading NDJSON events from stdin (Ctrl-D ends)")
        batcher = Batcher(BATCH_EVENTS, BATCH_BYTES)
        async for group in read_lines(sys.stdin.buffer, BATCH_EVENTS):
            numbered = [
                (n, e)
                for n, raw in group
                if (e := parse_line(raw, lineno=n, type=args.type, key=args.key)) is not None
            ]
            for batch in batcher.batches(numbered):
                write_out(await put(backend, batch))
        return 0

    return run(args, append, must_exist=False)


async def append_numbered(backend: Backend, stream: str, batch: list[Numbered]) -> Appended:
    """Append one batch; a server error about one event names its stdin line."""
    try:
        return await backend.append(stream, [event for _, event in batch])
    except CliError as exc:
        line = line_of(exc.path, [n for n, _ in batch])
        if line is not None:
            exc.message = f"stdin line {line}: {exc.message}"
        raise


# -- tail -------------------------------------------------------------------------------------


#: Following across a server outage: 0.25 s doubling up to 5 s, no jitter.
FOLLOW_BACKOFF = Backoff(base=0.25, cap=5.0, jitter=0)


def retry_delay(attempt: int) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): :data:`FOLLOW_BACKOFF`."""
    return FOLLOW_BACKOFF.delay(attempt + 1)


async def read_range(
    backend: Backend,
    stream: str,
    start: int,
    *,
    stop: int | None,
    on_page: Callable[[list[Event]], None],
) -> int:
    """Read ``stream`` from ``start`` to ``stop`` (None: forever, long-polling).

    Calls ``on_page`` with each non-empty page. When retention removed events
    ahead of the reader, warns and continues at the first retained offset.
    While following, an unreachable server (or a 503) is retried with
    :func:`retry_delay` backoff instead of ending the command.
    Returns the number of events read.
    """
    offset, total, outage = start, 0, 0
    while stop is None or offset < stop:
        limit = PAGE if stop is None else min(PAGE, stop - offset)
        wait = FOLLOW_WAIT if stop is None else 0.0
        try:
            events = await backend.read(stream, offset, limit, wait)
        except Unavailable as exc:
            if stop is not None:
                raise
            # Following outlives a server restart: retry with backoff, say so once.
            if outage == 0:
                warn(f"warning: {exc.message}; retrying")
            await asyncio.sleep(retry_delay(outage))
            outage += 1
            continue
        except OutOfRange as exc:
            first = exc.first
            if first is None:
                info = await backend.stream_info(stream)
                first = info.first_offset if info is not None else None
            if first is None or first <= offset:
                raise
            warn(
                f"warning: offsets {offset}-{first - 1} were removed by retention; skipping "
                f"them ({first - offset} events lost, resuming at {first})"
            )
            offset = first
            continue
        if outage:
            warn(f"reconnected; following {stream} from offset {offset}")
            outage = 0
        if not events:
            if stop is None:
                continue
            break
        on_page(events)
        total += len(events)
        offset = events[-1].offset + 1
    return total


def _tail(args: argparse.Namespace) -> int:
    try:
        stream = check_stream(args.stream)
        start = parse_from(args.start)
    except InputError as exc:
        warn(f"error: {exc}")
        return 2

    async def tail(args: argparse.Namespace, backend: Backend) -> int:
        info = await backend.stream_info(stream)
        if info is None and not args.follow:
            raise CliError(f"stream {stream!r} does not exist")
        first, head = (0, 0) if info is None else (info.first_offset, info.next_offset)

        def emit(events: list[Event]) -> None:
            write_out(b"".join(encode_event(e) for e in events))

        stop = None if args.follow else head
        await read_range(backend, stream, start.resolve(first, head), stop=stop, on_page=emit)
        return 0

    # Ctrl-C is how ``tail -f`` ends: exit 0.
    return run(args, tail, must_exist=True, interrupted=0)


# -- streams / consumers ----------------------------------------------------------------------

_json = msgspec.json.Encoder()


def _streams(args: argparse.Namespace) -> int:
    if args.action == "retention":
        return retention.retention_command(args)
    problem = retention.refuse_options(args)
    if problem is not None or args.name is not None:
        warn(f"error: {problem or 'a STREAM needs an action: streams retention STREAM'}")
        return 2

    async def streams(args: argparse.Namespace, backend: Backend) -> int:
        _print_rows(args, await backend.streams(), "streams")
        return 0

    return run(args, streams, must_exist=True)


def _print_rows(
    args: argparse.Namespace, rows: Sequence[Any], kind: Literal["streams", "consumers"]
) -> None:
    """``rows`` as JSON with ``--json``, else as the ``kind`` table (``streams``, ``consumers``)."""
    if args.json:
        write_out(_json.encode(rows) + b"\n")
        return
    from server.cli import tables  # rich, only when needed

    table = tables.streams_table(rows) if kind == "streams" else tables.consumers_table(rows)
    tables.print_table(table)


def _consumers(args: argparse.Namespace) -> int:
    if args.action is not None:
        if args.name is None:
            warn(f"error: consumers {args.action} needs a consumer NAME")
            return 2
        return run(args, _consumer_action, must_exist=True)

    async def consumers(args: argparse.Namespace, backend: Backend) -> int:
        _print_rows(args, await backend.consumers(), "consumers")
        return 0

    return run(args, consumers, must_exist=True)


async def _consumer_action(args: argparse.Namespace, backend: Backend) -> int:
    if args.action == "replay-parked":
        result = await backend.replay_parked(args.name)
        if args.json:
            write_out(_json.encode(result) + b"\n")
        else:
            print(
                f"{result['consumer']}: replayed {result['replayed']} parked event(s) from "
                f"{result['parked_stream']}, {result['remaining']} remain"
            )
            if result.get("error"):
                print(f"stopped at one the handler still refuses: {result['error']}")
        return 1 if result.get("error") else 0
    detail = await backend.consumer(args.name)
    if args.json:
        write_out(_json.encode(detail) + b"\n")
        return 0
    lines = [f"consumer  {detail['name']}"]
    runtime = detail.get("runtime")
    if runtime:
        lines.append(
            f"state     {runtime['state']} (handled {runtime['handled']}, failures "
            f"{runtime['failures']}; max_attempts {runtime['max_attempts']}, "
            f"on_failure {runtime['on_failure']})"
        )
        if runtime.get("last_error"):
            lines.append(f"error     {runtime['last_error']}")
        if runtime.get("reason"):
            lines.append(f"reason    {runtime['reason']}")
    elif shared := detail.get("shared"):
        lines += _shared_lines(shared)
    else:
        lines.append("state     not running in this server")
    lines.append(f"parked    {detail['parked']} in {detail['parked_stream']}")
    for row in detail["streams"]:
        lag = "" if row.get("lag") is None else f", lag {row['lag']}"
        lines.append(f"stream    {row['stream']}: offset {row['offset']}{lag}")
    print("\n".join(lines))
    return 0


def _shared_lines(info: dict[str, Any]) -> list[str]:
    """A shared consumer's spec and claim state (``GET /api/consumers/{name}/shared``)."""
    order = ", ordered by key" if info["ordered_by_key"] else ""
    age = info.get("oldest_unacked_age")
    oldest = "" if age is None else f"; oldest unacked {age:.1f} s old"
    return [
        f"state     shared: workers claim its events (ack_wait {info['ack_wait']:g} s, "
        f"max_deliver {info['max_deliver']}{order})",
        f"claims    {info['pending']} pending, {info['claimed']} claimed; ack floor "
        f"{info['ack_floor']} of head {info['head']}{oldest}",
    ]
