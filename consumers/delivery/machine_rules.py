"""The delivery state transitions, written once (pure; ``now`` and ``rand`` are passed in).

A delivery moves ``pending → in_flight → delivered | failed``; a retryable
failure, a released claim and an operator retry take it back to ``pending``.
Every ledger stores what these functions decide. The same rules serve pulled
consumers (:mod:`consumers.shared`): a claim is a lease, an outcome an ack or a
nack, a released claim an expired lease.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import msgspec

from consumers.delivery.kinds import redact
from consumers.delivery.model import (
    Attempt,
    Delivery,
    DeliveryStatus,
    Endpoint,
    Finished,
    Ordering,
)
from consumers.delivery.retry import AttemptResult, Classification
from eventlog.errors import Conflict

__all__ = [
    "Claimed",
    "DeliveryConflict",
    "apply_finished",
    "apply_operator_action",
    "due_first",
    "gone_result",
    "kind_failed",
    "kind_refused",
    "outcome",
    "release",
    "select_claimable",
]


class DeliveryConflict(Conflict):
    """An operator action does not fit the delivery's state (e.g. retrying one in flight)."""

    code = "delivery_conflict"


@dataclass(frozen=True, slots=True)
class Claimed:
    """Deliveries claimed (now ``in_flight``), and the earliest ``next_attempt_at`` of
    one blocked only by time (when to look again)."""

    rows: list[Delivery]
    wake_at: float | None


def due_first(d: Delivery) -> tuple[float, int]:
    """The order of claimable rows in the concurrent mode: earliest due, then oldest."""
    return d.next_attempt_at or 0.0, d.seq


def select_claimable(
    active: Iterable[Delivery], ordering: Ordering, now: float, limit: int
) -> Claimed:
    """The claim rule, over an endpoint's unfinished deliveries in ``seq`` order.

    * ``concurrent``: pending deliveries that are due, earliest due first.
    * ``ordered``: only the oldest unfinished delivery, if it is pending and due
      (an in-flight or backing-off head blocks everything behind it).
    * ``per-key``: per event key, the oldest unfinished delivery if pending and
      due; keyless deliveries are not ordered among themselves.
    """
    rows = list(active)
    if ordering == "ordered":
        heads = rows[:1]
    elif ordering == "per-key":
        oldest = {d.key: d for d in reversed(rows) if d.key is not None}
        heads = [d for d in rows if d.key is None or oldest[d.key] is d]
    else:
        heads = rows
    pending = [d for d in heads if d.status == "pending"]
    due = [d for d in pending if (d.next_attempt_at or 0.0) <= now]
    later = [d.next_attempt_at for d in pending if (d.next_attempt_at or 0.0) > now]
    if ordering == "concurrent":
        due.sort(key=due_first)
    return Claimed(due[:limit], min((t for t in later if t is not None), default=None))


def gone_result(delivery: Delivery) -> AttemptResult:
    """The result of an attempt whose event the log no longer has (final: ``failed``)."""
    message = f"event {delivery.stream}@{delivery.offset} is no longer in the log"
    return AttemptResult(None, {}, b"", "invalid", message, 0.0)


def kind_failed(
    kind: str, exc: BaseException, duration: float
) -> tuple[AttemptResult, Classification]:
    """The result and verdict of an attempt whose target kind raised (a bug in the
    kind): recorded, and retried by the schedule."""
    reason = f"internal error in the {kind!r} target kind: {type(exc).__name__}"
    result = AttemptResult(None, {}, b"", "invalid", reason, duration)
    return result, Classification("retry", reason)


def kind_refused(reason: str, duration: float) -> tuple[AttemptResult, Classification]:
    """The result and verdict of an attempt whose target kind refused the endpoint's
    stored settings (:class:`~consumers.delivery.kinds.TargetRefused`): no attempt
    can succeed, so the endpoint is disabled with ``reason``."""
    return AttemptResult(None, {}, b"", "invalid", reason, duration), Classification(
        "disable", reason
    )


