"""Rich tables for ``eventlog streams`` and ``eventlog consumers``.

Pure builders (rows in, :class:`rich.table.Table` out) plus :func:`print_table`,
which renders at the table's natural width even when stdout is a pipe, so a
column is never folded or cut.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import datetime

from rich import box
from rich.console import Console
from rich.filesize import decimal
from rich.table import Table

from eventlog import Retention, StreamInfo
from eventlog.errors import InvalidField
from eventlog.retention import check_retention
from server.cli.backend import ConsumerRow

__all__ = ["consumers_table", "format_retention", "format_time", "print_table", "streams_table"]


def format_time(value: datetime | None) -> str:
    """A UTC time to the second, ``-`` for none."""
    if value is None:
        return "-"
    return value.strftime("%Y-%m-%d %H:%M:%SZ")


def _seconds(value: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if value >= size and value % size == 0:
            return f"{int(value // size)}{unit}"
    return f"{value:g}s"


def format_retention(policy: Retention) -> str:
    """``age 7d, count 1000, bytes 1.0 MB, held 1h at most``; ``-`` for unlimited; a
    stored policy :func:`~eventlog.retention.check_retention` refuses (an older
    version's) as ``refused, trims nothing: <why>``."""
    try:
        check_retention(policy)
    except InvalidField as exc:
        return f"refused, trims nothing: {exc}"
    parts = []
    if policy.max_age is not None:
        parts.append(f"age {_seconds(policy.max_age)}")
    if policy.max_count is not None:
        parts.append(f"count {policy.max_count}")
    if policy.max_bytes is not None:
        parts.append(f"bytes {decimal(policy.max_bytes)}")
    if parts and not policy.protect:
        parts.append("consumers not held")
    elif parts and policy.max_hold is not None:
        parts.append(f"held {_seconds(policy.max_hold)} at most")
    return ", ".join(parts) or "-"


def streams_table(streams: Sequence[StreamInfo]) -> Table:
    """One row per stream: its retained range, size, last append and retention."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("STREAM", no_wrap=True)
    table.add_column("FIRST", justify="right")
    table.add_column("NEXT", justify="right")
    table.add_column("EVENTS", justify="right")
    table.add_column("SIZE", justify="right")
    table.add_column("LAST APPEND", no_wrap=True)
    table.add_column("RETENTION")
    for info in streams:
        table.add_row(
            info.name,
            str(info.first_offset),
            str(info.next_offset),
            str(info.count),
            decimal(info.bytes),
            format_time(info.last_time),
            format_retention(info.retention),
        )
    return table


def consumers_table(consumers: Sequence[ConsumerRow]) -> Table:
    """One row per (consumer, stream): committed offset, lag, last commit."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("CONSUMER", no_wrap=True)
    table.add_column("STREAM", no_wrap=True)
    table.add_column("OFFSET", justify="right")
    table.add_column("LAG", justify="right")
    table.add_column("UPDATED", no_wrap=True)
    for row in consumers:
        table.add_row(
            row.name,
            row.stream,
            str(row.offset),
            "-" if row.lag is None else str(row.lag),
            format_time(row.updated),
        )
    return table


def print_table(table: Table) -> None:
    """Print to stdout: at the terminal's width, or the table's full width into a pipe.

    Cells are plain text, never console markup: they hold what servers and
    receivers sent (``[hidden]``, a response body with ``[/error]`` in it).
    """
    if sys.stdout.isatty():
        Console(markup=False).print(table)
        return
    # A table renders at its natural width when the console is wider than it.
    console = Console(width=10_000, color_system=None, highlight=False, markup=False)
    with console.capture() as capture:
        console.print(table)
    # No colour, no padding at line ends: friendly to grep, awk and diff.
    sys.stdout.write("".join(line.rstrip() + "\n" for line in capture.get().splitlines()))
    sys.stdout.flush()
