"""Replays: which part of a stream a replay covers (``[from, to)``), its scan, and its result."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from consumers.delivery.feeder import new_delivery
from consumers.delivery.model import Endpoint, NewDelivery
from consumers.filter import EventFilter
from eventlog import EventLog
from eventlog.errors import InvalidInput, NotFound

__all__ = ["InvalidRange", "ReplayResult", "UnknownOffset", "replay_endpoint"]

Enqueue = Callable[[str, list[NewDelivery], float], Awaitable[None]]
"""Stores a batch of new deliveries: ``(endpoint_id, rows, now)``."""


class UnknownOffset(NotFound):
    """A replay range names an offset the stream does not have."""

    code = "offset_not_found"


class InvalidRange(InvalidInput):
    """A replay range is empty or inverted."""

    code = "invalid_range"


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What a replay did (or, with ``dry_run``, would do)."""

    from_offset: int
    to_offset: int
    scanned: int
    matched: int
    dry_run: bool


async def replay_endpoint(
    log: EventLog,
    endpoint: Endpoint,
    *,
    from_offset: int | None,
    to_offset: int | None,
    from_time: datetime | None,
    to_time: datetime | None,
    dry_run: bool,
    now: float,
    enqueue: Enqueue,
) -> ReplayResult:
    """Scan ``[start, stop)`` of the endpoint's stream and enqueue what ``endpoint``
    matches as new deliveries, 1000 to a batch (``dry_run`` only counts). Offsets
    are taken as given, times resolved to the first event at or after them;
    ``from`` defaults to the first retained offset, ``to`` to the head.

    Raises:
        UnknownOffset: An offset outside the stream's retained range.
        InvalidRange: ``from`` after ``to``.
    """
    stream = endpoint.stream
    first, head = await log.bounds(stream)
    start, stop = first, head
    if from_offset is not None:
        if not first <= from_offset < head:
            raise UnknownOffset(
                f"offset {from_offset} is not in stream {stream!r} "
                f"(retained offsets: {first}..{head - 1})"
                if head > first
                else f"offset {from_offset} is not in stream {stream!r} (it is empty)"
            )
        start = from_offset
    elif from_time is not None:
        start = max(first, await log.offset_at_time(stream, from_time))
    if to_offset is not None:
        if not first <= to_offset <= head:
            raise UnknownOffset(f"offset {to_offset} is beyond stream {stream!r} (head: {head})")
        stop = to_offset
    elif to_time is not None:
        stop = await log.offset_at_time(stream, to_time)
    if stop < start:
        raise InvalidRange(f"empty range: from {start} is after to {stop}")
    filt = EventFilter(endpoint.types, endpoint.key)
    scanned = matched = 0
    batch: list[NewDelivery] = []
    async for event in log.scan(stream, start, stop):
        scanned += 1
        if not filt.matches(event):
            continue
        matched += 1
        if not dry_run:
            batch.append(new_delivery(event, now, replay=True))
            if len(batch) >= 1000:
                await enqueue(endpoint.id, batch, now)
                batch = []
    if batch:
        await enqueue(endpoint.id, batch, now)
    return ReplayResult(start, stop, scanned, matched, dry_run)
