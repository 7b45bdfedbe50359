"""One endpoint's delivery, as a state machine: no awaits, no clock reads (sans-I/O).

The machine is told what happened (its input methods) and says what to do
(:meth:`~DeliveryMachine.actions`); a pump (:mod:`consumers.delivery.pump`)
performs the actions and reports back, as websockets' ``Protocol`` and
``Connection`` split their work. At most ``max_in_flight`` attempts run at once
(one in ``ordered`` mode), the rate limit paces sends by the ``now`` given, and a
claimed row stays ``in_flight`` until its outcome is recorded. Which rows a claim
takes, and what an outcome makes of a row, are :mod:`consumers.delivery.machine_rules`.
"""

from __future__ import annotations

from collections import deque

import msgspec

from consumers.delivery.machine_rules import outcome, release
from consumers.delivery.model import Delivery, Endpoint, Finished
from consumers.delivery.retry import AttemptResult, Classification
from eventlog.ratelimit import TokenBucket

__all__ = [
    "MAX_WINDOW",
    "WINDOW",
    "Action",
    "Claim",
    "DeliveryMachine",
    "Disable",
    "Record",
    "Send",
    "SetHealth",
]


#: Claimed rows held per attempt slot. The next claim (one at a time) goes out when
#: half of them are used, so the slots rarely wait for a ledger transaction.
WINDOW = 4
#: The most claimed rows held per slot: the window doubles each time an attempt ends
#: with nothing held while a claim is out, and stays small otherwise so that several
#: processes share a short backlog.
MAX_WINDOW = 32


class Claim(msgspec.Struct, frozen=True, gc=False):
    """Claim up to ``limit`` due deliveries (``pending → in_flight``), then call
    :meth:`DeliveryMachine.claimed` (or :meth:`DeliveryMachine.claim_failed`)."""

    limit: int


class Send(msgspec.Struct, frozen=True):
    """Attempt ``delivery`` now, then call :meth:`DeliveryMachine.attempt_finished`."""

    delivery: Delivery


class Record(msgspec.Struct, frozen=True):
    """Store ``finished`` in the ledger, then call :meth:`DeliveryMachine.recorded`."""

    finished: Finished


class SetHealth(msgspec.Struct, frozen=True, gc=False):
    """Store the endpoint's new ``failing_since`` (None: healthy again)."""

    failing_since: float | None


class Disable(msgspec.Struct, frozen=True, gc=False):
    """Disable the endpoint for ``reason`` and say so; the machine has stopped."""

    reason: str


Action = Claim | Send | Record | SetHealth | Disable


