"""The delivery ledger: the ``LedgerStore`` protocol and what its implementations share.

The ledger keeps endpoints, delivery rows and attempts. A delivery moves
``pending → in_flight → delivered | failed`` (a retryable failure goes back to
``pending`` with a later ``next_attempt_at``; an operator retry moves a
finished delivery back to ``pending``).

The contract every store keeps (proved by ``tests/consumers/delivery/test_ledger.py``
for each implementation; a PostgreSQL store must pass the same suite):

* :meth:`LedgerStore.enqueue` inserts delivery rows **and** advances the
  endpoint's consumer offset in one transaction, so no event is skipped and
  none is enqueued twice; live (non-replay) rows are unique per
  ``(endpoint, stream, offset)``.
* :meth:`LedgerStore.claim` picks the deliveries an endpoint may send now and
  marks them ``in_flight`` atomically; which ones depends on the ordering mode
  (:func:`~consumers.delivery.machine_rules.select_claimable` states the
  rule; stores may do it in SQL).
* :meth:`LedgerStore.finish` stores attempts and the new states the machine
  decided (:mod:`consumers.delivery.machine_rules`), ignoring rows that are
  no longer ``in_flight`` (deleted or skipped meanwhile).
* :meth:`LedgerStore.recover` turns every ``in_flight`` row back into
  ``pending`` (run at start-up, before any pump).
* :meth:`LedgerStore.rewrite` reads some rows locked and stores what a pure
  function decided about them (pulled deliveries: :mod:`consumers.delivery.rewrite`).
* Nothing stored here holds a secret except the endpoint documents.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

from consumers.delivery.machine_rules import (
    Claimed,
    DeliveryConflict,
    apply_operator_action,
    select_claimable,
)
from consumers.delivery.model import (
    Attempt,
    Delivery,
    DeliveryStatus,
    Endpoint,
    Finished,
    NewDelivery,
    Ordering,
)
from consumers.delivery.rewrite import Decide, Pick

__all__ = [
    "ATTEMPT_COLUMNS",
    "Claimed",
    "ConsumerAdvance",
    "DeliveryConflict",
    "EndpointCounts",
    "LedgerStore",
    "apply_operator_action",
    "attempt_from_row",
    "counts_from_rows",
    "delivery_from_row",
    "select_claimable",
]


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ConsumerAdvance:
    """Advance consumer ``name`` on ``stream`` to ``offset`` (the next offset to read)."""

    name: str
    stream: str
    offset: int


@dataclass(frozen=True, slots=True)
class EndpointCounts:
    """Unfinished deliveries of an endpoint: counts and the oldest pending creation time."""

    pending: int = 0
    in_flight: int = 0
    oldest_pending: float | None = None


@runtime_checkable
class LedgerStore(Protocol):
    """Where endpoints, deliveries and attempts live. See the module docstring for the contract."""

    async def open(self) -> None:
        """Create or migrate the store's tables."""

    async def put_endpoint(self, endpoint: Endpoint) -> None:
        """Create or replace an endpoint."""

    async def get_endpoint(self, endpoint_id: str) -> Endpoint | None:
        """One endpoint, or None."""
        ...

    async def endpoints(self) -> list[Endpoint]:
        """Every endpoint, ordered by id."""
        ...

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        """Delete an endpoint with its deliveries and attempts; False if unknown."""
        ...

    async def enqueue(
        self,
        endpoint_id: str,
        rows: Sequence[NewDelivery],
        *,
        consumer: ConsumerAdvance | None,
        now: float,
    ) -> int:
        """Insert pending deliveries (and advance the consumer) in one transaction;
        returns the rows inserted (live duplicates are ignored)."""
        ...

    async def claim(self, endpoint_id: str, ordering: Ordering, now: float, limit: int) -> Claimed:
        """Mark up to ``limit`` claimable deliveries ``in_flight`` and return them."""
        ...

    async def finish(self, results: Sequence[Finished]) -> None:
        """Record attempts and the deliveries' new states, in one transaction."""

    async def recover(self, now: float) -> int:
        """Every ``in_flight`` delivery back to ``pending`` (due now); returns how many."""
        ...

    async def deliveries(
        self,
        endpoint_id: str,
        *,
        status: DeliveryStatus | None = None,
        from_seq: int = 0,
        limit: int = 100,
    ) -> list[Delivery]:
        """An endpoint's deliveries with ``seq >= from_seq``, in ``seq`` order."""
        ...

    async def delivery(
        self, endpoint_id: str, delivery_id: str
    ) -> tuple[Delivery, list[Attempt]] | None:
        """One delivery with its attempts (oldest first), or None."""
        ...

    async def act(
        self, endpoint_id: str, delivery_id: str, action: str, now: float
    ) -> Delivery | None:
        """Operator action ``"retry"`` or ``"skip"`` (see :func:`apply_operator_action`);
        None if the delivery is unknown. Raises :class:`DeliveryConflict`."""
        ...

    async def counts(self) -> dict[str, EndpointCounts]:
        """Unfinished deliveries per endpoint id."""
        ...

    async def rewrite(self, endpoint_id: str, pick: Pick, decide: Decide[T]) -> T:
        """Read the picked rows locked, store what ``decide`` makes of them, in one
        transaction; returns its result (see :mod:`consumers.delivery.rewrite`)."""
        ...


def delivery_from_row(r: Any) -> Delivery:
    """A :class:`Delivery` from a SQL row whose columns are, in order: id, seq,
    endpoint_id, stream, offset, event_id, event_type, key, status, attempts,
    budget_start, rate_limited, next_at, created, updated, last_status,
    last_error, replay (both SQL ledgers select them so)."""
    return Delivery(
        id=r[0],
        seq=r[1],
        endpoint_id=r[2],
        stream=r[3],
        offset=r[4],
        event_id=r[5],
        event_type=r[6],
        key=r[7],
        status=r[8],
        attempts=r[9],
        budget_start=r[10],
        rate_limited=r[11],
        next_attempt_at=r[12],
        created=r[13],
        updated=r[14],
        last_status=r[15],
        last_error=r[16],
        replay=bool(r[17]),
    )


#: The attempt columns both SQL ledgers select, in :func:`attempt_from_row`'s order.
ATTEMPT_COLUMNS = "number, started, duration, status, error, verdict, response"


def attempt_from_row(delivery_id: str, a: Any) -> Attempt:
    """An :class:`Attempt` from a SQL row of :data:`ATTEMPT_COLUMNS`."""
    return Attempt(
        delivery_id=delivery_id,
        number=a[0],
        started=a[1],
        duration=a[2],
        status=a[3],
        error=a[4],
        verdict=a[5],
        response=a[6],
    )


def counts_from_rows(rows: Iterable[Any]) -> dict[str, EndpointCounts]:
    """Per endpoint, its counts from ``(endpoint_id, status, count, oldest created)``
    rows of pending and in-flight deliveries (both SQL ledgers group them so)."""
    out: dict[str, EndpointCounts] = {}
    for endpoint_id, status, n, oldest in rows:
        c = out.get(endpoint_id, EndpointCounts())
        if status == "pending":
            out[endpoint_id] = EndpointCounts(n, c.in_flight, oldest)
        else:
            out[endpoint_id] = EndpointCounts(c.pending, n, c.oldest_pending)
    return out
