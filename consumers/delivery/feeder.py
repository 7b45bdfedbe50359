"""The feeder of an endpoint: its stream → ledger rows; and the event cache.

Matching events are stored as ``pending`` deliveries in the transaction that
advances the endpoint's offset (through the engine's
:class:`~consumers.delivery.recorder.Recorder`, where a claim made meanwhile joins
it). The feeder pauses while the machine says the backlog is full, re-reading the
count from the ledger now and then (other processes finish deliveries too). The
events read stay in a bounded cache so that sending rarely reads the log again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import msgspec

from consumers.delivery.ledger import ConsumerAdvance, Enqueue, LedgerStore
from consumers.delivery.machine import DeliveryMachine
from consumers.delivery.model import Delivery, Endpoint, NewDelivery, new_delivery_id
from consumers.delivery.recorder import Recorder
from consumers.filter import EventFilter
from eventlog import EventLog
from eventlog.errors import OffsetOutOfRange
from eventlog.holds import Truncation
from eventlog.model import Event

__all__ = ["Feeder", "new_delivery"]

logger = logging.getLogger("eventlog.delivery")

#: Events kept for the senders.
CACHE_SIZE = 20_000


class Feeder:
    """Feeds endpoints from the log and serves their events back to the senders.

    Args:
        log: The open log.
        store: The ledger.
        recorder: Where enqueues are written (the engine's group commit).
        clock: Seconds since the epoch.
        page: Events read (and enqueued) per transaction.
        backlog_recheck: Seconds between re-reads of the unfinished count while paused.
    """

    def __init__(
        self,
        log: EventLog,
        store: LedgerStore,
        recorder: Recorder,
        *,
        clock: Callable[[], float],
        page: int = 500,
        backlog_recheck: float = 1.0,
    ) -> None:
        self.log = log
        self.store = store
        self.recorder = recorder
        self.page = page
        self.clock = clock
        self.backlog_recheck = backlog_recheck
        self._events: dict[tuple[str, int], Event] = {}

    async def run(
        self,
        ep: Endpoint,
        machine: DeliveryMachine,
        progress: asyncio.Event,
        changed: Callable[[], None],
    ) -> None:
        """Feed one endpoint. ``machine`` is told of every enqueue (then ``changed``
        is called) and says when the backlog is full; ``progress`` is set when it may
        be fed again."""
        matches = EventFilter(ep.types, ep.key).matches
        position = await self.log.committed_offset(ep.consumer_name, ep.stream)
        if position is None:
            position = ep.start_offset
        while True:
            while not machine.may_feed:
                progress.clear()
                try:
                    async with asyncio.timeout(self.backlog_recheck):
                        await progress.wait()
                except TimeoutError:
                    machine.counted(await self.unfinished(ep.id))
            try:
                events = await self.log.read(ep.stream, position, self.page)
            except OffsetOutOfRange as exc:
                # Never silently: the log, and the system stream, say what was lost.
                lost = Truncation.of(ep.stream, position, exc.first, consumer=ep.consumer_name)
                logger.warning("endpoint %s: %s", ep.id, lost.describe())
                await self.log.notice("consumer.truncated", msgspec.to_builtins(lost))
                position = exc.first
                continue
            if not events:
                await self.log.wait(ep.stream, position, timeout=5.0)
                continue
            now = self.clock()
            rows = []
            for event in events:
                if matches(event):
                    rows.append(new_delivery(event, now, replay=False))
                    self.cache(event)
            position = events[-1].offset + 1
            advance = ConsumerAdvance(ep.consumer_name, ep.stream, position)
            enqueued = self.recorder.enqueue(Enqueue(ep.id, rows, advance))
            # Told before the commit: a claim made now joins the rows' transaction.
            if rows:
                machine.enqueued(len(rows))
                changed()
            inserted = await enqueued  # on failure the supervisor counts again
            if inserted != len(rows):  # live duplicates are ignored
                machine.enqueued(inserted - len(rows))

    async def unfinished(self, endpoint_id: str) -> int:
        """The endpoint's ``pending`` plus ``in_flight`` deliveries, from the ledger."""
        counts = (await self.store.counts()).get(endpoint_id)
        return 0 if counts is None else counts.pending + counts.in_flight

    def cache(self, event: Event) -> None:
        self._events[(event.stream, event.offset)] = event
        if len(self._events) > CACHE_SIZE:
            for key in list(self._events)[: CACHE_SIZE // 4]:
                del self._events[key]

    def cached(self, delivery: Delivery) -> Event | None:
        """The delivery's event if the cache has it."""
        event = self._events.get((delivery.stream, delivery.offset))
        return event if event is not None and event.id == delivery.event_id else None

    async def event(self, delivery: Delivery) -> Event | None:
        """The delivery's event read from the log, with the ones after it into the cache;
        None if the log no longer has it (retention, or the stream was deleted and reused)."""
        try:
            events = await self.log.read(delivery.stream, delivery.offset, 100)
        except OffsetOutOfRange:
            return None
        for e in events:
            self.cache(e)
        return self.cached(delivery)


def new_delivery(event: Event, now: float, *, replay: bool) -> NewDelivery:
    """A pending delivery row for an event."""
    return NewDelivery(
        id=new_delivery_id(),
        stream=event.stream,
        offset=event.offset,
        event_id=event.id,
        event_type=event.type,
        key=event.key,
        next_attempt_at=now,
        replay=replay,
    )
