"""Row conversions every SQL backend shares: times as integer microseconds,
event rows as :class:`~eventlog.model.Event`, and the ``streams`` row as a
:class:`~eventlog.model.StreamInfo`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from eventlog.model import Event, Retention, StreamInfo

__all__ = ["STREAM_COLUMNS", "events_from_rows", "from_us", "stream_info", "to_us"]

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


_decode_headers = msgspec.json.Decoder(dict[str, str]).decode


def events_from_rows(stream: str, rows: Sequence[Any]) -> list[Event]:
    """Event rows of one stream (columns offset, id, type, key, time_us,
    headers, data) as Events."""
    # One group commit shares one time: decode each distinct time once.
    times: dict[int, datetime] = {}
    for time_us in {row[4] for row in rows}:
        times[time_us] = from_us(time_us)
    raw = msgspec.Raw
    decode_headers = _decode_headers
    # Leaving out key and headers when they are empty lets msgspec use its
    # defaults, a third cheaper per event than passing them.
    return [
        Event(
            stream=stream,
            offset=offset,
            id=event_id,
            type=type_,
            time=times[time_us],
            data=raw(data),
        )
        if key is None and not headers
        else Event(
            stream=stream,
            offset=offset,
            id=event_id,
            type=type_,
            key=key,
            time=times[time_us],
            headers=decode_headers(headers) if headers else {},
            data=raw(data),
        )
        for offset, event_id, type_, key, time_us, headers, data in rows
    ]


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
