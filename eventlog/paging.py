"""Reading a stream a page at a time, for the embedded log and the client alike."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from eventlog.model import Event

__all__ = ["scan_pages"]

#: ``read(stream, from_offset, limit)``: up to ``limit`` events, in order.
Read = Callable[[str, int, int], Awaitable[list[Event]]]


async def scan_pages(
    read: Read, stream: str, start: int, stop: int | None, page: int
) -> AsyncIterator[Event]:
    """Events of ``stream`` from ``start`` up to (not including) ``stop`` or the
    head, ``read`` ``page`` events at a time; never more than a page in memory."""
    offset = start
    while stop is None or offset < stop:
        limit = page if stop is None else min(page, stop - offset)
        events = await read(stream, offset, limit)
        if not events:
            return
        for event in events:
            yield event
        offset = events[-1].offset + 1
