"""The rules of a shared consumer, pure: who may have which event, and what acks do.

A shared consumer's events are rows of the delivery ledger (one per matching
event, :mod:`consumers.delivery`); a *claim* is a row ``in_flight`` whose
``next_attempt_at`` is the claim's expiry and whose ``attempts`` counts how
many times it was handed out. Every function here takes the rows and ``now``
and returns their new states (a :class:`~consumers.delivery.ledger.Rewrite`
the ledger stores in the transaction that read them) or raises; none awaits
or reads a clock. They are the delivery machine's rules where the two meet
(:mod:`consumers.delivery.machine_rules`): its ``select_claimable`` picks what
a claim may take, an expired claim and a nack are its ``release`` of a claim
(due now, or after the delay), and parking ends a row ``failed``.

=====================  ========================================================
a row is               what happens
=====================  ========================================================
pending, due           claimable (``attempts`` + 1, expires ``now + ack_wait``)
in flight, expired     claimable again: redelivered, to any worker
pending or expired,    parked instead (``max_deliver`` reached): the pump
handed out             appends it to ``<name>.parked`` then marks it ``failed``
``max_deliver`` times
acked                  ``delivered``; acking it again is ``already_acked``
nacked                 pending, due after the delay; its claim is over
extended               still in flight, expires ``now + ack_wait``
=====================  ========================================================

With ``ordered_by_key`` only the oldest unfinished row of each key may be
handed out (a claimed, backing-off or about-to-be-parked head blocks its
key); keyless events are not ordered. A claim id names the row, the attempt
and the worker (``<delivery id>.<attempt>.<worker>``), so a claim that was
redelivered since is recognisably stale, and a worker cannot ack another's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from consumers.delivery.ledger import Rewrite
from consumers.delivery.machine_rules import apply_finished, release, select_claimable
from consumers.delivery.model import Delivery, Ordering
from consumers.shared.errors import (
    AlreadyAcked,
    ClaimExpired,
    ClaimNotFound,
    ClaimNotHeld,
    InvalidDelay,
)
from consumers.shared.model import is_seconds

__all__ = [
    "MAX_DELAY",
    "ClaimId",
    "ClaimPlan",
    "ack",
    "check_delay",
    "claim",
    "extend",
    "nack",
    "parked",
]

#: The longest nack delay, in seconds (a day).
MAX_DELAY = 86_400.0

_replace = msgspec.structs.replace


@dataclass(frozen=True, slots=True)
class ClaimId:
    """A parsed claim id: which row, which hand-out of it, to which worker."""

    delivery_id: str
    attempt: int
    worker: str

    def __str__(self) -> str:
        return f"{self.delivery_id}.{self.attempt}.{self.worker}"

    @classmethod
    def of(cls, row: Delivery, worker: str) -> ClaimId:
        """The id of ``row``'s current claim, held by ``worker``."""
        return cls(row.id, row.attempts, worker)

    @classmethod
    def parse(cls, text: str) -> ClaimId:
        """Parse a claim id.

        Raises:
            ClaimNotFound: Not a claim id.
        """
        parts = text.split(".", 2) if isinstance(text, str) else []
        if len(parts) != 3 or not parts[0] or not parts[1].isdigit() or not parts[2]:
            raise ClaimNotFound(f"no claim {text!r}")
        return cls(parts[0], int(parts[1]), parts[2])


@dataclass(frozen=True, slots=True)
class ClaimPlan:
    """What one claim decided.

    Attributes:
        claimed: Rows handed to the worker (new states, ``in_flight``).
        park: Rows that reached ``max_deliver``: to park (unchanged for now).
        wake_at: When a row blocked only by time becomes claimable (a nack's
            delay or a claim's expiry), if any.
        active: Unfinished rows seen (the window read).
    """

    claimed: list[Delivery]
    park: list[Delivery]
    wake_at: float | None
    active: int


