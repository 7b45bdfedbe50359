"""Operations a backend may do faster itself, else derived from the ``Storage`` protocol.

Each function here uses the backend's own implementation when its
:class:`~eventlog.storage.capabilities.Capabilities` declares one (SQLite does
all three in SQL on one connection), and otherwise computes the same answer
from the protocol's methods: :meth:`~eventlog.storage.base.Storage.append`,
:meth:`~eventlog.storage.base.Storage.stream_info` and
:meth:`~eventlog.storage.base.Storage.read`. The contract suite runs both ways
(the in-memory backend declares none), so both give the same answers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from eventlog.storage.base import PendingEvent, Storage
from eventlog.storage.planner import first_offsets, generated_requests

__all__ = ["append_generated", "offset_at_time", "offset_for_bytes"]

#: Events read per page when counting payload bytes back from the head.
BYTES_PAGE = 1000


async def append_generated(
    storage: Storage, streams: Mapping[str, Sequence[PendingEvent]], now: datetime
) -> dict[str, int]:
    """Append events whose ids the log generated, in one transaction, durably.

    The common case of :meth:`Storage.append`: generated ids are new by
    construction and no request carries an expected offset. Each stream's
    events get consecutive offsets in the order given, with ``append``'s rule
    for time. Returns the first offset given to each stream.
    """
    own = storage.capabilities.append_generated
    if own is not None:
        return await own(streams, now)
    requests = generated_requests(streams)
    return first_offsets(requests, await storage.append(requests, now))


async def offset_at_time(storage: Storage, stream: str, time: datetime) -> int:
    """The first offset appended at or after ``time`` (the head if none; 0 for no stream)."""
    own = storage.capabilities.offset_at_time
    return await (own(stream, time) if own else _search_time(storage, stream, time))


async def offset_for_bytes(storage: Storage, stream: str, max_bytes: int) -> int:
    """The smallest offset such that the events from it to the head hold at most
    ``max_bytes`` payload bytes (0 for no stream)."""
    own = storage.capabilities.offset_for_bytes
    return await (own(stream, max_bytes) if own else _count_bytes(storage, stream, max_bytes))


async def _search_time(storage: Storage, stream: str, time: datetime) -> int:
    info = await storage.stream_info(stream)
    if info is None:
        return 0
    lo, hi = info.first_offset, info.next_offset
    while lo < hi:  # time is monotonic within a stream: binary search by offset
        mid = (lo + hi) // 2
        found = await storage.read(stream, mid, 1)
        if not found or found[0].time < time:
            lo = mid + 1
        else:
            hi = mid
    return lo


async def _count_bytes(storage: Storage, stream: str, max_bytes: int) -> int:
    info = await storage.stream_info(stream)
    if info is None:
        return 0
    total = 0
    end = info.next_offset
    while end > info.first_offset:
        start = max(info.first_offset, end - BYTES_PAGE)
        for event in reversed(await storage.read(stream, start, end - start)):
            total += len(event.data)
            if total > max_bytes:
                return event.offset + 1
        end = start
    return info.first_offset
