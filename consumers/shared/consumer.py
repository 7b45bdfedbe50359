"""A shared consumer: the pump around :mod:`consumers.shared.rules` and the delivery ledger.

Events reach the ledger *on demand*: a claim that finds fewer claimable rows
than it wants reads the next page of the stream from the consumer's feed
position (the committed offset of ``<name>.feed``) and enqueues the matching
events as ``pending`` rows in the transaction that advances that position
(:meth:`~consumers.delivery.ledger.LedgerStore.write`). No task runs in the
background: any process serving any worker feeds, claims and acks (on
PostgreSQL two processes feeding at once insert each event once: ledger rows
are unique per offset).

Every claim, ack, nack and extension is one
:meth:`~consumers.delivery.ledger.LedgerStore.rewrite`: the rows are read
locked, a pure rule decides, the ledger stores it. Rows that reached
``max_deliver`` are appended to ``<name>.parked``
(:func:`consumers.parking.park`, idempotent by the row's id) and then marked
``failed``. After acks the consumer's committed offset (``<name>`` on its
stream) moves to the ack floor: the offset of the oldest unacked row, or the
feed position when none is left.

A claim long-polls without holding a database connection: it waits for an
append to the stream, an ack or nack in this process, the moment a delayed
row (or, with per-key order, an expiring claim) becomes claimable again, or
``poll`` seconds (other processes do not announce their acks; without per-key
order a claim reads only the rows it can hand out, so an expired claim is
seen at the next look), whichever comes first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec

from consumers.delivery.feeder import new_delivery
from consumers.delivery.ledger import ConsumerAdvance, Enqueue, LedgerStore, Pick
from consumers.delivery.model import Delivery
from consumers.filter import EventFilter
from consumers.parking import park, parked_stream
from consumers.shared import rules
from consumers.shared.events import EventCache
from consumers.shared.model import (
    MAX_CLAIMS,
    Claim,
    HeldClaim,
    SharedConsumerInfo,
    Undelivered,
    check_claim,
    check_worker,
)
from consumers.shared.rules import ClaimId
from consumers.shared.spec import SharedSpec
from eventlog import EventLog
from eventlog.errors import InvalidField, OffsetOutOfRange
from eventlog.holds import Truncation

logger = logging.getLogger("eventlog.consumers")

__all__ = ["SharedConsumer", "Tuning"]


def _expires(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)


@dataclass(frozen=True)
class Tuning:
    """What every shared consumer of one :class:`~consumers.shared.SharedConsumers`
    shares (its arguments of the same names say what each means)."""

    clock: Callable[[], float]
    closing: asyncio.Event
    window: int
    page: int
    poll: float


class SharedConsumer:
    """One shared consumer of one log (get it from :class:`~consumers.shared.SharedConsumers`).

    Workers are named by the caller (any non-empty string): a claim is held by
    the worker it was issued to, and only that worker may ack, nack or extend it.
    """

    def __init__(
        self,
        log: EventLog,
        ledger: LedgerStore,
        name: str,
        spec: SharedSpec,
        tuning: Tuning,
    ) -> None:
        self.log = log
        self.ledger = ledger
        self.name = name
        self.endpoint_id = f"shared:{name}"
        self.feed_name = f"{name}.feed"
        self.tuning = tuning
        self.clock = tuning.clock
        self.deleted = False
        self._changed = asyncio.Event()
        self._feed_lock = asyncio.Lock()
        self._feeds = 0
        self._floor_lock = asyncio.Lock()
        self._acks = 0
        self._floored = 0
        self._floor: int | None = None
        self._floor_seq = 0
        self._events = EventCache(log, tuning.window)
        self.spec = spec
        self.filter = EventFilter(spec.types, spec.key)

    def respec(self, spec: SharedSpec) -> None:
        """Take a changed spec (same stream)."""
        if spec != self.spec:
            self.spec = spec
            self.filter = EventFilter(spec.types, spec.key)
            self._poke()

    def _poke(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- work ------------------------------------------------------------------

    async def claim(self, worker: str, max: int = 10, wait: float = 0.0) -> list[Claim]:
        """Claim up to ``max`` events for ``worker``, waiting up to ``wait`` seconds for one.

        Returns as soon as at least one event is claimed, or ``[]`` after ``wait``.

        Raises:
            InvalidField: ``worker``, ``max`` (1-1000) or ``wait`` (0-60 s) out of range.
        """
        check_claim(worker, max, wait)
        deadline = self.clock() + wait
        while True:
            changed = self._changed
            feeds = self._feeds
            plan = await self._claim_rows(max)
            rows, to_park, fed = plan.claimed, plan.park, False
            room = not self.spec.ordered_by_key or plan.active < self.tuning.window
            if len(rows) < max and room:
                fed = await self._feed(feeds)
                if fed:
                    plan = await self._claim_rows(max - len(rows))
                    rows = rows + plan.claimed
                    to_park = list({d.id: d for d in [*to_park, *plan.park]}.values())
            if to_park:
                await self._park(to_park)
            if rows:
                return await self._claims(rows, worker)
            if to_park or fed:
                continue
            now = self.clock()
            if now >= deadline or self.deleted or self.tuning.closing.is_set():
                return []
            until = deadline if plan.wake_at is None else min(deadline, plan.wake_at)
            await self._wait(changed, min(until - now, self.tuning.poll), room)

    async def ack(self, worker: str, claims: Sequence[str]) -> int:
        """Ack claims (all or none): their events are done. Returns how many.

        Raises:
            ClaimNotFound, ClaimExpired, ClaimNotHeld, AlreadyAcked: For the
                first claim that cannot be acked (nothing changes then).
        """
        ids = self._ids(worker, claims)
        now = self.clock()
        n = await self.ledger.rewrite(
            self.endpoint_id,
            Pick(ids=ids),
            lambda rows: rules.ack(rows, claims, worker=worker, now=now),
        )
        if self.spec.ordered_by_key:
            self._poke()  # the next event of each key may go out now
        await self._commit_floor()
        return n

    async def nack(self, worker: str, claims: Sequence[str], delay: float = 0.0) -> int:
        """Give claims back (all or none), to be handed out again after ``delay`` seconds.

        Raises:
            InvalidDelay: ``delay`` below 0, above a day, or not a number.
            ClaimNotFound, ClaimExpired, ClaimNotHeld, AlreadyAcked: As for :meth:`ack`.
        """
        delay = rules.check_delay(delay)
        ids = self._ids(worker, claims)
        now = self.clock()
        n = await self.ledger.rewrite(
            self.endpoint_id,
            Pick(ids=ids),
            lambda rows: rules.nack(rows, claims, worker=worker, now=now, delay=delay),
        )
        self._poke()
        return n

    async def in_progress(self, worker: str, claims: Sequence[str]) -> datetime:
        """Extend claims (all or none) by ``ack_wait`` from now; returns the new expiry.

        Raises:
            ClaimNotFound, ClaimExpired, ClaimNotHeld, AlreadyAcked: As for :meth:`ack`.
        """
        ids = self._ids(worker, claims)
        now = self.clock()
        ack_wait = self.spec.ack_wait
        until = await self.ledger.rewrite(
            self.endpoint_id,
            Pick(ids=ids),
            lambda rows: rules.extend(rows, claims, worker=worker, now=now, ack_wait=ack_wait),
        )
        return _expires(until)

    async def claims(
        self, worker: str, *, max: int = 10, wait: float = 30.0
    ) -> AsyncIterator[HeldClaim]:
        """Claim forever, one :class:`HeldClaim` at a time (``async for c in shared.claims(w)``)."""
        while not self.deleted and not self.tuning.closing.is_set():
            for claim in await self.claim(worker, max, wait):
                yield HeldClaim(self, worker, claim)

    def _ids(self, worker: str, claims: Sequence[str]) -> tuple[str, ...]:
        check_worker(worker)
        if isinstance(claims, str) or not isinstance(claims, Sequence):
            raise InvalidField("claims must be a list of claim ids", path="$.claims")
        if len(claims) > MAX_CLAIMS:
            raise InvalidField(f"at most {MAX_CLAIMS} claims at once", path="$.claims")
        return tuple(ClaimId.parse(c).delivery_id for c in claims)

    # -- the ledger ------------------------------------------------------------

    async def _claim_rows(self, limit: int) -> rules.ClaimPlan:
        now = self.clock()
        spec = self.spec
        # Per-key order needs every unfinished row of the window (a claimed key
        # blocks its later events); without it the store hands over the due ones.
        pick = (
            Pick(active=self.tuning.window) if spec.ordered_by_key else Pick(active=limit, due=now)
        )
        return await self.ledger.rewrite(
            self.endpoint_id,
            pick,
            lambda rows: rules.claim(
                rows,
                now=now,
                limit=limit,
                ack_wait=spec.ack_wait,
                max_deliver=spec.max_deliver,
                ordered_by_key=spec.ordered_by_key,
            ),
        )

    async def _feed(self, seen: int) -> bool:
        """Enqueue the next page of the stream; False if there is none.

        ``seen`` is :attr:`_feeds` before the caller looked at the ledger: if
        another claim fed it since, that is new rows too (True, without a read).
        """
        async with self._feed_lock:
            if self._feeds != seen:
                return True
            stream = self.spec.stream
            position = await self.log.committed_offset(self.feed_name, stream) or 0
            try:
                events = await self.log.read(stream, position, self.tuning.page)
            except OffsetOutOfRange as exc:  # retention took events nobody claimed
                # Never silently: the log, and the system stream, say what was lost.
                lost = Truncation.of(stream, position, exc.first, consumer=self.name)
                logger.warning("shared consumer %s: %s", self.name, lost.describe())
                await self.log.notice("consumer.truncated", msgspec.to_builtins(lost))
                events = await self.log.read(stream, exc.first, self.tuning.page)
            if not events:
                return False
            now = self.clock()
            rows = []
            for event in events:
                if self.filter.matches(event):
                    rows.append(new_delivery(event, now, replay=False))
                    self._events.put(event)
            advance = ConsumerAdvance(self.feed_name, stream, events[-1].offset + 1)
            await self.ledger.write([Enqueue(self.endpoint_id, rows, advance)], (), (), now)
            self._feeds += 1
        if len(rows) < len(events):
            await self._commit_floor()  # skipped events move the floor too
        return True

    async def _claims(self, rows: Sequence[Delivery], worker: str) -> list[Claim]:
        events = await self._events.of(self.spec.stream, rows)
        out = []
        gone = []
        for d in rows:
            event = events.get(d.offset)
            if event is None or event.id != d.event_id:
                gone.append(d)
                continue
            out.append(
                Claim(
                    id=str(ClaimId.of(d, worker)),
                    offset=d.offset,
                    stream=d.stream,
                    attempt=d.attempts,
                    expires=_expires(d.next_attempt_at or 0.0),
                    event=event,
                )
            )
        if gone:  # removed by retention, or the stream was deleted: nothing to hand out
            now = self.clock()
            await self.ledger.rewrite(
                self.endpoint_id,
                Pick(ids=tuple(d.id for d in gone)),
                lambda found: rules.parked(found, gone, now, why="event no longer in the log"),
            )
            await self._commit_floor()
        return out

    async def _park(self, rows: Sequence[Delivery]) -> None:
        events = await self._events.of(self.spec.stream, rows)
        for d in rows:
            event = events.get(d.offset)
            if event is not None and event.id == d.event_id:
                error = Undelivered(f"handed out {d.attempts} times without an ack")
                await park(self.log, self.name, event, error, d.attempts, id=d.id)
        now = self.clock()
        await self.ledger.rewrite(
            self.endpoint_id,
            Pick(ids=tuple(d.id for d in rows)),
            lambda found: rules.parked(found, rows, now),
        )
        await self._commit_floor()

    async def _commit_floor(self) -> None:
        """Commit the ack floor as the consumer's offset (concurrent calls coalesce)."""
        self._acks += 1
        mine = self._acks
        async with self._floor_lock:
            if self._floored >= mine:
                return
            target = self._acks
            floor = await self.ack_floor()
            if self._floor is None or floor > self._floor:
                await self.log.commit_offset(self.name, self.spec.stream, floor)
                self._floor = floor
            self._floored = target

    async def ack_floor(self) -> int:
        """Everything below this offset is acked (or parked)."""
        # The feed position first: rows enqueued after this read lie above it.
        fed = await self.log.committed_offset(self.feed_name, self.spec.stream) or 0
        first = None
        for status in ("pending", "in_flight"):
            rows = await self.ledger.deliveries(
                self.endpoint_id, status=status, from_seq=self._floor_seq, limit=1
            )
            if rows and (first is None or rows[0].seq < first.seq):
                first = rows[0]
        if first is None:
            return fed
        self._floor_seq = first.seq  # rows before it are finished for good
        return min(first.offset, fed)

    async def _wait(self, changed: asyncio.Event, timeout: float, appends: bool) -> None:
        waits: list[asyncio.Future[bool]] = [
            asyncio.ensure_future(changed.wait()),
            asyncio.ensure_future(self.tuning.closing.wait()),
        ]
        if appends:
            fed = await self.log.committed_offset(self.feed_name, self.spec.stream) or 0
            appended = self.log.wait(self.spec.stream, fed, timeout)
            waits.append(asyncio.ensure_future(appended))
        try:
            await asyncio.wait(waits, timeout=max(timeout, 0.0), return_when="FIRST_COMPLETED")
        finally:
            for w in waits:
                w.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    # -- state -----------------------------------------------------------------

    async def info(self) -> SharedConsumerInfo:
        """The spec with the ack floor, head, pending/claimed/parked counts and oldest age."""
        spec = self.spec
        floor = await self.ack_floor()
        fed = await self.log.committed_offset(self.feed_name, spec.stream) or 0
        first, head = await self.log.bounds(spec.stream)
        counts = (await self.ledger.counts()).get(self.endpoint_id)
        pending = 0 if counts is None else counts.pending
        claimed = 0 if counts is None else counts.in_flight
        parked_first, parked_head = await self.log.bounds(parked_stream(self.name))
        age = None
        if floor < head:
            try:
                oldest = await self.log.read(spec.stream, max(floor, first), 1)
            except OffsetOutOfRange:
                oldest = []
            if oldest:
                age = max(self.clock() - oldest[0].time.timestamp(), 0.0)
        return SharedConsumerInfo(
            name=self.name,
            stream=spec.stream,
            types=list(spec.types),
            key=spec.key,
            ack_wait=spec.ack_wait,
            max_deliver=spec.max_deliver,
            ordered_by_key=spec.ordered_by_key,
            ack_floor=floor,
            head=head,
            pending=pending + max(head - max(fed, first), 0),
            claimed=claimed,
            parked=parked_head - parked_first,
            oldest_unacked_age=age,
        )