def claim(
    rows: Sequence[Delivery],
    *,
    now: float,
    limit: int,
    ack_wait: float,
    max_deliver: int,
    ordered_by_key: bool,
) -> Rewrite[ClaimPlan]:
    """Hand out up to ``limit`` of the unfinished ``rows`` (in ``seq`` order); see the table.

    The delivery machine's rules decide (:mod:`consumers.delivery.machine_rules`):
    an expired claim is a released one (pending, due now), and its
    ``select_claimable`` picks the due rows (``per-key`` or ``concurrent``).
    """
    view = [apply_finished(d, release(d, now)) if _expired(d, now) else d for d in rows]
    ordering: Ordering = "per-key" if ordered_by_key else "concurrent"
    due = select_claimable(view, ordering, now, len(view))
    stored = {d.id: d for d in rows}
    park = [stored[d.id] for d in due.rows if d.attempts >= max_deliver]
    claimed = [
        _replace(
            d,
            status="in_flight",
            attempts=d.attempts + 1,
            next_attempt_at=now + ack_wait,
            updated=now,
        )
        for d in due.rows
        if d.attempts < max_deliver
    ][:limit]
    expiries = [d.next_attempt_at or now for d in view if d.status == "in_flight"]
    wake = min([*expiries, *([] if due.wake_at is None else [due.wake_at])], default=None)
    return Rewrite(claimed, ClaimPlan(claimed, park, wake, len(rows)))


def _expired(d: Delivery, now: float) -> bool:
    return d.status == "in_flight" and (d.next_attempt_at or 0.0) <= now


def parked(
    rows: Sequence[Delivery], to_park: Sequence[Delivery], now: float, why: str = "max_deliver"
) -> Rewrite[int]:
    """Mark parked rows ``failed`` (``why`` is their last error), those still as they
    were when they were chosen."""
    chosen = {(d.id, d.attempts, d.status, d.next_attempt_at) for d in to_park}
    done = [
        _replace(d, status="failed", next_attempt_at=None, last_error=why, updated=now)
        for d in rows
        if (d.id, d.attempts, d.status, d.next_attempt_at) in chosen
    ]
    return Rewrite(done, len(done))


def _held(
    rows: Sequence[Delivery], claims: Sequence[str], worker: str, now: float
) -> list[Delivery]:
    """The rows of ``claims``, in order, each held by ``worker`` right now; raises for the
    first claim that is not (see :mod:`consumers.shared.errors`)."""
    by_id = {d.id: d for d in rows}
    out: list[Delivery] = []
    taken: set[str] = set()
    for text in claims:
        cid = ClaimId.parse(text)
        d = by_id.get(cid.delivery_id)
        if d is None or cid.attempt < 1 or cid.attempt > d.attempts:
            raise ClaimNotFound(f"no claim {text!r}")
        if cid.worker != worker:
            raise ClaimNotHeld(f"claim {text!r} is held by worker {cid.worker!r}, not {worker!r}")
        current = cid.attempt == d.attempts
        if current and (d.status == "delivered" or d.id in taken):
            raise AlreadyAcked(f"claim {text!r} was already acked or released")
        if not current or d.status != "in_flight" or (d.next_attempt_at or 0.0) <= now:
            raise ClaimExpired(
                f"claim {text!r} expired or was released; the event may be with another worker"
            )
        taken.add(d.id)
        out.append(d)
    return out


def ack(
    rows: Sequence[Delivery], claims: Sequence[str], *, worker: str, now: float
) -> Rewrite[int]:
    """Ack every claim (all or none): their rows become ``delivered``."""
    held = _held(rows, claims, worker, now)
    done = [_replace(d, status="delivered", next_attempt_at=None, updated=now) for d in held]
    return Rewrite(done, len(done))


def nack(
    rows: Sequence[Delivery], claims: Sequence[str], *, worker: str, now: float, delay: float
) -> Rewrite[int]:
    """Give every claim back (all or none): pending again, due after ``delay`` seconds."""
    held = _held(rows, claims, worker, now)
    # A nack is a released claim (the machine's transition) due after the delay.
    back = [apply_finished(d, _replace(release(d, now), next_attempt_at=now + delay)) for d in held]
    return Rewrite(back, len(back))


def extend(
    rows: Sequence[Delivery], claims: Sequence[str], *, worker: str, now: float, ack_wait: float
) -> Rewrite[float]:
    """Work in progress: every claim (all or none) expires ``ack_wait`` from now."""
    held = _held(rows, claims, worker, now)
    until = now + ack_wait
    return Rewrite([_replace(d, next_attempt_at=until, updated=now) for d in held], until)


def check_delay(delay: object) -> float:
    """A nack delay as seconds.

    Raises:
        InvalidDelay: Not a number in ``[0, MAX_DELAY]``.
    """
    if not is_seconds(delay, MAX_DELAY):
        raise InvalidDelay(
            f"delay must be a number of seconds from 0 to {MAX_DELAY:.0f}, not {delay!r}",
            path="$.delay",
        )
    return float(delay)
