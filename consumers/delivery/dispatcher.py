"""The per-endpoint send loop: claim due deliveries, keep slots sending, judge each attempt.

The **dispatcher** of a worker claims due deliveries a window at a time
(``pending → in_flight``, by the ordering rule of
:func:`~consumers.delivery.ledger.select_claimable`) and keeps up to
``max_in_flight`` *slot* tasks sending them (paced by the rate limit); each
answer is classified by the endpoint's target kind and the attempt and the
delivery's next state go to one group-committing recorder shared by all
endpoints (:mod:`consumers.delivery.recorder`). A row stays ``in_flight`` until
its outcome is written, so nothing is claimed twice. The endpoint's health
(failing since, auto-disable) is the engine's: every verdict is handed to its
``health`` callback (:mod:`consumers.delivery.engine`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from consumers.delivery.feeder import Feeder, Worker
from consumers.delivery.kinds import AttemptHook, TargetKind
from consumers.delivery.ledger import Claimed, LedgerStore
from consumers.delivery.machine_rules import gone_result, kind_failed, outcome, release
from consumers.delivery.model import Delivery, Endpoint, Finished
from consumers.delivery.recorder import Recorder
from consumers.delivery.retry import Classification
from consumers.delivery.sender import Sender
from eventlog.errors import EventLogError

__all__ = ["Dispatcher", "HealthHook", "release"]

logger = logging.getLogger("eventlog.delivery")

HealthHook = Callable[[Endpoint, Classification, str | None, float], Awaitable[None]]
"""Called after every attempt with ``(endpoint, classification, disable_reason, now)``."""


class Dispatcher:
    """Sends an endpoint's claimed deliveries; one instance serves every worker.

    Args:
        store: The ledger.
        recorder: Where outcomes (and released claims) go.
        feeder: Serves the events to send.
        sender: The HTTP sender.
        kinds: Target kinds by name.
        clock: Seconds since the epoch.
        rand: Uniform [0, 1) numbers for the retry jitter.
        on_attempt: Optional hook called after every attempt (metrics).
        health: Updates the endpoint's health after every attempt.
    """

    def __init__(
        self,
        *,
        store: LedgerStore,
        recorder: Recorder,
        feeder: Feeder,
        sender: Sender,
        kinds: dict[str, TargetKind],
        clock: Callable[[], float],
        rand: Callable[[], float],
        on_attempt: AttemptHook | None,
        health: HealthHook,
    ) -> None:
        self.store = store
        self.recorder = recorder
        self.feeder = feeder
        self.sender = sender
        self.kinds = kinds
        self.clock = clock
        self.rand = rand
        self.on_attempt = on_attempt
        self.health = health

    async def run(self, worker: Worker) -> None:
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
            self.recorder.put_nowait(release(delivery, now))

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
            self.recorder.put_nowait(finished)
        except asyncio.CancelledError:
            if finished is None:
                self.recorder.put_nowait(release(delivery, self.clock()))
            raise

    async def _attempt(self, ep: Endpoint, delivery: Delivery) -> Finished:
        kind = self.kinds[ep.kind]
        started = self.clock()
        result = gone_result(delivery)  # replaced below unless the event is gone
        try:
            event = await self.feeder.event(delivery)
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
            result, classification = kind_failed(ep.kind, exc, now - started)
        finished, disable = outcome(
            ep, delivery, result, classification, started=started, now=now, rand=self.rand()
        )
        if self.on_attempt is not None:
            try:
                self.on_attempt(ep, classification, result, finished.status)
            except Exception:  # a metrics hook must never break delivery
                logger.exception("on_attempt hook failed")
        try:
            await self.health(ep, classification, disable, now)
        except EventLogError as exc:  # the attempt is recorded all the same
            logger.warning("endpoint %s: could not update its health: %s", ep.id, exc)
        return finished
