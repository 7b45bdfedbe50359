"""Row conversions every SQL backend shares: times as integer microseconds,
event rows as :class:`~eventlog.model.Event`, and the ``streams`` row as a
:class:`~eventlog.model.StreamInfo`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

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


class _NoHeaders(dict[str, str]):
    """The headers of every event read without any: one empty dict, shared, that
    refuses changes (a stored event's headers are not the reader's to edit).

    A fresh empty dict per event cost ~110 ns per event read: 1000 of them a
    page outgrow the interpreter's free list of dicts, and the allocations set
    off one collection of the young generation per page (the page's row tuples
    come from the tuple free list and set off none).
    """

    __slots__ = ()

    def __reduce__(self) -> tuple[type[dict[str, str]], tuple[()]]:
        return dict, ()  # copies and pickles are plain (changeable) empty dicts

    def _refuse(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError("a stored event's headers cannot be changed")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _refuse


_NO_HEADERS = _NoHeaders()


class _Times(dict[int, datetime]):
    """Each distinct time of a page decoded once, when first looked up."""

    def __missing__(self, time_us: int) -> datetime:
        time = self[time_us] = from_us(time_us)
        return time


def events_from_rows(stream: str, rows: Sequence[Any]) -> list[Event]:
    """Event rows of one stream (columns offset, id, type, key, time_us,
    headers, data) as Events."""
    if not rows:
        return []
    raw = msgspec.Raw
    first = rows[0][4]
    # Leaving out the key when it is None lets msgspec use its default; every
    # event without headers shares one read-only empty dict (see _NoHeaders).
    if rows[-1][4] == first:
        # Time never goes backwards within a stream (offset_at_time's binary
        # search relies on it too), so the page is one time, as a page of one
        # group commit's events is: no look-up per event (~5% of reading and
        # decoding a page).
        time = from_us(first)
        return [
            Event(
                stream=stream,
                offset=offset,
                id=event_id,
                type=type_,
                time=time,
                headers=_NO_HEADERS,
                data=raw(data),
            )
            if key is None and not headers
            else _with_extras(stream, offset, event_id, type_, key, time, headers, data)
            for offset, event_id, type_, key, _, headers, data in rows
        ]
    times = _Times()
    return [
        Event(
            stream=stream,
            offset=offset,
            id=event_id,
            type=type_,
            time=times[time_us],
            headers=_NO_HEADERS,
            data=raw(data),
        )
        if key is None and not headers
        else _with_extras(stream, offset, event_id, type_, key, times[time_us], headers, data)
        for offset, event_id, type_, key, time_us, headers, data in rows
    ]


def _with_extras(
    stream: str,
    offset: int,
    event_id: str,
    type_: str,
    key: str | None,
    time: datetime,
    headers: bytes | None,
    data: bytes,
) -> Event:
    return Event(
        stream=stream,
        offset=offset,
        id=event_id,
        type=type_,
        key=key,
        time=time,
        headers=_decode_headers(headers) if headers else _NO_HEADERS,
        data=msgspec.Raw(data),
    )


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
