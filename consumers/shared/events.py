"""The events behind a shared consumer's ledger rows: a bounded cache, then the log."""

from __future__ import annotations

from collections.abc import Sequence

from consumers.delivery.model import Delivery
from eventlog import Event, EventLog
from eventlog.errors import OffsetOutOfRange

__all__ = ["EventCache"]


class EventCache:
    """The events a consumer fed lately, by offset (at most ``4 * size``), and the log
    for the rest (a redelivery, or rows another process fed).

    Args:
        log: The log to read misses from.
        size: A quarter of the most events kept; the oldest ``size`` go first.
    """

    def __init__(self, log: EventLog, size: int) -> None:
        self.log = log
        self.size = size
        self._events: dict[int, Event] = {}

    def put(self, event: Event) -> None:
        """Keep ``event`` (dropping the oldest ``size`` when full)."""
        self._events[event.offset] = event
        if len(self._events) > 4 * self.size:
            for offset in sorted(self._events)[: self.size]:
                del self._events[offset]

    async def of(self, stream: str, rows: Sequence[Delivery]) -> dict[int, Event]:
        """The rows' events by offset; offsets the log no longer has are absent."""
        found = {d.offset: e for d in rows if (e := self._events.get(d.offset)) is not None}
        missing = sorted(d.offset for d in rows if d.offset not in found)
        while missing:
            start = missing[0]
            try:
                page = await self.log.read(stream, start, min(missing[-1] - start + 1, 500))
            except OffsetOutOfRange as exc:
                missing = [o for o in missing if o >= exc.first]
                continue
            for e in page:
                self.put(e)
                found[e.offset] = e
            end = page[-1].offset if page else start
            missing = [o for o in missing if o > end]
        return found
