"""``eventlog streams retention STREAM``: show or set a stream's retention policy.

Without a limit option it prints the policy; with ``--max-age``, ``--max-count``,
``--max-bytes`` (and ``--max-hold``, ``--no-protect``) it replaces the policy
with exactly those limits, and ``--clear`` removes them all; then it prints the
stored policy. Over ``--url`` it is ``PUT /api/streams/{stream}/retention``
(admin), on ``--db`` ``EventLog.set_retention``.
"""

from __future__ import annotations

import argparse
import re

import msgspec

from eventlog import Retention
from server.cli.backend import Backend, CliError
from server.cli.common import run, warn, write_out
from server.cli.events import InputError, check_stream

__all__ = ["add_options", "parse_seconds", "policy_of", "refuse_options", "retention_command"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smhdw]?)")
_LIMITS = ("max_age", "max_count", "max_bytes", "max_hold")


def parse_seconds(text: str) -> float:
    """``"7d"`` → 604800.0; a plain number is seconds (units: s, m, h, d, w).

    Raises:
        InputError: Not a number with an optional unit.
    """
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise InputError(f"not a duration: {text!r} (use e.g. 90s, 30m, 12h, 7d)")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def add_options(parser: argparse.ArgumentParser) -> None:
    """The options of ``streams retention`` (on the ``streams`` parser)."""
    group = parser.add_argument_group("retention STREAM (replaces the policy with these limits)")
    group.add_argument("--max-age", metavar="DURATION", help="keep events this long (e.g. 7d)")
    group.add_argument("--max-count", metavar="N", type=int, help="keep the last N events")
    group.add_argument("--max-bytes", metavar="N", type=int, help="keep N payload bytes")
    group.add_argument(
        "--max-hold",
        metavar="DURATION",
        help="a consumer that has not committed for this long stops holding retention",
    )
    group.add_argument(
        "--no-protect",
        dest="protect",
        action="store_false",
        help="trim what named consumers have not read too",
    )
    group.add_argument("--clear", action="store_true", help="remove every limit")


def policy_of(args: argparse.Namespace) -> Retention | None:
    """The policy the options ask for; None when they ask for none (show it).

    Raises:
        InputError: ``--clear`` with a limit, or a malformed duration.
    """
    given = [name for name in _LIMITS if getattr(args, name) is not None]
    if args.clear:
        if given or not args.protect:
            raise InputError("--clear takes no other retention option")
        return Retention()
    if not given and args.protect:
        return None
    return Retention(
        max_age=None if args.max_age is None else parse_seconds(args.max_age),
        max_count=args.max_count,
        max_bytes=args.max_bytes,
        protect=args.protect,
        max_hold=None if args.max_hold is None else parse_seconds(args.max_hold),
    )


def retention_command(args: argparse.Namespace) -> int:
    """``streams retention STREAM [options]``: show or set the policy, print it."""
    if args.name is None:
        warn("error: streams retention needs a STREAM")
        return 2
    try:
        stream = check_stream(args.name)
        policy = policy_of(args)
    except InputError as exc:
        warn(f"error: {exc}")
        return 2

    async def retention(args: argparse.Namespace, backend: Backend) -> int:
        if policy is None:
            info = await backend.stream_info(stream)
            if info is None:
                raise CliError(f"no stream {stream!r}")
            stored = info.retention
        else:
            stored = await backend.set_retention(stream, policy)
        if args.json:
            write_out(msgspec.json.encode(stored) + b"\n")
        else:
            from server.cli.tables import format_retention  # rich, only when needed

            shown = format_retention(stored)
            print(f"{stream}: retention {'none (keeps every event)' if shown == '-' else shown}")
        return 0

    return run(args, retention, must_exist=True)


def refuse_options(args: argparse.Namespace) -> str | None:
    """The usage error of retention options given to plain ``streams``, if any."""
    if any(getattr(args, name) is not None for name in _LIMITS) or args.clear or not args.protect:
        return "retention options need `streams retention STREAM`"
    return None
