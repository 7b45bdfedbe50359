"""The delivery engine: per-endpoint consumer → ledger → sender; webhooks and notifications.

For every enabled endpoint a worker runs two tasks:

* the **feeder** reads the endpoint's stream from its committed offset, keeps
  the events that match its filters, and stores them as ``pending`` delivery
  rows *in the same transaction* that advances the offset
  (:meth:`LedgerStore.enqueue`); it pauses when too many deliveries are
  unfinished (``max_backlog``);
* the **dispatcher** claims due deliveries a window at a time
  (``pending → in_flight``, by the ordering rule of
  :func:`~consumers.delivery.ledger.select_claimable`) and keeps up to
  ``max_in_flight`` *slot* tasks sending them (paced by the rate limit); each
  answer is classified and the attempt and the delivery's next state go to
  one group-committing recorder shared by all endpoints
  (:mod:`consumers.delivery.recorder`). A row stays ``in_flight`` until its
  outcome is written, so nothing is claimed twice.

(:mod:`consumers.delivery.feeder` holds the feeder; this module the rest.)

Several processes on one database (PostgreSQL): each endpoint's feeder runs
in exactly one process at a time. It holds the lease
``delivery-feed:<consumer name>`` (:func:`eventlog.storage.leases.run_exclusively`;
an advisory lock on PostgreSQL, a process-local lease on memory/SQLite);
the other processes try to take it every ``lease_retry`` seconds, so when the
holder stops or dies another process resumes feeding from the committed
offset. Dispatchers run in every process: claims are disjoint
(``FOR UPDATE SKIP LOCKED``), so nothing is sent twice. :meth:`DeliveryEngine.feeding`
says which endpoints this process feeds.

Endpoints are isolated: each has its own tasks and every attempt has a
timeout, so a receiver that hangs, resets or trickles bytes only slows its own
endpoint. At start-up :meth:`LedgerStore.recover` returns ``in_flight`` rows left
by a crash to ``pending`` (at-least-once: a receiver may see a delivery twice,
always with the same ``webhook-id``); :meth:`DeliveryEngine.close` gives
attempts in progress a grace period and releases the rest.

An endpoint that fails continuously for ``disable_after`` seconds, or answers
410, is disabled: the reason is stored on the endpoint and a
``delivery.endpoint.disabled`` event is appended to the system stream.

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
(c) optionally ``validate(endpoint)``: raise ``ValueError`` for bad ``options``.

Register kinds by passing ``kinds={"discord": DISCORD, ...}`` to
:class:`DeliveryEngine` (the webhook kind is :data:`consumers.webhook.WEBHOOK`).
Endpoints, the ledger, retries, ordering, rate limits, replay, SSRF checks,
crash recovery and auto-disable are the engine's and work the same for every kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import msgspec

from consumers.delivery.feeder import Feeder, Worker, new_delivery
from consumers.delivery.kinds import AttemptHook, OutgoingRequest, TargetKind, origin, redact
from consumers.delivery.ledger import Claimed, LedgerStore
from consumers.delivery.model import (
    Attempt,
    Delivery,
    Endpoint,
    Finished,
    NewDelivery,
    TypeFilter,
)
from consumers.delivery.recorder import Recorder
from consumers.delivery.replay import ReplayResult, UnknownOffset, replay_range
from consumers.delivery.retry import (
    AttemptResult,
    Classification,
    TokenBucket,
    next_step,
    update_health,
)
from consumers.delivery.sender import Sender
from consumers.delivery.stores import ledger_for
from eventlog import EventLog
from eventlog.errors import EventLogError, LogClosed
from eventlog.storage.leases import leases_for, run_exclusively

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
        self._started = False
        self._background: set[asyncio.Task[None]] = set()

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

    async def close(self, grace: float = 5.0) -> None:
        """Stop every worker and flush the ledger.

        Attempts in progress get up to ``grace`` seconds to finish (so a
        graceful shutdown does not resend them); claimed deliveries not yet
        sent, and attempts still running after the grace, go back to pending.
        """
        if not self._started:
            return
        self._started = False
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
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
        worker = Worker(endpoint, TypeFilter(endpoint.types, endpoint.key))
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
                self._supervise(worker, self._dispatch), name=f"delivery-send-{endpoint.id}"
            ),
        ]

    def _quiesce(self, worker: Worker) -> None:
        """No new attempts: stop feeding and claiming, release what was claimed."""
        for task in worker.tasks:
            task.cancel()
        now = self.clock()
        while worker.claimed:  # claimed but never sent: back to pending
            self._recorder.put_nowait(_release(worker.claimed.popleft(), now))

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
            self._recorder.put_nowait(_release(worker.claimed.popleft(), now))

    async def _feed_exclusively(self, worker: Worker) -> None:
        """Run the endpoint's feeder while this process holds its lease."""
        await run_exclusively(
            leases_for(self.log.storage),
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
        delay = 0.1
        while True:
            try:
                await loop(worker)
                return
            except LogClosed:
                return
            except (EventLogError, OSError) as exc:
                logger.warning(
                    "endpoint %s: %s; retrying in %.1f s", worker.endpoint.id, exc, delay
                )
            except Exception:
                logger.exception("endpoint %s: worker failed; restarting", worker.endpoint.id)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    # -- endpoints ---------------------------------------------------------------

    def validate(self, endpoint: Endpoint) -> None:
        """Check an endpoint against its kind (unknown kind, bad options): ValueError."""
        kind = self.kinds.get(endpoint.kind)
        if kind is None:
            raise ValueError(f"unknown endpoint kind {endpoint.kind!r}")
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

    async def head(self, stream: str) -> int:
        """The stream's next offset (0 if it does not exist yet)."""
        info = await self.log.storage.stream_info(stream)
        return 0 if info is None else info.next_offset

    def wake(self, endpoint_id: str) -> None:
        """Make an endpoint's dispatcher look at the ledger now."""
        worker = self._workers.get(endpoint_id)
        if worker is not None:
            worker.poke()

    async def _update_endpoint(self, endpoint_id: str, **changes: Any) -> Endpoint | None:
        async with self._lock:
            current = await self.store.get_endpoint(endpoint_id)
            if current is None:
                return None
            updated = msgspec.structs.replace(current, **changes)
            await self.store.put_endpoint(updated)
            worker = self._workers.get(endpoint_id)
            if worker is not None:
                worker.endpoint = updated
            return updated

    async def _disable(self, endpoint: Endpoint, reason: str) -> None:
        now = self.clock()
        async with self._lock:
            current = await self.store.get_endpoint(endpoint.id)
            if current is None or not current.enabled:
                return  # deleted, or another attempt disabled it first
            updated = msgspec.structs.replace(
                current, enabled=False, disabled_reason=reason, updated=now
            )
            await self.store.put_endpoint(updated)
            worker = self._workers.get(endpoint.id)
            if worker is not None:
                worker.endpoint = updated
        logger.warning("endpoint %s (%s) disabled: %s", endpoint.id, origin(endpoint.url), reason)
        with contextlib.suppress(EventLogError):
            await self.log.append(
                self.system_stream,
                {
                    "endpoint": endpoint.id,
                    "kind": endpoint.kind,
                    "target": origin(endpoint.url),
                    "reason": reason,
                },
                type="delivery.endpoint.disabled",
            )
        # Stop the worker from outside its own tasks (keep a reference: a task
        # nobody holds may be garbage-collected before it ran).
        task = asyncio.get_running_loop().create_task(self._stop_disabled(endpoint.id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _stop_disabled(self, endpoint_id: str) -> None:
        async with self._lock:
            current = await self.store.get_endpoint(endpoint_id)
            if current is None or not current.enabled:
                await self._stop_worker(endpoint_id)

    # -- dispatching -------------------------------------------------------------

    async def _dispatch(self, worker: Worker) -> None:
        """Claim deliveries a window at a time and keep ``max_in_flight`` attempts going.

        Claimed rows wait in ``worker.claimed`` (``in_flight`` in the ledger) for
        a free slot; a window is twice ``max_in_flight`` and the next one is
        claimed when half of it is used, so the slots do not wait for a ledger
        transaction (which may take milliseconds behind a busy writer). ``worker.more`` says whether
        a claim can find anything new: it is set by every enqueue, every
        recorded outcome, operator actions and when ``wake_at`` comes.
        """
        wake_at: float | None = None
        while True:
            worker.wake.clear()
            ep = worker.endpoint
            limit = 1 if ep.ordering == "ordered" else ep.max_in_flight
            self._fill(worker, limit)
            window = 1 if ep.ordering == "ordered" else 2 * limit
            if worker.more and len(worker.claimed) < max(1, window // 2):
                worker.more = False
                want = window - len(worker.claimed)
                claimed = await self._claim(ep, want)
                worker.claimed.extend(claimed.rows)
                wake_at = claimed.wake_at
                if len(claimed.rows) == want:
                    worker.more = True
                self._fill(worker, limit)
            timeout = None if wake_at is None else max(0.0, wake_at - self.clock())
            try:
                async with asyncio.timeout(timeout):
                    await worker.wake.wait()
            except TimeoutError:
                worker.more = True
                wake_at = None

    async def _claim(self, ep: Endpoint, want: int) -> Claimed:
        # Shielded: if the dispatcher is cancelled (endpoint changed, shutdown)
        # while the claim's transaction runs, its rows are released, not left
        # in flight until the next restart.
        future = asyncio.ensure_future(self.store.claim(ep.id, ep.ordering, self.clock(), want))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            future.add_done_callback(self._release_claimed)
            raise

    def _release_claimed(self, future: asyncio.Future[Claimed]) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        now = self.clock()
        for delivery in future.result().rows:
            self._recorder.put_nowait(_release(delivery, now))

    def _fill(self, worker: Worker, limit: int) -> None:
        # A slot is a task that sends claimed deliveries one after another
        # until none are left: no task per delivery on the hot path.
        while len(worker.slots) < min(limit, len(worker.claimed)):
            task = asyncio.create_task(self._slot(worker), name=f"delivery-{worker.endpoint.id}")
            worker.slots.add(task)
            task.add_done_callback(worker.slots.discard)

    async def _slot(self, worker: Worker) -> None:
        try:
            while worker.claimed:
                ep = worker.endpoint
                limit = 1 if ep.ordering == "ordered" else ep.max_in_flight
                if len(worker.sending) >= limit:
                    return  # the limit went down: too many slots
                delivery = worker.claimed.popleft()
                worker.sending[delivery.id] = delivery
                try:
                    await self._send(worker, delivery)
                finally:
                    worker.sending.pop(delivery.id, None)
                if len(worker.claimed) in (limit - 1, 0):
                    worker.wake.set()  # the window is half used (or empty): claim more
        finally:
            worker.wake.set()

    async def _send(self, worker: Worker, delivery: Delivery) -> None:
        ep = worker.endpoint
        finished: Finished | None = None
        try:
            if worker.bucket is not None:
                wait = worker.bucket.take(time.monotonic())
                if wait > 0:
                    await asyncio.sleep(wait)
            finished = await self._attempt(ep, delivery)
            # The slot is free as soon as the attempt is over: the row stays
            # in_flight in the ledger until the recorder has written the
            # outcome (then _flushed wakes the dispatcher), so nothing is
            # claimed twice, and a crash in between only means a resend.
            self._recorder.put_nowait(finished)
        except asyncio.CancelledError:
            if finished is None:
                self._recorder.put_nowait(_release(delivery, self.clock()))
            raise

    async def _attempt(self, ep: Endpoint, delivery: Delivery) -> Finished:
        kind = self.kinds[ep.kind]
        started = self.clock()
        result = AttemptResult(  # replaced below unless the event is gone
            status=None,
            headers={},
            body=b"",
            error="invalid",
            message=f"event {delivery.stream}@{delivery.offset} is no longer in the log",
            duration=0.0,
        )
        try:
            event = await self._feeder.event(delivery)
            if event is not None:
                request = kind.format(ep, event, delivery.id, started)
                headers = {**ep.headers, **request.headers}
                result = await self.sender.post(
                    request.url or ep.url, request.body, headers, ep.timeout
                )
            now = self.clock()
            classification = kind.classify(ep, result, now)
        except Exception as exc:  # a target kind's bug: a recorded, retried attempt
            logger.exception("endpoint %s: the %r target kind failed", ep.id, ep.kind)
            now = self.clock()
            reason = f"internal error in the {ep.kind!r} target kind: {type(exc).__name__}"
            result = AttemptResult(None, {}, b"", "invalid", reason, now - started)
            classification = Classification("retry", reason)
        step = next_step(
            ep.retry,
            classification,
            attempts=delivery.attempts - delivery.budget_start,
            rate_limited=delivery.rate_limited,
            now=now,
            rand=self.rand(),
        )
        secrets = [s.secret for s in ep.secrets] + list(ep.headers.values())
        error = None if classification.verdict == "delivered" else classification.reason
        attempt = Attempt(
            delivery_id=delivery.id,
            number=0,
            started=started,
            duration=result.duration,
            status=result.status,
            error=None if error is None else redact(error.encode(), secrets, 512),
            verdict=classification.verdict,
            response=redact(result.body, secrets),
        )
        finished = Finished(
            delivery_id=delivery.id,
            endpoint_id=ep.id,
            attempt=attempt,
            status=step.status,
            attempts=step.attempts + delivery.budget_start,
            rate_limited=step.rate_limited,
            next_attempt_at=step.next_attempt_at,
            now=now,
        )
        if self.on_attempt is not None:
            try:
                self.on_attempt(ep, classification, result, step.status)
            except Exception:  # a metrics hook must never break delivery
                logger.exception("on_attempt hook failed")
        try:
            await self._health(ep, classification, step.disable_reason, now)
        except EventLogError as exc:  # the attempt is recorded all the same
            logger.warning("endpoint %s: could not update its health: %s", ep.id, exc)
        return finished

    async def _health(
        self, ep: Endpoint, classification: Classification, disable: str | None, now: float
    ) -> None:
        if classification.verdict == "rate_limited":
            return  # the receiver is alive and asked us to slow down
        if disable is not None:
            await self._disable(ep, disable)
            return
        success = classification.verdict == "delivered"
        worker = self._workers.get(ep.id)
        current = worker.endpoint if worker is not None else ep
        if success and current.failing_since is None:
            return  # the common case: healthy and still healthy
        health = update_health(
            current.failing_since,
            success=success,
            now=now,
            disable_after=current.disable_after,
            last_error=classification.reason,
        )
        if health.disable_reason is not None and current.enabled:
            await self._disable(current, health.disable_reason)
        elif health.failing_since != current.failing_since:
            await self._update_endpoint(ep.id, failing_since=health.failing_since)

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
            ValueError: An empty or inverted range.
        """
        start, stop = await replay_range(
            self.log,
            endpoint.stream,
            from_offset=from_offset,
            to_offset=to_offset,
            from_time=from_time,
            to_time=to_time,
        )
        filt = TypeFilter(endpoint.types, endpoint.key)
        scanned = matched = 0
        batch: list[NewDelivery] = []
        now = self.clock()
        async for event in self.log.scan(endpoint.stream, start, stop):
            scanned += 1
            if not filt.matches(event.type, event.key):
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
        inserted = await self.store.enqueue(endpoint_id, rows, consumer=None, now=now)
        worker = self._workers.get(endpoint_id)
        if worker is not None:
            worker.unfinished += inserted
        self.wake(endpoint_id)


def feeder_lease(endpoint: Endpoint) -> str:
    """The name of the lease that lets one process feed ``endpoint``."""
    return f"delivery-feed:{endpoint.consumer_name}"


def _release(delivery: Delivery, now: float) -> Finished:
    return Finished(
        delivery_id=delivery.id,
        endpoint_id=delivery.endpoint_id,
        attempt=None,
        status="pending",
        attempts=delivery.attempts,
        rate_limited=delivery.rate_limited,
        next_attempt_at=now,
        now=now,
    )
