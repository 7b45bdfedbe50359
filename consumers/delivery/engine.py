"""The delivery engine: per-endpoint consumer → ledger → sender; webhooks and notifications.

For every enabled endpoint a worker runs two tasks:

* the **feeder** reads the endpoint's stream from its committed offset, keeps
  the events that match its filters, and stores them as ``pending`` delivery
  rows *in the same transaction* that advances the offset
  (:meth:`LedgerStore.enqueue`); it pauses when too many deliveries are
  unfinished (``max_backlog``);
* the **dispatcher** claims due deliveries a window at a time and keeps up to
  ``max_in_flight`` attempts going (:mod:`consumers.delivery.dispatcher`).

This module owns the endpoints and their workers: start-up and shutdown, the
feeder lease, endpoint changes, operator actions and replays
(:mod:`consumers.delivery.replay` scans the range).

Several processes on one database (PostgreSQL): each endpoint's feeder runs
in exactly one process at a time. It holds the lease
``delivery-feed:<consumer name>`` (:func:`eventlog.storage.leases.run_exclusively`;
an advisory lock on PostgreSQL, a process-local lease on memory/SQLite);
the other processes try to take it every ``lease_retry`` seconds, so when the
holder stops or dies another process resumes feeding from the committed
offset. Dispatchers run in every process: claims are disjoint
(``FOR UPDATE SKIP LOCKED``), so nothing is sent twice; other processes'
enqueues and endpoint changes, and the sweep that takes back a dead process's
claims, reach this one through :mod:`consumers.delivery.cluster`.
:meth:`DeliveryEngine.feeding` says which endpoints this process feeds.

Endpoints are isolated: each has its own tasks and every attempt has a
timeout, so a receiver that hangs, resets or trickles bytes only slows its own
endpoint. At start-up :meth:`LedgerStore.recover` returns ``in_flight`` rows left
by a crash to ``pending`` (at-least-once: a receiver may see a delivery twice,
always with the same ``webhook-id``); :meth:`DeliveryEngine.close` gives
attempts in progress a grace period and releases the rest.

An endpoint that fails continuously for ``disable_after`` seconds, or answers
410, is disabled: the reason is stored on the endpoint and a
``delivery.endpoint.disabled`` event is appended to the system stream
(:mod:`consumers.delivery.health`).

Extension point: target kinds
-----------------------------
What is sent and how the answer is judged comes from a :class:`TargetKind`,
chosen by ``Endpoint.kind``. A kind supplies

(a) ``format(endpoint, event, delivery_id, now) -> OutgoingRequest``: the body
    bytes and headers (and optionally another URL) for one attempt. It is
    called for *every* attempt, so time-dependent headers (a signature with a
    fresh timestamp) are fresh; ``delivery_id`` is stable across attempts.
(b) ``classify(endpoint, result, now) -> Classification``: the verdict on an
    :class:`~consumers.delivery.retry.AttemptResult` (status, lower-case
    headers, the first 64 KiB of the body, or the network error). Return
    ``rate_limited`` with ``retry_after`` for a Discord 429 whose JSON body
    says ``retry_after``; return ``disable`` for a Slack 403 ``invalid_token``;
    fall back to :func:`~consumers.delivery.retry.classify` for the rest.
(c) optionally ``validate(endpoint)``: raise ``InvalidInput`` (a ``SpecError``) for bad
    ``options``.

Register kinds by passing ``kinds={"discord": DISCORD, ...}`` to
:class:`DeliveryEngine` (the webhook kind is :data:`consumers.webhook.WEBHOOK`).
Endpoints, the ledger, retries, ordering, rate limits, replay, SSRF checks,
crash recovery and auto-disable are the engine's and work the same for every kind.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

from consumers.delivery.cluster import ClusterWatch, same_work
from consumers.delivery.dispatcher import Dispatcher, release
from consumers.delivery.feeder import Feeder, Worker
from consumers.delivery.health import EndpointHealth
from consumers.delivery.kinds import AttemptHook, OutgoingRequest, TargetKind, redact
from consumers.delivery.ledger import LedgerStore
from consumers.delivery.model import Delivery, Endpoint, Finished, NewDelivery
from consumers.delivery.recorder import Recorder
from consumers.delivery.replay import ReplayResult, UnknownOffset, replay_endpoint
from consumers.delivery.retry import TokenBucket
from consumers.delivery.sender import Sender
from consumers.delivery.stores import ledger_for
from consumers.filter import EventFilter
from eventlog import EventLog
from eventlog.backoff import Backoff
from eventlog.errors import EventLogError, InvalidInput, LogClosed
from eventlog.storage.leases import run_exclusively

__all__ = [
    "AttemptHook",
    "DeliveryEngine",
    "OutgoingRequest",
    "ReplayResult",
    "TargetKind",
    "UnknownOffset",
    "feeder_lease",
    "ledger_for",
    "redact",
]

logger = logging.getLogger("eventlog.delivery")

#: Waits before a failed worker loop runs again: 0.1 s doubling up to 5 s.
SUPERVISE_BACKOFF = Backoff(base=0.1, cap=5.0, jitter=0)


class DeliveryEngine:
    """Runs delivery for every endpoint in a :class:`LedgerStore` over one :class:`EventLog`.

    Args:
        log: The open log.
        store: The ledger (see :func:`ledger_for`).
        kinds: Target kinds by name.
        sender: The HTTP sender (a new one, with ``allow_private``, by default).
        allow_private: Allow non-global target addresses.
        system_stream: Where ``delivery.endpoint.disabled`` events go.
        feed_page: Events the feeder reads per transaction.
        max_backlog: Unfinished deliveries per endpoint before its feeder pauses.
        on_attempt: Optional hook called after every attempt (metrics).
        clock: Seconds since the epoch (tests may pass their own).
        rand: Uniform [0, 1) numbers for the retry jitter.
        lease_retry: Seconds between attempts to take an endpoint's feeder
            lease that another process holds (the takeover time after the
            holder stops).
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
        feed_page: int = 500,
        max_backlog: int = 10_000,
        on_attempt: AttemptHook | None = None,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        lease_retry: float = 1.0,
    ) -> None:
        self.log = log
        self.store = store
        self.kinds = kinds
        self.allow_private = allow_private
        self.sender = sender or Sender(allow_private=allow_private)
        self.system_stream = system_stream
        self.feed_page = feed_page
        self.max_backlog = max_backlog
        self.on_attempt = on_attempt
        self.clock = clock
        self.rand = rand
        self.lease_retry = lease_retry
        self._workers: dict[str, Worker] = {}
        self._recorder = Recorder(store, self._flushed)
        self._feeder = Feeder(log, store, page=feed_page, max_backlog=max_backlog, clock=clock)
        self._lock = asyncio.Lock()
        self._health = EndpointHealth(
            log=log,
            store=store,
            lock=self._lock,
            workers=self._workers,
            system_stream=system_stream,
            clock=clock,
            stop_worker=self._stop_worker,
        )
        self._dispatcher = Dispatcher(
            store=store,
            recorder=self._recorder,
            feeder=self._feeder,
            sender=self.sender,
            kinds=kinds,
            clock=clock,
            rand=rand,
            on_attempt=on_attempt,
            health=self._health.record,
        )
        self._cluster = ClusterWatch(store, self, period=lease_retry, clock=clock)
        self._started = False

    # -- life cycle ------------------------------------------------------------

    async def start(self) -> None:
        """Open the ledger, return crashed ``in_flight`` rows to pending, start the workers."""
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
            await self._start_worker(endpoint)
        await self._cluster.start()

    async def close(self, grace: float = 5.0) -> None:
        """Stop every worker and flush the ledger.

        Attempts in progress get up to ``grace`` seconds to finish (so a
        graceful shutdown does not resend them); claimed deliveries not yet
        sent, and attempts still running after the grace, go back to pending.
        """
        if not self._started:
            return
        self._started = False
        await self._cluster.close()
        await self._health.drain()
        workers = list(self._workers)
        for endpoint_id in workers:
            self._quiesce(self._workers[endpoint_id])
        slots = [t for w in self._workers.values() for t in w.slots]
        if slots and grace > 0:
            await asyncio.wait(slots, timeout=grace)
        for endpoint_id in workers:
            await self._stop_worker(endpoint_id)
        await self._recorder.close()
        await self.sender.close()

    async def _start_worker(self, endpoint: Endpoint) -> None:
        if not self._started or not endpoint.enabled or endpoint.kind not in self.kinds:
            if endpoint.kind not in self.kinds:
                logger.warning(
                    "endpoint %s: unknown kind %r, not started", endpoint.id, endpoint.kind
                )
            return
        counts = (await self.store.counts()).get(endpoint.id)
        worker = Worker(endpoint, EventFilter(endpoint.types, endpoint.key))
        worker.unfinished = 0 if counts is None else counts.pending + counts.in_flight
        if endpoint.rate_limit:
            worker.bucket = TokenBucket(endpoint.rate_limit)
        self._workers[endpoint.id] = worker
        worker.tasks = [
            asyncio.create_task(
                self._supervise(worker, self._feed_exclusively),
                name=f"delivery-feed-{endpoint.id}",
            ),
            asyncio.create_task(
                self._supervise(worker, self._dispatcher.run), name=f"delivery-send-{endpoint.id}"
            ),
        ]

    def _quiesce(self, worker: Worker) -> None:
        """No new attempts: stop feeding and claiming, release what was claimed."""
        for task in worker.tasks:
            task.cancel()
        now = self.clock()
        while worker.claimed:  # claimed but never sent: back to pending
            self._recorder.put_nowait(release(worker.claimed.popleft(), now))

    async def _stop_worker(self, endpoint_id: str) -> None:
        worker = self._workers.pop(endpoint_id, None)
        if worker is None:
            return
        tasks = [*worker.tasks, *worker.slots]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        now = self.clock()
        while worker.claimed:  # claimed but never sent: back to pending
            self._recorder.put_nowait(release(worker.claimed.popleft(), now))

    async def _feed_exclusively(self, worker: Worker) -> None:
        """Run the endpoint's feeder while this process holds its lease."""
        await run_exclusively(
            self.log.leases,
            feeder_lease(worker.endpoint),
            lambda: self._feed(worker),
            retry=self.lease_retry,
        )

    async def _feed(self, worker: Worker) -> None:
        worker.feeding = True
        try:
            # Another process may have fed (and sent) until now: take the
            # ledger's count, and claim what it left pending.
            worker.unfinished = await self._feeder.unfinished(worker.endpoint.id)
            worker.poke()
            await self._feeder.run(worker)
        finally:
            worker.feeding = False

    def feeding(self) -> set[str]:
        """Ids of the endpoints whose feeder runs in this process (holds the lease)."""
        return {endpoint_id for endpoint_id, w in self._workers.items() if w.feeding}

    async def _supervise(self, worker: Worker, loop: Callable[[Worker], Awaitable[None]]) -> None:
        """Keep a worker loop running: storage hiccups are logged and retried."""
        failures = 0
        while True:
            try:
                await loop(worker)
                return
            except LogClosed:
                return
            except (EventLogError, OSError) as exc:
                failures += 1
                logger.warning(
                    "endpoint %s: %s; retrying in %.1f s",
                    worker.endpoint.id,
                    exc,
                    SUPERVISE_BACKOFF.delay(failures),
                )
            except Exception:
                failures += 1
                logger.exception("endpoint %s: worker failed; restarting", worker.endpoint.id)
            await asyncio.sleep(SUPERVISE_BACKOFF.delay(failures))

    # -- endpoints ---------------------------------------------------------------

    def validate(self, endpoint: Endpoint) -> None:
        """Check an endpoint against its kind (unknown kind, bad options).

        Raises:
            InvalidInput: ``invalid_endpoint``, or the kind's own error.
        """
        kind = self.kinds.get(endpoint.kind)
        if kind is None:
            raise InvalidInput(f"unknown endpoint kind {endpoint.kind!r}", code="invalid_endpoint")
        if kind.validate is not None:
            kind.validate(endpoint)

    async def put_endpoint(self, endpoint: Endpoint) -> None:
        """Store an endpoint (new or changed) and (re)start its worker."""
        self.validate(endpoint)
        async with self._lock:
            await self.store.put_endpoint(endpoint)
            await self._stop_worker(endpoint.id)
            await self._start_worker(endpoint)

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        """Stop an endpoint's worker and delete it with its deliveries."""
        async with self._lock:
            await self._stop_worker(endpoint_id)
            return await self.store.delete_endpoint(endpoint_id)

    async def reload(self, endpoint_id: str | None) -> None:
        """Another process changed endpoint ``endpoint_id`` (None: maybe any): restart
        its worker from the stored copy, stop it if deleted or disabled."""
        async with self._lock:
            if endpoint_id is None:
                stored = {e.id: e for e in await self.store.endpoints()}
            else:
                endpoint = await self.store.get_endpoint(endpoint_id)
                stored = {} if endpoint is None else {endpoint_id: endpoint}
            running = set(self._workers) if endpoint_id is None else {endpoint_id}
            for ep_id in sorted(stored.keys() | running):
                worker, endpoint = self._workers.get(ep_id), stored.get(ep_id)
                if (
                    worker is not None
                    and endpoint is not None
                    and same_work(worker.endpoint, endpoint)
                ):
                    worker.endpoint = endpoint  # a health note (failing_since) only
                    worker.poke()
                    continue
                await self._stop_worker(ep_id)
                if endpoint is not None:
                    await self._start_worker(endpoint)

    async def head(self, stream: str) -> int:
        """The stream's next offset (0 if it does not exist yet)."""
        return (await self.log.bounds(stream))[1]

    def wake(self, endpoint_id: str) -> None:
        """Make an endpoint's dispatcher look at the ledger now."""
        worker = self._workers.get(endpoint_id)
        if worker is not None:
            worker.poke()

    def _flushed(self, batch: list[Finished]) -> None:
        for finished in batch:
            worker = self._workers.get(finished.endpoint_id)
            if worker is None:
                continue
            if finished.attempt is not None and finished.status in ("delivered", "failed"):
                worker.unfinished -= 1
                worker.progress.set()
            worker.poke()

    # -- operator actions --------------------------------------------------------

    async def act(self, endpoint_id: str, delivery_id: str, action: str) -> Delivery | None:
        """``retry`` or ``skip`` one delivery (see :func:`apply_operator_action`)."""
        delivery = await self.store.act(endpoint_id, delivery_id, action, self.clock())
        if delivery is not None:
            worker = self._workers.get(endpoint_id)
            if worker is not None:
                if action == "retry":
                    worker.unfinished += 1
                else:
                    worker.unfinished -= 1
                    worker.progress.set()
            self.wake(endpoint_id)
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
        """Deliver a range of the endpoint's stream again, straight from the log.

        The range is ``[from, to)``: offsets, or times (the first event at or
        after each time); ``from`` defaults to the first retained offset, ``to``
        to the head. Matching events become new deliveries (new ids) whether
        or not the endpoint ever saw them (backfill). ``dry_run`` only counts.

        Raises:
            UnknownOffset: ``from_offset``/``to_offset`` outside the stream.
            InvalidRange: An empty or inverted range.
        """
        return await replay_endpoint(
            self.log,
            endpoint,
            from_offset=from_offset,
            to_offset=to_offset,
            from_time=from_time,
            to_time=to_time,
            dry_run=dry_run,
            clock=self.clock,
            enqueue=self._enqueue_replay,
        )

    async def _enqueue_replay(self, endpoint_id: str, rows: list[NewDelivery], now: float) -> None:
        inserted = await self.store.enqueue(endpoint_id, rows, consumer=None, now=now)
        worker = self._workers.get(endpoint_id)
        if worker is not None:
            worker.unfinished += inserted
        self.wake(endpoint_id)


def feeder_lease(endpoint: Endpoint) -> str:
    """The name of the lease that lets one process feed ``endpoint``."""
    return f"delivery-feed:{endpoint.consumer_name}"