def outcome(
    endpoint: Endpoint,
    delivery: Delivery,
    result: AttemptResult,
    classification: Classification,
    *,
    started: float,
    now: float,
    rand: float,
) -> tuple[Finished, str | None]:
    """What an attempt's verdict makes of the delivery under the endpoint's retry
    policy: the :class:`Finished` to record, and the reason to disable the endpoint
    if the verdict says so. ``rand`` in [0, 1) jitters the wait.

    A 429 wait does not use up an attempt until ``max_rate_limited`` were taken; a
    ``retry`` waits ``Retry-After`` if given, else the schedule's next step (at most
    ``max_retry_after``), and fails the delivery after its last attempt. Secrets
    never reach the recorded error or response snippet.
    """
    policy, verdict = endpoint.retry, classification.verdict
    attempts = delivery.attempts - delivery.budget_start  # of this retry budget
    rate_limited = delivery.rate_limited
    wait = classification.retry_after
    status: DeliveryStatus = "pending"
    if verdict == "rate_limited" and rate_limited < policy.max_rate_limited:
        rate_limited += 1
        retry = max(attempts, 1)
    else:
        attempts += 1
        retry = attempts
        if verdict == "delivered":
            status = "delivered"
        elif verdict in ("failed", "disable") or attempts >= policy.attempts:
            status = "failed"
    next_at = None
    if status == "pending":
        next_at = now + min(
            policy.delay(retry, rand) if wait is None else wait, policy.max_retry_after
        )
    error = None if verdict == "delivered" else classification.reason
    secrets = [] if error is None and not result.body else _secrets(endpoint)
    attempt = Attempt(
        delivery_id=delivery.id,
        number=0,
        started=started,
        duration=result.duration,
        status=result.status,
        error=None if error is None else redact(error.encode(), secrets, 512),
        verdict=verdict,
        response=redact(result.body, secrets) if result.body else "",
    )
    finished = Finished(
        delivery_id=delivery.id,
        endpoint_id=delivery.endpoint_id,
        attempt=attempt,
        status=status,
        attempts=attempts + delivery.budget_start,
        rate_limited=rate_limited,
        next_attempt_at=next_at,
        now=now,
    )
    return finished, classification.reason if verdict == "disable" else None


def _secrets(endpoint: Endpoint) -> list[str]:
    return [s.secret for s in endpoint.secrets] + list(endpoint.headers.values())


def release(delivery: Delivery, now: float) -> Finished:
    """A claimed delivery given back unsent: ``pending``, due now, no attempt counted."""
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


def apply_finished(d: Delivery, f: Finished) -> Delivery:
    """The row after ``f`` is recorded (the caller numbers and stores ``f.attempt``).

    Only an ``in_flight`` row changes; one deleted or skipped meanwhile stays.
    """
    if d.status != "in_flight":
        return d
    if f.attempt is None:
        return msgspec.structs.replace(
            d, status="pending", next_attempt_at=f.next_attempt_at, updated=f.now
        )
    return msgspec.structs.replace(
        d,
        status=f.status,
        attempts=f.attempts,
        rate_limited=f.rate_limited,
        next_attempt_at=f.next_attempt_at,
        updated=f.now,
        last_status=f.attempt.status,
        last_error=f.attempt.error,
    )


def apply_operator_action(d: Delivery, action: str, now: float) -> Delivery:
    """The delivery after an operator's ``retry`` or ``skip``.

    ``retry``: a pending, delivered or failed delivery becomes pending and due
    now with a fresh attempt budget (same id, so the same ``webhook-id``).
    ``skip``: a pending delivery becomes failed ("skipped by operator"); this
    is how an operator ends head-of-line blocking in the ordered modes.

    Raises:
        DeliveryConflict: The delivery is in flight, or skip on a finished one.
    """
    if d.status == "in_flight":
        raise DeliveryConflict(f"delivery {d.id} is in flight; try again when it finished")
    if action == "retry":
        return msgspec.structs.replace(
            d,
            status="pending",
            next_attempt_at=now,
            budget_start=d.attempts,
            rate_limited=0,
            updated=now,
        )
    if action == "skip":
        if d.status != "pending":
            raise DeliveryConflict(f"delivery {d.id} is already {d.status}")
        return msgspec.structs.replace(
            d,
            status="failed",
            next_attempt_at=None,
            last_error="skipped by operator",
            updated=now,
        )
    raise ValueError(f"unknown action {action!r}")
