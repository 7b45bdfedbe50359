"""Rewriting delivery rows under the ledger's lock with a pure decision.

The ledger operation of *pulled* deliveries (shared consumers,
:mod:`consumers.shared`): a worker's claim, ack, nack or extension reads some
rows of one endpoint, a pure function decides their new states (and may
refuse the whole request by raising), and the ledger stores the decision in
the same transaction. :meth:`~consumers.delivery.ledger.LedgerStore.rewrite`
is that operation; every store implements it:

* it reads the rows :class:`Pick` names, locked for the transaction (SQLite:
  the single writer; PostgreSQL: an advisory lock on the endpoint for the
  active window, and ``FOR UPDATE`` on the rows), so two processes never
  decide on the same rows at once;
* it calls ``decide(rows)`` (no I/O, no awaits, no clock reads: ``now`` is
  in the closure) and writes the rows of :attr:`Rewrite.rows` back, matched
  by ``seq``: ``status``, ``attempts``, ``next_attempt_at``, ``updated`` and
  ``last_error``;
* if ``decide`` raises, nothing is written and the error propagates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from consumers.delivery.model import Delivery

__all__ = ["Decide", "Pick", "Rewrite"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Pick:
    """Which rows of an endpoint a rewrite reads.

    Attributes:
        ids: These deliveries (any status; unknown ids are simply absent).
        active: Else, the first ``active`` unfinished (``pending`` or
            ``in_flight``) rows in ``seq`` order.
        due: With ``active``, only rows claimable at this time: the first
            ``active`` unfinished rows whose ``next_attempt_at`` is at or before
            it (due pending rows, expired claims), plus the pending row due
            next, if any (so a decision can tell when a delayed row is due; an
            expiring claim is not looked for). The store filters, so a claim
            that needs no per-key view reads what it can hand out, not the
            whole window.
    """

    ids: tuple[str, ...] | None = None
    active: int = 0
    due: float | None = None


@dataclass(frozen=True, slots=True)
class Rewrite(Generic[T]):
    """A decision: the new states of the rows that change, and what to return."""

    rows: Sequence[Delivery]
    result: T


Decide = Callable[[list[Delivery]], Rewrite[T]]
"""Decides on the picked rows (in ``seq`` order); pure, may raise to refuse."""
