"""The pump of one endpoint: performs what its :class:`DeliveryMachine` decides.

The machine (:mod:`consumers.delivery.machine`) holds the endpoint's state and
decides; the pump owns the endpoint's tasks and does the I/O (claims, sends
formatted and judged by the endpoint's target kind, outcomes handed to the
shared recorder) and reports each result back. Every machine call happens on
the event loop between awaits. While this process holds the endpoint's feed
lease, the pump also runs its feeder (:mod:`consumers.delivery.feeder`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from consumers.delivery.feeder import Feeder
from consumers.delivery.kinds import AttemptHook, TargetKind, TargetRefused
from consumers.delivery.ledger import Claimed, ClaimRequest
from consumers.delivery.machine import (
    Action,
    Claim,
    DeliveryMachine,
    Disable,
    Record,
    Send,
    SetHealth,
)
from consumers.delivery.machine_rules import gone_result, kind_failed, kind_refused
from consumers.delivery.model import Delivery, Endpoint, Finished
from consumers.delivery.recorder import Recorder
from consumers.delivery.sender import Sender
from eventlog.backoff import Backoff
from eventlog.errors import EventLogError, LogClosed
from eventlog.storage.leases import Leases, run_exclusively

__all__ = ["SUPERVISE_BACKOFF", "EndpointPump", "PumpParts", "feeder_lease"]

logger = logging.getLogger("eventlog.delivery")

#: Waits before a failed feeder (or claim) runs again: 0.1 s doubling up to 5 s.
SUPERVISE_BACKOFF = Backoff(base=0.1, cap=5.0, jitter=0)


def feeder_lease(endpoint: Endpoint) -> str:
    """The name of the lease that lets one process feed ``endpoint``."""
    return f"delivery-feed:{endpoint.consumer_name}"


@dataclass(frozen=True)
class PumpParts:
    """What every pump of an engine shares."""

    feeder: Feeder
    recorder: Recorder
    sender: Sender
    leases: Leases
    clock: Callable[[], float]
    rand: Callable[[], float]
    on_attempt: AttemptHook | None
    health: Callable[[Endpoint, SetHealth | Disable], Coroutine[Any, Any, None]]
    failed: Callable[[Endpoint, Delivery, Finished], None]
    lease_retry: float


class EndpointPump:
    """Runs one endpoint: its machine's actions, its sends, its feeder (under the lease)."""

    def __init__(self, machine: DeliveryMachine, kind: TargetKind, parts: PumpParts) -> None:
        self.machine = machine
        self.kind = kind
        self.parts = parts
        self.feeding = False
        self.progress = asyncio.Event()  # set when the feeder may go on (see Feeder.run)
        self._wake = asyncio.Event()
        self._sleeps_until: float | None = None  # the loop's wake-up time
        self._tasks: list[asyncio.Task[None]] = []
        #: The slots: tasks that make attempts (the engine gives them a grace at close).
        self.sends: set[asyncio.Task[None]] = set()
        self._ready: deque[Delivery] = deque()  # Send actions no slot has taken yet
        self._busy = 0  # slots in an attempt
        self._side: set[asyncio.Task[None]] = set()

    @property
    def endpoint(self) -> Endpoint:
        """The endpoint as the machine knows it (health notes included)."""
        return self.machine.endpoint

    def start(self) -> None:
        """Start the loop and the feeder."""
        name, parts = self.endpoint.id, self.parts
        feed = run_exclusively(
            parts.leases, feeder_lease(self.endpoint), self._feed, retry=parts.lease_retry
        )
        self._tasks = [
            asyncio.create_task(self._loop(), name=f"delivery-send-{name}"),
            asyncio.create_task(feed, name=f"delivery-feed-{name}"),
        ]

    def changed(self) -> None:
        """An input reached the machine: act on it now (the loop only keeps time)."""
        if self.machine.may_feed:
            self.progress.set()
        self._perform(self.machine.actions(self.parts.clock()))
        if self.machine.wake_at != self._sleeps_until:
            self._wake.set()  # the loop keeps another time

    def recorded(self, finished: list[Finished]) -> None:
        """The recorder stored these outcomes of this pump."""
        self.machine.recorded(finished)
        self.changed()

    def quiesce(self) -> None:
        """No new claims or attempts; claimed rows go back to pending. Attempts
        in progress go on (:meth:`stop` cancels them)."""
        for task in self._tasks:
            task.cancel()
        now = self.parts.clock()
        self.machine.stop(now)
        while self._ready:  # handed out, never started
            self.machine.attempt_cancelled(self._ready.popleft(), now)
        self.changed()

    async def stop(self) -> None:
        """Stop everything; cancelled attempts go back to pending."""
        self.quiesce()
        for task in self.sends:
            task.cancel()
        await asyncio.gather(*self._tasks, *self.sends, return_exceptions=True)

    async def _loop(self) -> None:
        clock = self.parts.clock
        while True:
            self._wake.clear()
            self._perform(self.machine.actions(clock()))
            self._sleeps_until = wake_at = self.machine.wake_at
            timeout = None if wake_at is None else max(0.0, wake_at - clock())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    def _perform(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                self._ready.append(action.delivery)
            elif isinstance(action, Record):
                self.parts.recorder.put_nowait(action.finished, self)
            elif isinstance(action, Claim):
                ep, limit = self.endpoint, action.limit
                # Queued now, it joins the transaction of rows the feeder just queued; its
                # result reaches the machine even if stopped meanwhile (it gives rows back).
                claim = self.parts.recorder.claim(ClaimRequest(ep.id, ep.ordering, limit))
                claim.add_done_callback(functools.partial(self._claimed, limit=limit))
            else:  # SetHealth, Disable
                self._spawn(self.parts.health(self.endpoint, action), self._side)
        # A slot sends deliveries one after another: no task per delivery on the hot path.
        while len(self.sends) - self._busy < len(self._ready):
            self._spawn(self._slot(), self.sends)

    async def _slot(self) -> None:
        while self._ready:
            delivery = self._ready.popleft()
            self._busy += 1
            try:
                await self._send(delivery)
            finally:
                self._busy -= 1
            self.changed()  # this slot is free again: the next Send may be its

    @staticmethod
    def _spawn(work: Coroutine[Any, Any, None], into: set[asyncio.Task[None]]) -> None:
        task = asyncio.create_task(work)
        into.add(task)  # hold a reference: a task nobody holds may be collected
        task.add_done_callback(into.discard)

    def _claimed(self, future: asyncio.Future[Claimed], *, limit: int) -> None:
        if future.cancelled() or isinstance(exc := future.exception(), LogClosed):
            return
        if exc is None:
            claimed = future.result()
            self.machine.claimed(claimed.rows, claimed.wake_at, limit)
        else:
            if isinstance(exc, EventLogError | OSError):
                logger.warning("endpoint %s: claim failed: %s", self.endpoint.id, exc)
            else:  # a bug: its traceback
                logger.error("endpoint %s: claim failed", self.endpoint.id, exc_info=exc)
            self.machine.claim_failed(self.parts.clock() + SUPERVISE_BACKOFF.delay(1))
        self.changed()

    async def _send(self, delivery: Delivery) -> None:
        parts, ep, kind = self.parts, self.endpoint, self.kind
        started = parts.clock()
        try:
            event = parts.feeder.cached(delivery) or await parts.feeder.event(delivery)
            if event is None:
                result = gone_result(delivery)
            else:
                request = kind.format(ep, event, delivery.id, started)
                headers = {**ep.headers, **request.headers} if ep.headers else request.headers
                result = await parts.sender.post(
                    request.url or ep.url, request.body, headers, ep.timeout
                )
            now = parts.clock()
            verdict = kind.classify(ep, result, now)
        except asyncio.CancelledError:  # shutdown or an endpoint change: back to pending
            self.machine.attempt_cancelled(delivery, parts.clock())
            self.changed()
            raise
        except TargetRefused as exc:  # the endpoint's stored settings: it is disabled
            now = parts.clock()
            result, verdict = kind_refused(str(exc), now - started)
        except Exception as exc:  # a target kind's bug: a recorded, retried attempt
            logger.exception("endpoint %s: the %r target kind failed", ep.id, ep.kind)
            now = parts.clock()
            result, verdict = kind_failed(ep.kind, exc, now - started)
        finished = self.machine.attempt_finished(
            delivery, result, verdict, started=started, now=now, rand=parts.rand()
        )
        if finished.status == "failed":
            parts.failed(ep, delivery, finished)
        if parts.on_attempt is not None:
            try:
                parts.on_attempt(ep, verdict, result, finished.status)
            except Exception:  # a metrics hook must never break delivery
                logger.exception("on_attempt hook failed")

    async def _feed(self) -> None:
        """Feed (while this process holds the lease); after a failure, again."""
        failures = 0
        while True:
            self.feeding = True
            try:
                # Another process may have fed until now: count, and claim what it left.
                feeder = self.parts.feeder
                self.machine.counted(await feeder.unfinished(self.endpoint.id))
                self.changed()
                await feeder.run(self.endpoint, self.machine, self.progress, self.changed)
                return
            except LogClosed:
                return
            except (EventLogError, OSError) as exc:
                logger.warning("endpoint %s: the feeder restarts: %s", self.endpoint.id, exc)
            except Exception:
                logger.exception("endpoint %s: the feeder failed; restarting", self.endpoint.id)
            finally:
                self.feeding = False
            failures += 1
            await asyncio.sleep(SUPERVISE_BACKOFF.delay(failures))
