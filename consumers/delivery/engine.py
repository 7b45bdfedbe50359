"""The delivery engine: the endpoints and their pumps, for webhooks and notifications.

Each enabled endpoint's :class:`~consumers.delivery.machine.DeliveryMachine` is run
by an :class:`~consumers.delivery.pump.EndpointPump`; one
:class:`~consumers.delivery.recorder.Recorder` group-commits every outcome. The
engine owns start-up (``in_flight`` rows left by a crash go back to ``pending``),
shutdown, endpoint changes, health (a disable is said on the system stream),
operator actions and replays. On PostgreSQL every process claims and sends, one
process feeds each endpoint (the lease ``delivery-feed:<consumer name>``), and other
processes' changes and the sweep of a dead process's claims come through
:mod:`consumers.delivery.cluster`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from datetime import datetime

import msgspec

from consumers.delivery.cluster import ClusterWatch, same_work
from consumers.delivery.failed_log import EVERY, FailedLog
from consumers.delivery.feeder import Feeder, new_delivery
from consumers.delivery.history import KEEP_HISTORY, Pruner
from consumers.delivery.kinds import AttemptHook, TargetKind, TargetRefused, origin
from consumers.delivery.ledger import Enqueue, LedgerStore, act
from consumers.delivery.machine import DeliveryMachine, Disable, SetHealth
from consumers.delivery.model import Delivery, Endpoint, NewDelivery
from consumers.delivery.pump import EndpointPump, PumpParts
from consumers.delivery.recorder import Recorder
from consumers.delivery.replay import InvalidRange, ReplayResult, UnknownOffset
from consumers.delivery.sender import Sender
from consumers.filter import EventFilter
from eventlog import EventLog
from eventlog.errors import EventLogError, InvalidInput

__all__ = ["KEEP_HISTORY", "DeliveryEngine"]

logger = logging.getLogger("eventlog.delivery")


class DeliveryEngine:
    """Runs delivery for every endpoint in a :class:`LedgerStore` over one :class:`EventLog`.

    Args:
        log: The open log.
        store: The ledger (see :func:`ledger_for`).
        kinds: Target kinds by name.
        sender: The HTTP sender (a new one, with ``allow_private``, by default).
        allow_private: Allow non-global target addresses.
        system_stream: Where ``delivery.endpoint.disabled`` events go.
        on_attempt: Optional hook called after every attempt (metrics).
        clock: Seconds since the epoch (tests may pass their own).
        rand: Uniform [0, 1) numbers for the retry jitter.
        lease_retry: Seconds between tries to take a feeder lease another process
            holds (the takeover time after it stops); also the orphan sweep's period.
        keep_history: Seconds a finished delivery and its attempts are kept.
        log_failed_every: At most one log line about failed deliveries per endpoint
            this often (seconds; see :mod:`consumers.delivery.failed_log`).
    """

    def __init__(
        self,
        log: EventLog,
        store: LedgerStore,
        *,
        kinds: dict[str, TargetKind],
        sender: Sender | None = None,
        allow_private: bool = False,
        system_stream: str = "system",
        on_attempt: AttemptHook | None = None,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        lease_retry: float = 1.0,
        keep_history: float = KEEP_HISTORY,
        log_failed_every: float = EVERY,
    ) -> None:
        self._pruner = Pruner(store, keep_history, clock)
        self.log = log
        self.store = store
        self.kinds = kinds
        self.sender = sender or Sender(allow_private=allow_private)
        self.system_stream = system_stream
        self.clock = clock
        self._pumps: dict[str, EndpointPump] = {}
        self._recorder = recorder = Recorder(store, clock)
        self._failed = FailedLog(log_failed_every, clock)
        self._parts = PumpParts(
            feeder=Feeder(log, store, recorder, clock=clock),
            recorder=self._recorder,
            sender=self.sender,
            leases=log.leases,
            clock=clock,
            rand=rand,
            on_attempt=on_attempt,
            health=self._health,
            failed=self._failed.failed,
            lease_retry=lease_retry,
        )
        self._lock = asyncio.Lock()
        self._cluster = ClusterWatch(
            store.shared, wake=self.wake, reload=self.reload, period=lease_retry, clock=clock
        )
        self._started = False

    async def start(self) -> None:
        """Open the ledger, return crashed ``in_flight`` rows to pending, start the pumps."""
        if self._started:
            return
        await self.store.open()
        recovered = await self.store.recover(self.clock())
        if recovered:
            logger.info("recovered %d in-flight deliveries after a restart", recovered)
        await self.sender.start()
        self._recorder.start()
        self._started = True
        for endpoint in await self.store.endpoints():
            await self._start_pump(endpoint)
        await self._cluster.start()
        self._pruner.start()

    async def close(self, grace: float = 5.0) -> None:
        """Stop every pump and flush the ledger. Attempts in progress get up to ``grace``
        seconds to finish; claimed rows not sent, and attempts still running, go back to
        pending."""
        if not self._started:
            return
        self._started = False
        await self._pruner.stop()
        await self._cluster.close()
        for pump in self._pumps.values():
            pump.quiesce()
        sends = [t for pump in self._pumps.values() for t in pump.sends]
        if sends and grace > 0:
            await asyncio.wait(sends, timeout=grace)
        for endpoint_id in list(self._pumps):
            await self._stop_pump(endpoint_id)
        await self._recorder.close()
        await self.sender.close()
        self._failed.close()

    async def _start_pump(self, endpoint: Endpoint) -> None:
        kind = self.kinds.get(endpoint.kind)
        if kind is None:
            logger.warning("endpoint %s: unknown kind %r, not started", endpoint.id, endpoint.kind)
        if not self._started or not endpoint.enabled or kind is None:
            return
        if kind.check_stored is not None:
            try:
                kind.check_stored(endpoint)
            except TargetRefused as exc:  # stored by an older version: say what to do
                try:
                    await self._disable(endpoint, str(exc))
                except EventLogError as failed:  # not started all the same
                    logger.warning("endpoint %s: not stored disabled: %s", endpoint.id, failed)
                return
        unfinished = await self._parts.feeder.unfinished(endpoint.id)
        machine = DeliveryMachine(endpoint, unfinished=unfinished)
        self._pumps[endpoint.id] = pump = EndpointPump(machine, kind, self._parts)
        pump.start()

    async def _stop_pump(self, endpoint_id: str) -> None:
        pump = self._pumps.pop(endpoint_id, None)
        if pump is not None:
            await pump.stop()

    @property
    def keep_history(self) -> float:
        """Seconds a finished delivery and its attempts are kept."""
        return self._pruner.keep_history

    def feeding(self) -> set[str]:
        """Ids of the endpoints whose feeder runs in this process (holds the lease)."""
        return {endpoint_id for endpoint_id, pump in self._pumps.items() if pump.feeding}

    async def _health(self, endpoint: Endpoint, action: SetHealth | Disable) -> None:
        """Store a machine's failure streak, or its disable (the pump stops)."""
        try:
            async with self._lock:
                current = await self.store.get_endpoint(endpoint.id)
                if isinstance(action, SetHealth) and current is not None:
                    failing = msgspec.structs.replace(current, failing_since=action.failing_since)
                    await self.store.put_endpoint(failing)
                elif isinstance(action, Disable) and current is not None and current.enabled:
                    await self._disable(current, action.reason)
                    await self._stop_pump(endpoint.id)
        except EventLogError as exc:  # the attempt is recorded all the same
            logger.warning("endpoint %s: could not update its health: %s", endpoint.id, exc)

    async def _disable(self, endpoint: Endpoint, reason: str) -> None:
        """Say that the stored ``endpoint`` is disabled for ``reason``, then store it so.

        Raises:
            EventLogError: The store failed (the system event may be said already).
        """
        # Said before it is stored, so whoever sees the endpoint disabled finds the event.
        target = origin(endpoint.url)
        logger.warning("endpoint %s (%s) disabled: %s", endpoint.id, target, reason)
        data = {"endpoint": endpoint.id, "kind": endpoint.kind, "target": target, "reason": reason}
        with contextlib.suppress(EventLogError):
            await self.log.append(self.system_stream, data, type="delivery.endpoint.disabled")
        disabled = msgspec.structs.replace(
            endpoint, enabled=False, disabled_reason=reason, updated=self.clock()
        )
        await self.store.put_endpoint(disabled)

    async def put_endpoint(self, endpoint: Endpoint) -> None:
        """Store an endpoint (new or changed) and (re)start its pump.

        Raises:
            InvalidInput: ``invalid_endpoint`` (an unknown kind), or the kind's own error.
        """
        kind = self.kinds.get(endpoint.kind)
        if kind is None:
            raise InvalidInput(f"unknown endpoint kind {endpoint.kind!r}", code="invalid_endpoint")
        if kind.validate is not None:
            kind.validate(endpoint)
        async with self._lock:
            await self.store.put_endpoint(endpoint)
            await self._stop_pump(endpoint.id)
            await self._start_pump(endpoint)

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        """Stop an endpoint's pump and delete it with its deliveries."""
        async with self._lock:
            await self._stop_pump(endpoint_id)
            return await self.store.delete_endpoint(endpoint_id)

    async def reload(self, endpoint_id: str | None) -> None:
        """Another process changed endpoint ``endpoint_id`` (None: maybe any): restart
        its pump from the stored copy, stop it if deleted or disabled."""
        async with self._lock:
            if endpoint_id is None:
                stored = {e.id: e for e in await self.store.endpoints()}
            else:
                endpoint = await self.store.get_endpoint(endpoint_id)
                stored = {} if endpoint is None else {endpoint_id: endpoint}
            running = set(self._pumps) if endpoint_id is None else {endpoint_id}
            for ep_id in sorted(stored.keys() | running):
                pump, endpoint = self._pumps.get(ep_id), stored.get(ep_id)
                if pump is not None and endpoint is not None and same_work(pump.endpoint, endpoint):
                    self.wake(ep_id)  # a health note or a new `updated` at most
                    continue
                await self._stop_pump(ep_id)
                if endpoint is not None:
                    await self._start_pump(endpoint)

    def wake(self, endpoint_id: str) -> None:
        """Make an endpoint's pump look at the ledger now."""
        self._tell(endpoint_id, DeliveryMachine.poke)

    def _tell(self, endpoint_id: str, tell: Callable[[DeliveryMachine], None]) -> None:
        """Give an input to the machine of the endpoint's pump (if it runs here) and act on it."""
        pump = self._pumps.get(endpoint_id)
        if pump is not None:
            tell(pump.machine)
            pump.changed()

    async def act(self, endpoint_id: str, delivery_id: str, action: str) -> Delivery | None:
        """``retry`` or ``skip`` one delivery (see
        :func:`~consumers.delivery.machine_rules.apply_operator_action`)."""
        delivery = await act(self.store, endpoint_id, delivery_id, action, self.clock())
        if delivery is not None:
            self._tell(endpoint_id, lambda machine: machine.acted(action))
        return delivery

    async def replay(
        self,
        endpoint: Endpoint,
        *,
        from_offset: int | None = None,
        to_offset: int | None = None,
        from_time: datetime | None = None,
        to_time: datetime | None = None,
        dry_run: bool = False,
    ) -> ReplayResult:
        """Deliver a range ``[from, to)`` of the endpoint's stream again, from the log.

        ``from`` and ``to`` are offsets or times (the first event at or after each);
        ``from`` defaults to the first retained offset, ``to`` to the head. Matching
        events become new deliveries (new ids), seen before or not (backfill).
        ``dry_run`` only counts; the rest go to the ledger 1000 to a batch.

        Raises:
            UnknownOffset: ``from_offset``/``to_offset`` outside the stream.
            InvalidRange: An empty or inverted range.
        """
        stream, now = endpoint.stream, self.clock()
        first, head = await self.log.bounds(stream)
        start, stop = first, head
        if from_offset is not None:
            if not first <= from_offset < head:
                held = f"retained offsets: {first}..{head - 1}" if head > first else "it is empty"
                raise UnknownOffset(f"offset {from_offset} is not in stream {stream!r} ({held})")
            start = from_offset
        elif from_time is not None:
            start = max(first, await self.log.offset_at_time(stream, from_time))
        if to_offset is not None:
            if not first <= to_offset <= head:
                raise UnknownOffset(
                    f"offset {to_offset} is beyond stream {stream!r} (head: {head})"
                )
            stop = to_offset
        elif to_time is not None:
            stop = await self.log.offset_at_time(stream, to_time)
        if stop < start:
            raise InvalidRange(f"empty range: from {start} is after to {stop}")
        matches = EventFilter(endpoint.types, endpoint.key).matches
        scanned = matched = 0
        batch: list[NewDelivery] = []
        async for event in self.log.scan(stream, start, stop):
            scanned += 1
            if not matches(event):
                continue
            matched += 1
            if not dry_run:
                batch.append(new_delivery(event, now, replay=True))
                if len(batch) >= 1000:
                    await self._enqueue_replay(endpoint.id, batch, now)
                    batch = []
        if batch:
            await self._enqueue_replay(endpoint.id, batch, now)
        return ReplayResult(start, stop, scanned, matched, dry_run)

    async def _enqueue_replay(self, endpoint_id: str, rows: list[NewDelivery], now: float) -> None:
        (inserted,), _ = await self.store.write([Enqueue(endpoint_id, rows, None)], (), (), now)
        self._tell(endpoint_id, lambda machine: machine.enqueued(inserted))
