"""The delivery ledger: the ``LedgerStore`` protocol and the requests it takes.

A ledger keeps endpoints, delivery rows and attempts, and stores what the
rules of :mod:`consumers.delivery.machine_rules` decided; it decides nothing
itself. ``tests/consumers/delivery/test_ledger.py`` runs its contract against
every store. Only the endpoint documents hold secrets.

:meth:`LedgerStore.rewrite` reads the rows a :class:`Pick` names, locked for the
transaction, calls ``decide(rows)`` (pure; it may raise to refuse, and nothing
is written) and writes the state of :attr:`Rewrite.rows` back by ``seq``.
Operator actions and shared consumers' claim, ack, nack and extend work so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from consumers.delivery.cluster import SharedLedger
from consumers.delivery.machine_rules import Claimed, DeliveryConflict, apply_operator_action
from consumers.delivery.model import (
    Attempt,
    Delivery,
    DeliveryStatus,
    Endpoint,
    Finished,
    NewDelivery,
    Ordering,
)

__all__ = [
    "SHARED_PREFIX",
    "ClaimRequest",
    "Claimed",
    "ConsumerAdvance",
    "Decide",
    "DeliveryConflict",
    "EndpointCounts",
    "Enqueue",
    "LedgerStore",
    "Pick",
    "Rewrite",
    "act",
]


T = TypeVar("T")

#: Endpoint ids of shared consumers' rows start with this (``shared:<name>``).
SHARED_PREFIX = "shared:"


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


@dataclass(frozen=True, slots=True)
class ConsumerAdvance:
    """Advance consumer ``name`` on ``stream`` to ``offset`` (the next offset to read)."""

    name: str
    stream: str
    offset: int


@dataclass(frozen=True, slots=True)
class Enqueue:
    """Pending rows for ``endpoint_id``, stored with ``consumer``'s advance (if any)."""

    endpoint_id: str
    rows: Sequence[NewDelivery]
    consumer: ConsumerAdvance | None


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """Claim up to ``limit`` deliveries of ``endpoint_id`` by its ``ordering``."""

    endpoint_id: str
    ordering: Ordering
    limit: int


@dataclass(frozen=True, slots=True)
class EndpointCounts:
    """Unfinished deliveries of an endpoint: counts and the oldest pending creation time."""

    pending: int = 0
    in_flight: int = 0
    oldest_pending: float | None = None


class LedgerStore(Protocol):
    """Where endpoints, deliveries and attempts live. See the module docstring for the contract."""

    @property
    def shared(self) -> SharedLedger | None:
        """What other processes share of this ledger; None if only this process uses it."""

    async def open(self) -> None:
        """Create or migrate the store's tables."""

    async def put_endpoint(self, endpoint: Endpoint) -> None:
        """Create or replace an endpoint."""

    async def get_endpoint(self, endpoint_id: str) -> Endpoint | None:
        """One endpoint, or None."""

    async def endpoints(self) -> list[Endpoint]:
        """Every endpoint, ordered by id."""

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        """Delete an endpoint with its deliveries and attempts; False if unknown."""

    async def write(
        self,
        enqueues: Sequence[Enqueue],
        finished: Sequence[Finished],
        claims: Sequence[ClaimRequest],
        now: float,
    ) -> tuple[list[int], list[Claimed]]:
        """Store ``enqueues``, record ``finished``, then make ``claims``, in one
        transaction; returns the rows inserted per enqueue and the rows claimed per claim.

        An enqueue inserts pending rows (a live row is unique per ``(endpoint,
        stream, offset)``: duplicates are ignored) with its consumer's advance; a
        finish records attempts and new states of rows still ``in_flight``; a claim
        marks up to ``limit`` rows ``in_flight`` (which ones:
        :func:`~consumers.delivery.machine_rules.select_claimable`)."""

    async def recover(self, now: float) -> int:
        """Every ``in_flight`` delivery back to ``pending`` (due now), run at start-up;
        how many. Shared consumers' claims (:data:`SHARED_PREFIX`) expire by their
        own ``ack_wait``, so a worker can ack one across a server restart."""

    async def deliveries(
        self,
        endpoint_id: str,
        *,
        status: DeliveryStatus | None = None,
        from_seq: int = 0,
        limit: int = 100,
    ) -> list[Delivery]:
        """An endpoint's deliveries with ``seq >= from_seq``, in ``seq`` order."""

    async def delivery(
        self, endpoint_id: str, delivery_id: str
    ) -> tuple[Delivery, list[Attempt]] | None:
        """One delivery with its attempts (oldest first), or None."""

    async def counts(self) -> dict[str, EndpointCounts]:
        """Unfinished deliveries per endpoint id."""

    async def rewrite(self, endpoint_id: str, pick: Pick, decide: Decide[T]) -> T:
        """Read the picked rows locked, store what ``decide`` makes of them, in one
        transaction; returns its result (see the module docstring)."""

    async def prune(self, before: float, limit: int) -> int:
        """Delete up to ``limit`` finished deliveries last updated before ``before``,
        with their attempts, in one transaction; how many. Several processes may
        prune at once."""


async def act(
    store: LedgerStore, endpoint_id: str, delivery_id: str, action: str, now: float
) -> Delivery | None:
    """Operator action ``"retry"`` or ``"skip"`` on one delivery, stored by a
    :meth:`LedgerStore.rewrite` (:func:`~consumers.delivery.machine_rules.apply_operator_action`
    decides); None if the delivery is unknown.

    Raises:
        DeliveryConflict: The action does not fit the delivery's state.
    """

    def decide(rows: list[Delivery]) -> Rewrite[Delivery | None]:
        if not rows:
            return Rewrite([], None)
        d = apply_operator_action(rows[0], action, now)
        return Rewrite([d], d)

    return await store.rewrite(endpoint_id, Pick(ids=(delivery_id,)), decide)
