"""Rewriting delivery rows under the ledger's lock with a pure decision.

:meth:`~consumers.delivery.ledger.LedgerStore.rewrite` reads the rows a
:class:`Pick` names, locked for the transaction (SQLite: the single writer;
PostgreSQL: ``FOR UPDATE``, and an advisory lock on the endpoint for the active
window), calls ``decide(rows)`` (pure: ``now`` is in the closure; it may raise
to refuse, and then nothing is written) and writes :attr:`Rewrite.rows` back by
``seq``: ``status``, ``attempts``, ``budget_start``, ``rate_limited``,
``next_attempt_at``, ``updated`` and ``last_error``. Operator actions
(:func:`~consumers.delivery.ledger.act`) and pulled deliveries
(:mod:`consumers.shared`: claim, ack, nack, extend) work so.
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
