"""The in-memory :class:`~consumers.delivery.ledger.LedgerStore`: for the in-memory log, tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

import msgspec

from consumers.delivery.ledger import (
    SHARED_PREFIX,
    ClaimRequest,
    EndpointCounts,
    Enqueue,
    counts_from_rows,
)
from consumers.delivery.machine_rules import Claimed, apply_finished, release, select_claimable
from consumers.delivery.model import (
    FINISHED,
    Attempt,
    Delivery,
    DeliveryStatus,
    Endpoint,
    Finished,
    NewDelivery,
)
from consumers.delivery.rewrite import Decide, Pick

__all__ = ["MemoryLedger", "OffsetStore"]

T = TypeVar("T")


class OffsetStore(Protocol):
    """Where consumer offsets are committed (an ``EventLog`` or its ``Storage``)."""

    async def commit_offset(self, consumer: str, stream: str, offset: int) -> None:
        """Durably store ``offset`` as the consumer's next offset on ``stream``."""


class MemoryLedger:
    """A :class:`LedgerStore` in memory (for the in-memory log and tests).

    Consumer offsets go to ``offsets`` (the log) right after the rows are stored;
    in one process that is as atomic as the in-memory log itself.
    """

    shared = None  # one process

    def __init__(self, offsets: OffsetStore) -> None:
        self._offsets = offsets
        self._endpoints: dict[str, Endpoint] = {}
        self._rows: dict[str, Delivery] = {}
        self._live: set[tuple[str, str, int]] = set()
        self._attempts: dict[str, list[Attempt]] = {}
        self._seq = 0

    async def open(self) -> None:
        return None

    async def put_endpoint(self, endpoint: Endpoint) -> None:
        self._endpoints[endpoint.id] = endpoint

    async def get_endpoint(self, endpoint_id: str) -> Endpoint | None:
        return self._endpoints.get(endpoint_id)

    async def endpoints(self) -> list[Endpoint]:
        return [self._endpoints[k] for k in sorted(self._endpoints)]

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        if self._endpoints.pop(endpoint_id, None) is None:
            return False
        for key, d in list(self._rows.items()):
            if d.endpoint_id == endpoint_id:
                del self._rows[key]
                self._attempts.pop(key, None)
        self._live = {k for k in self._live if k[0] != endpoint_id}
        return True

    def _enqueue(self, endpoint_id: str, rows: Sequence[NewDelivery], now: float) -> int:
        inserted = 0
        for r in rows:
            live = (endpoint_id, r.stream, r.offset)
            if not r.replay and live in self._live:
                continue
            if r.id in self._rows:
                continue
            if not r.replay:
                self._live.add(live)
            self._seq += 1
            self._rows[r.id] = Delivery(
                **msgspec.structs.asdict(r),
                seq=self._seq,
                endpoint_id=endpoint_id,
                status="pending",
                created=now,
                updated=now,
            )
            inserted += 1
        return inserted

    def _active(self, endpoint_id: str) -> list[Delivery]:
        rows = [
            d
            for d in self._rows.values()
            if d.endpoint_id == endpoint_id and d.status in ("pending", "in_flight")
        ]
        rows.sort(key=lambda d: d.seq)
        return rows

    def _claim(self, c: ClaimRequest, now: float) -> Claimed:
        claimed = select_claimable(self._active(c.endpoint_id), c.ordering, now, c.limit)
        out = []
        for d in claimed.rows:
            d = msgspec.structs.replace(d, status="in_flight", updated=now)
            self._rows[d.id] = d
            out.append(d)
        return Claimed(out, claimed.wake_at)

    def _finish(self, results: Sequence[Finished]) -> None:
        for f in results:
            d = self._rows.get(f.delivery_id)
            if d is None or d.status != "in_flight":
                continue
            if f.attempt is not None:
                attempts = self._attempts.setdefault(d.id, [])
                attempts.append(msgspec.structs.replace(f.attempt, number=len(attempts) + 1))
            self._rows[d.id] = apply_finished(d, f)

    async def write(
        self,
        enqueues: Sequence[Enqueue],
        finished: Sequence[Finished],
        claims: Sequence[ClaimRequest],
        now: float,
    ) -> tuple[list[int], list[Claimed]]:
        inserted = []
        for e in enqueues:
            inserted.append(self._enqueue(e.endpoint_id, e.rows, now))
            if e.consumer is not None:
                c = e.consumer
                await self._offsets.commit_offset(c.name, c.stream, c.offset)
        self._finish(finished)
        return inserted, [self._claim(c, now) for c in claims]

    async def recover(self, now: float) -> int:
        claimed = [
            d
            for d in self._rows.values()
            if d.status == "in_flight" and not d.endpoint_id.startswith(SHARED_PREFIX)
        ]
        self._finish([release(d, now) for d in claimed])
        return len(claimed)

    async def deliveries(
        self,
        endpoint_id: str,
        *,
        status: DeliveryStatus | None = None,
        from_seq: int = 0,
        limit: int = 100,
    ) -> list[Delivery]:
        rows = [
            d
            for d in self._rows.values()
            if d.endpoint_id == endpoint_id and d.seq >= from_seq and status in (None, d.status)
        ]
        return sorted(rows, key=lambda d: d.seq)[:limit]

    async def delivery(
        self, endpoint_id: str, delivery_id: str
    ) -> tuple[Delivery, list[Attempt]] | None:
        d = self._rows.get(delivery_id)
        if d is None or d.endpoint_id != endpoint_id:
            return None
        return d, list(self._attempts.get(delivery_id, []))

    async def counts(self) -> dict[str, EndpointCounts]:
        created: dict[tuple[str, str], list[float]] = {}
        for d in self._rows.values():
            if d.status in ("pending", "in_flight"):
                created.setdefault((d.endpoint_id, d.status), []).append(d.created)
        return counts_from_rows((e, status, len(c), min(c)) for (e, status), c in created.items())

    async def prune(self, before: float, limit: int) -> int:
        old = sorted(
            (d for d in self._rows.values() if d.status in FINISHED and d.updated < before),
            key=lambda d: d.updated,
        )[:limit]
        for d in old:
            del self._rows[d.id]
            self._attempts.pop(d.id, None)
            if not d.replay:  # as the SQL ledgers' unique index: gone with the row
                self._live.discard((d.endpoint_id, d.stream, d.offset))
        return len(old)

    async def rewrite(self, endpoint_id: str, pick: Pick, decide: Decide[T]) -> T:
        if pick.ids is not None:
            rows = sorted(
                (
                    d
                    for i in set(pick.ids)
                    if (d := self._rows.get(i)) is not None and d.endpoint_id == endpoint_id
                ),
                key=lambda d: d.seq,
            )
        elif pick.due is not None:
            due = pick.due
            active = self._active(endpoint_id)
            rows = [d for d in active if (d.next_attempt_at or 0.0) <= due][: pick.active]
            later = [
                d for d in active if d.status == "pending" and (d.next_attempt_at or 0.0) > due
            ]
            if later:
                rows.append(min(later, key=lambda d: d.next_attempt_at or 0.0))
                rows.sort(key=lambda d: d.seq)
        else:
            rows = self._active(endpoint_id)[: pick.active]
        decision = decide(rows)
        for d in decision.rows:
            self._rows[d.id] = d
        return decision.result
