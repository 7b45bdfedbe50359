"""Row conversions every SQL backend shares: times as integer microseconds,
and the ``streams`` row as a :class:`~eventlog.model.StreamInfo`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from eventlog.model import Retention, StreamInfo

__all__ = ["STREAM_COLUMNS", "from_us", "stream_info", "to_us"]

#: The ``streams`` columns :func:`stream_info` expects, in order.
STREAM_COLUMNS = (
    "name, next_offset, first_offset, bytes, last_time_us, max_age, max_count, max_bytes, "
    "protect, max_hold"
)


def to_us(time: datetime) -> int:
    """Microseconds since the epoch (a naive datetime is taken as UTC)."""
    if time.tzinfo is None:
        time = time.replace(tzinfo=UTC)
    return int(time.timestamp() * 1_000_000)


def from_us(us: int) -> datetime:
    """The UTC datetime of microseconds since the epoch."""
    return datetime.fromtimestamp(us / 1_000_000, UTC)


def stream_info(row: Any) -> StreamInfo:
    """A ``streams`` row (columns as in :data:`STREAM_COLUMNS`) as a StreamInfo."""
    name, next_offset, first_offset, nbytes, last_us, max_age, max_count, max_bytes = row[:8]
    protect, max_hold = row[8:10]
    return StreamInfo(
        name=name,
        next_offset=next_offset,
        first_offset=first_offset,
        count=next_offset - first_offset,
        bytes=nbytes,
        last_time=None if last_us is None else from_us(last_us),
        retention=Retention(
            max_age=max_age,
            max_count=max_count,
            max_bytes=max_bytes,
            protect=bool(protect),
            max_hold=max_hold,
        ),
    )