class DeliveryMachine:
    """The delivery state of one endpoint (see the module docstring).

    Args:
        endpoint: The endpoint (its ordering, ``max_in_flight``, rate limit,
            retry policy and failure streak).
        unfinished: Its ``pending`` + ``in_flight`` rows in the ledger now.
        max_backlog: Unfinished rows at which the feeder pauses.
    """

    def __init__(self, endpoint: Endpoint, *, unfinished: int = 0, max_backlog: int = 10_000):
        self.endpoint = endpoint
        self.unfinished = unfinished
        self.max_backlog = max_backlog
        self.held: deque[Delivery] = deque()
        self.sending: dict[str, Delivery] = {}
        #: Attempts at once: ``max_in_flight``, or 1 in ``ordered`` mode.
        self.limit = 1 if endpoint.ordering == "ordered" else endpoint.max_in_flight
        self.stopped = False
        self._more = True  # a claim may find something
        self._claiming = False
        self._window = WINDOW
        self._starved = False  # an attempt ended with nothing held while a claim was out
        self._unrecorded = 0  # outcomes handed out and not yet recorded
        self._due: float | None = None  # a row blocked only by time becomes due
        self._paced: float | None = None  # the rate limit's next token
        self._bucket = TokenBucket(endpoint.rate_limit) if endpoint.rate_limit else None
        self._out: list[Action] = []

    @property
    def may_feed(self) -> bool:
        """Whether the feeder may enqueue more rows (the backlog is below ``max_backlog``)."""
        return not self.stopped and self.unfinished < self.max_backlog

    @property
    def wake_at(self) -> float | None:
        """When :meth:`actions` has something to do if no input comes first."""
        due, paced = self._due, self._paced
        return paced if due is None else due if paced is None else min(due, paced)

    def enqueued(self, count: int) -> None:
        """``count`` new pending rows were stored (by the feeder, a replay, another process)."""
        self.unfinished += count
        self._more = True

    def poke(self) -> None:
        """Rows may have become claimable (e.g. another process released some)."""
        self._more = True

    def claimed(self, rows: list[Delivery], wake_at: float | None, limit: int) -> None:
        """A :class:`Claim` of ``limit`` returned ``rows`` (``in_flight`` now); ``wake_at``:
        when the earliest row blocked only by time becomes due."""
        self._claiming = False
        if self.stopped:
            for d in rows:
                self._record(release(d, d.updated))
            return
        if self._starved:
            self._window = min(2 * self._window, MAX_WINDOW)
            self._starved = False
        self.held.extend(rows)
        # A full window: there may be more; so may rows enqueued since it went out.
        self._more = self._more or len(rows) == limit
        self._due = wake_at

    def claim_failed(self, retry_at: float) -> None:
        """A claim failed (the ledger is unavailable): claim again at ``retry_at``."""
        self._claiming = False
        self._more = False
        self._due = retry_at if self._due is None else min(self._due, retry_at)

    def attempt_finished(
        self,
        delivery: Delivery,
        result: AttemptResult,
        classification: Classification,
        *,
        started: float,
        now: float,
        rand: float,
    ) -> Finished:
        """An attempt of a :class:`Send` came back with ``result``, judged ``classification``
        by the target kind. Records the outcome, updates the failure streak (or
        disables the endpoint) and returns what is recorded."""
        self.sending.pop(delivery.id, None)
        self._starved = self._starved or (self._claiming and not self.held)
        finished, disable = outcome(
            self.endpoint, delivery, result, classification, started=started, now=now, rand=rand
        )
        self._record(finished)
        if not self.stopped:
            self._health(classification, disable, now)
        return finished

    def attempt_cancelled(self, delivery: Delivery, now: float) -> None:
        """A :class:`Send` was cancelled before it finished: the row goes back to pending."""
        self.sending.pop(delivery.id, None)
        self._record(release(delivery, now))

    def recorded(self, finished: list[Finished]) -> None:
        """These outcomes of this endpoint are in the ledger."""
        self._unrecorded -= len(finished)
        for f in finished:
            if f.attempt is not None and f.status != "pending":
                self.unfinished -= 1
        self._more = True

    def counted(self, unfinished: int) -> None:
        """The ledger counts ``unfinished`` rows (other processes finish rows too)."""
        self.unfinished = unfinished
        self._more = True

    def acted(self, action: str) -> None:
        """An operator retried (one more unfinished row) or skipped (one fewer) a delivery."""
        self.unfinished += 1 if action == "retry" else -1
        self._more = True

    def stop(self, now: float) -> None:
        """No new claims or attempts; claimed rows not sent go back to pending."""
        self.stopped = True
        while self.held:
            self._record(release(self.held.popleft(), now))

    def actions(self, now: float) -> list[Action]:
        """What to do now; each action is handed out once."""
        if not self.stopped:
            if self._due is not None and self._due <= now:
                self._due = None
                self._more = True
            self._sends(now)
            if self.endpoint.ordering == "ordered":
                # The next row is claimable only once this one's outcome is stored.
                busy = self.held or self.sending or self._unrecorded
                want = 0 if busy else 1
            else:  # a window of slots, claimed again when half used
                full = self._window * self.limit
                want = full - len(self.held) if 2 * len(self.held) < full else 0
            if want and self._more and not self._claiming:
                self._more = False
                self._claiming = True
                self._out.append(Claim(want))
        out, self._out = self._out, []
        return out

    def _record(self, finished: Finished) -> None:
        self._unrecorded += 1
        self._out.append(Record(finished))

    def _sends(self, now: float) -> None:
        self._paced = None
        while self.held and len(self.sending) < self.limit:
            if self._bucket is not None:
                wait = self._bucket.take(now)
                if wait > 0:
                    self._paced = now + wait
                    return
            delivery = self.held.popleft()
            self.sending[delivery.id] = delivery
            self._out.append(Send(delivery))

    def _health(self, classification: Classification, disable: str | None, now: float) -> None:
        """Track the endpoint's failure streak (any delivered attempt ends it; a 429
        is no failure) and disable it after ``disable_after`` seconds of it."""
        verdict, ep = classification.verdict, self.endpoint
        if verdict == "rate_limited":
            return  # the receiver is alive and asked us to slow down
        since: float | None = None
        if verdict != "delivered":
            since = now if ep.failing_since is None else ep.failing_since
        limit = ep.disable_after
        if disable is None and since is not None and limit is not None and now - since >= limit:
            took, reason = _how_long(now - since), classification.reason
            disable = f"failing continuously for {took} (last error: {reason})"
        if disable is None:
            if since != ep.failing_since:
                self.endpoint = msgspec.structs.replace(ep, failing_since=since)
                self._out.append(SetHealth(since))
            return
        self.endpoint = msgspec.structs.replace(
            ep, enabled=False, disabled_reason=disable, updated=now
        )
        self._out.append(Disable(disable))
        self.stop(now)


def _how_long(seconds: float) -> str:
    """``seconds`` in the unit a person reads best: ``3 s``, ``10 min``, ``120.0 h``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
