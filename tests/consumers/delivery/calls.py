"""One enqueue, claim or finish as a :meth:`LedgerStore.write` of one part, for ledger tests."""

from __future__ import annotations

from collections.abc import Sequence

from consumers.delivery.ledger import ClaimRequest, ConsumerAdvance, Enqueue, LedgerStore
from consumers.delivery.machine_rules import Claimed
from consumers.delivery.model import Finished, NewDelivery, Ordering

__all__ = ["claim", "enqueue", "finish"]


async def enqueue(
    store: LedgerStore,
    endpoint_id: str,
    rows: Sequence[NewDelivery],
    *,
    consumer: ConsumerAdvance | None,
    now: float,
) -> int:
    """Store pending ``rows`` (and advance ``consumer``); the rows inserted."""
    return (await store.write([Enqueue(endpoint_id, rows, consumer)], (), (), now))[0][0]


async def claim(
    store: LedgerStore, endpoint_id: str, ordering: Ordering, now: float, limit: int
) -> Claimed:
    """Claim up to ``limit`` rows of ``endpoint_id``."""
    return (await store.write((), (), [ClaimRequest(endpoint_id, ordering, limit)], now))[1][0]


async def finish(store: LedgerStore, results: Sequence[Finished]) -> None:
    """Record ``results``."""
    await store.write((), results, (), 0.0)
