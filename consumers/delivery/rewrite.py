"""Rewriting delivery rows under the ledger's lock with a pure decision.

:meth:`~consumers.delivery.ledger.LedgerStore.rewrite` reads the rows a
:class:`Pick` names, locked for the transaction, calls ``decide(rows)`` (pure;
it may raise to refuse, and nothing is written) and writes the state of
:attr:`Rewrite.rows` back by ``seq``. Operator actions and shared consumers'
claim, ack, nack and extend work so.
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
        ids: These deliveries (any status; unknown ids are absent).
        active: Else, the first ``active`` unfinished rows in ``seq`` order.
        due: With ``active``, only those whose ``next_attempt_at`` is at or
            before it (due rows, expired claims), plus the pending row due next,
            if any (so a decision can tell when it is due).
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
