"""Failed deliveries in the log: one WARNING each, at most one line per endpoint per period.

A delivery that fails for good (its last attempt, or a final answer) is said
at once: ``delivery <id> (event <id>) to endpoint <id> (<origin>) failed after
<n> attempts: <last error>``. Further failures of that endpoint within
``every`` seconds of that line are counted instead, and said in one line when
the period ends: ``<n> more deliveries to endpoint <id> (<origin>) failed in
the last <s> s; the last: ...``. So a dead receiver under a flood of events
costs one line per endpoint per period, and an operator tailing the log still
sees every failure counted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from consumers.delivery.kinds import origin
from consumers.delivery.model import Delivery, Endpoint, Finished

__all__ = ["EVERY", "FailedLog"]

logger = logging.getLogger("eventlog.delivery")

#: At most one line about failed deliveries per endpoint this often (seconds).
EVERY = 60.0


@dataclass
class _Quiet:
    """An endpoint's period after a line: failures counted, the last one kept."""

    endpoint: Endpoint
    said_at: float
    held: int = 0
    last: str = ""
    timer: asyncio.TimerHandle | None = None


class FailedLog:
    """Says failed deliveries in the log (see the module docstring).

    Args:
        every: Seconds an endpoint's failures are counted after a line.
        clock: Seconds since the epoch.
    """

    def __init__(self, every: float = EVERY, clock: Callable[[], float] = time.time) -> None:
        self.every = every
        self._clock = clock
        self._quiet: dict[str, _Quiet] = {}

    def failed(self, endpoint: Endpoint, delivery: Delivery, finished: Finished) -> None:
        """``delivery`` of ``endpoint`` ended ``failed`` with ``finished``: say it, or count it."""
        error = finished.attempt.error if finished.attempt is not None else None
        status = finished.attempt.status if finished.attempt is not None else None
        why = error or (f"HTTP {status}" if status is not None else "no error recorded")
        what = f"delivery {delivery.id} (event {delivery.event_id})"
        how = f"after {finished.attempts} attempts: {why}"
        now = self._clock()
        quiet = self._quiet.get(endpoint.id)
        if quiet is not None and quiet.held and now - quiet.said_at >= self.every:
            self._summary(quiet)  # its timer is late: the count first, this one in the next
            quiet = self._quiet.get(endpoint.id)
        if quiet is not None and now - quiet.said_at < self.every:
            quiet.held += 1
            quiet.last = f"{what} {how}"
            if quiet.timer is None:
                delay = quiet.said_at + self.every - now
                loop = asyncio.get_running_loop()
                quiet.timer = loop.call_later(delay, self._summary, quiet)
            return
        target = origin(endpoint.url)
        logger.warning("%s to endpoint %s (%s) failed %s", what, endpoint.id, target, how)
        self._quiet[endpoint.id] = _Quiet(endpoint, said_at=now)

    def _summary(self, quiet: _Quiet) -> None:
        """Say how many failed since the endpoint's last line; a new period starts."""
        endpoint = quiet.endpoint
        if self._quiet.get(endpoint.id) is not quiet or not quiet.held:
            return  # a period already ended
        if quiet.timer is not None:
            quiet.timer.cancel()
        now = self._clock()
        took = max(now - quiet.said_at, 0.0)
        logger.warning(
            "%d more deliveries to endpoint %s (%s) failed in the last %.0f s; the last: %s",
            quiet.held,
            endpoint.id,
            origin(endpoint.url),
            took,
            quiet.last,
        )
        self._quiet[endpoint.id] = _Quiet(endpoint, said_at=now)

    def close(self) -> None:
        """Say what is counted and not said yet (the engine stops)."""
        for quiet in list(self._quiet.values()):
            self._summary(quiet)
        self._quiet.clear()
