"""A consumer's failure policy, and the loop that applies it to one batch.

==============  ==============================================================
``on_failure``  once a batch has failed ``max_attempts`` handler calls
==============  ==============================================================
``"park"``      narrow the batch down to the failing event(s): split it in
                halves and call the handler on each (in order; a slice that
                succeeds is committed); a single event that fails is retried
                alone, with backoff, until ``max_attempts`` calls with it
                alone have failed, then parked (:mod:`consumers.parking`)
                and committed past. Every other event is handled in order.
``"stop"``      stop the consumer; its state says ``stopped`` and why.
``"retry"``     keep retrying the batch with backoff, forever.
==============  ==============================================================

Every failed call is followed by the backoff delay except the first call on
a freshly split slice, which is tried at once (the batch it came from just
failed and waited). A shutdown during a wait stops the batch: nothing more
is committed, so the rest is handled again after a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from consumers.parking import OnFailure
from eventlog import Event

__all__ = ["FailurePolicy", "Outcome", "run_batch"]

logger = logging.getLogger("eventlog.consumers")

Outcome = Literal["done", "stop", "interrupted"]
"""``done``: every event handled or parked and committed; ``stop``: the policy
stopped the consumer; ``interrupted``: shutdown came during a backoff wait."""


@dataclass(frozen=True)
class FailurePolicy:
    """How a consumer treats a handler that keeps failing.

    Attributes:
        max_attempts: Failed calls before ``on_failure`` applies (at least 1).
        on_failure: ``"park"`` (default), ``"stop"`` or ``"retry"``.
    """

    max_attempts: int = 5
    on_failure: OnFailure = "park"

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValueError("max_attempts must be an integer of at least 1")
        if self.on_failure not in ("park", "stop", "retry"):
            raise ValueError(f"on_failure must be park, stop or retry, not {self.on_failure!r}")


@dataclass(frozen=True)
class BatchIO:
    """What :func:`run_batch` needs from the runtime (all supplied by the manager).

    Attributes:
        call: Awaits the handler with some events.
        failed: Records a failed call (events, exception, attempt number) and
            returns the backoff delay to wait.
        wait: Sleeps that long; returns False if shutdown came first.
        commit: Commits just past an offset.
        park: Parks one event after its error and attempt count.
    """

    call: Callable[[list[Event]], Awaitable[None]]
    failed: Callable[[Sequence[Event], Exception, int], float]
    wait: Callable[[float], Awaitable[bool]]
    commit: Callable[[int], Awaitable[None]]
    park: Callable[[Event, Exception, int], Awaitable[None]]


async def run_batch(policy: FailurePolicy, io: BatchIO, batch: list[Event]) -> Outcome:
    """Hand ``batch`` to the handler under ``policy``; see the module docstring."""
    attempt = 0
    while True:
        try:
            await io.call(batch)
            return "done"
        except Exception as exc:  # the handler's failure, whatever it is
            attempt += 1
            delay = io.failed(batch, exc, attempt)
            if policy.on_failure == "stop" and attempt >= policy.max_attempts:
                return "stop"
            if policy.on_failure == "park" and attempt >= policy.max_attempts:
                if len(batch) == 1:
                    await io.park(batch[0], exc, attempt)
                    return "done"
                return await _narrow(policy, io, batch)
            if not await io.wait(delay):
                return "interrupted"


async def _narrow(policy: FailurePolicy, io: BatchIO, events: list[Event]) -> Outcome:
    middle = len(events) // 2
    for part in (events[:middle], events[middle:]):
        try:
            await io.call(part)
        except Exception as exc:
            delay = io.failed(part, exc, 1)
            if len(part) > 1:
                outcome = await _narrow(policy, io, part)
            elif policy.max_attempts == 1:
                await io.park(part[0], exc, 1)
                outcome = "done"
            elif not await io.wait(delay):
                return "interrupted"
            else:
                outcome = await _alone(policy, io, part[0])
            if outcome != "done":
                return outcome
        await io.commit(part[-1].offset + 1)
    return "done"


async def _alone(policy: FailurePolicy, io: BatchIO, event: Event) -> Outcome:
    """Retry one event (which has failed once alone) until it passes or is parked."""
    attempt = 1
    while True:
        attempt += 1
        try:
            await io.call([event])
            return "done"
        except Exception as exc:
            delay = io.failed([event], exc, attempt)
            if attempt >= policy.max_attempts:
                await io.park(event, exc, attempt)
                return "done"
            if not await io.wait(delay):
                return "interrupted"
