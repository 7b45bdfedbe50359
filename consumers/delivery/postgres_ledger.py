"""The PostgreSQL :class:`~consumers.delivery.ledger.LedgerStore`: shared by every process.

The tables are the ``webhooks`` component of the log's PostgreSQL schema,
column for column the SQLite ledger's (so ``eventlog migrate`` copies them
as they are; :mod:`~consumers.delivery.postgres_ledger_schema`), plus
``claimed_by``. Each write is one transaction on a pooled
connection; :meth:`PostgresLedger.enqueue` stores the delivery rows and the
consumer's offset (:func:`eventlog.storage.postgres.set_offset`) together.

Several processes share the delivery work without double-sending: claims
carry the claiming process's owner token, and rows of a process that is gone
go back to ``pending`` (at start-up, :meth:`PostgresLedger.recover`, and while
running, :meth:`PostgresLedger.sweep`); see
:mod:`~consumers.delivery.postgres_ledger_claims`.

Every change other processes must hear of is notified in its own transaction
on the channel ``<schema>_delivery`` (:mod:`consumers.delivery.changes`):
``pending:<endpoint>`` when rows become claimable, ``endpoint:<endpoint>``
when an endpoint is stored or deleted. :meth:`PostgresLedger.watch` hears them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import asyncpg
import msgspec

from consumers.delivery.changes import TOPIC, Change, EndpointChanged, encode_change, parse_change
from consumers.delivery.ledger import (
    ATTEMPT_COLUMNS,
    Claimed,
    ClaimRequest,
    EndpointCounts,
    Enqueue,
    WritesInOne,
    attempt_from_row,
    counts_from_rows,
)
from consumers.delivery.model import (
    Attempt,
    Delivery,
    DeliveryStatus,
    Endpoint,
    Finished,
    NewDelivery,
)
from consumers.delivery.postgres_ledger_claims import (
    claim_concurrent,
    claim_serial,
    finish,
    new_token,
    notify_pending,
    owner_lease,
    sweep,
)
from consumers.delivery.postgres_ledger_schema import (
    AFTER_COPY,
    COLUMNS,
    MIGRATIONS,
    TABLES,
    delivery_from_row,
)
from consumers.delivery.rewrite import Decide, Pick
from eventlog.sealed import SecretBox
from eventlog.storage.capabilities import PostgresTables
from eventlog.storage.leases import Lease
from eventlog.storage.postgres import set_offset
from eventlog.storage.postgres_schema import advisory_key

__all__ = ["AFTER_COPY", "MIGRATIONS", "TABLES", "PostgresLedger"]

T = TypeVar("T")

_encode = msgspec.json.encode
_decode_endpoint = msgspec.json.Decoder(Endpoint).decode
_COLUMNS = COLUMNS
_row = delivery_from_row


def _state(d: Delivery) -> tuple[str, int, int, int, float | None]:
    return d.status, d.attempts, d.budget_start, d.rate_limited, d.next_attempt_at


class PostgresLedger(WritesInOne):
    """The ledger in the log's PostgreSQL schema.

    Args:
        storage: The log's (open) PostgreSQL database (its storage's declared
            :class:`~eventlog.storage.capabilities.PostgresTables`).
    """

    def __init__(self, storage: PostgresTables, *, secrets: SecretBox | None = None) -> None:
        self._storage = storage
        #: Seals endpoint documents (their secrets, headers, URLs) at rest.
        self._secrets = secrets or SecretBox()
        self._s = storage.schema
        #: This process's owner token (``claimed_by`` of the rows it claims).
        self.token = new_token()
        #: The channel of this ledger's notifications (``<schema>_delivery``).
        self.channel = f"{self._s}_{TOPIC}"
        self._alive: Lease | None = None
        #: Several processes share this ledger (:mod:`consumers.delivery.cluster`).
        self.shared = self

    async def open(self) -> None:
        """Create or migrate the tables; take this process's liveness lease."""
        await self._storage.ensure_schema("webhooks", MIGRATIONS)
        await self._keep_alive()

    async def _changed(self, c: asyncpg.Connection, endpoint_id: str) -> None:
        await c.execute(
            "SELECT pg_notify($1, $2)", self.channel, encode_change(EndpointChanged(endpoint_id))
        )

    # -- endpoints -------------------------------------------------------------

    def _open(self, doc: bytes) -> Endpoint:
        return _decode_endpoint(self._secrets.open(doc, "a webhook endpoint"))

    async def put_endpoint(self, endpoint: Endpoint) -> None:
        doc = self._secrets.seal(_encode(endpoint))

        async def txn(c: asyncpg.Connection) -> None:
            await c.execute(
                f"INSERT INTO {self._s}.webhook_endpoints (id, doc) VALUES ($1, $2) "
                "ON CONFLICT (id) DO UPDATE SET doc = excluded.doc",
                endpoint.id,
                doc,
            )
            await self._changed(c, endpoint.id)

        await self._storage.transact(txn, "put endpoint")

    async def get_endpoint(self, endpoint_id: str) -> Endpoint | None:
        doc = await self._storage.query(
            lambda c: c.fetchval(
                f"SELECT doc FROM {self._s}.webhook_endpoints WHERE id = $1", endpoint_id
            )
        )
        return None if doc is None else self._open(doc)

    async def endpoints(self) -> list[Endpoint]:
        rows = await self._storage.query(
            lambda c: c.fetch(
                f'SELECT doc FROM {self._s}.webhook_endpoints ORDER BY id COLLATE "C"'
            )
        )
        return [self._open(r[0]) for r in rows]

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        s = self._s

        async def txn(c: asyncpg.Connection) -> bool:
            await c.execute(
                f"DELETE FROM {s}.webhook_attempts WHERE delivery_id IN "
                f"(SELECT id FROM {s}.webhook_deliveries WHERE endpoint_id = $1)",
                endpoint_id,
            )
            await c.execute(
                f"DELETE FROM {s}.webhook_deliveries WHERE endpoint_id = $1", endpoint_id
            )
            deleted = await c.fetchval(
                f"DELETE FROM {s}.webhook_endpoints WHERE id = $1 RETURNING id", endpoint_id
            )
            await self._changed(c, endpoint_id)
            return deleted is not None

        return await self._storage.transact(txn, "delete endpoint")

    # -- deliveries --------------------------------------------------------------

    async def write(
        self,
        enqueues: Sequence[Enqueue],
        finished: Sequence[Finished],
        claims: Sequence[ClaimRequest],
        now: float,
    ) -> tuple[list[int], list[Claimed]]:
        s, channel, token = self._s, self.channel, self.token
        columns = [_columns(e.rows) for e in enqueues]
        # Claims take the ordered modes' endpoint locks in one order: no deadlock
        # between two processes' transactions.
        order = sorted(range(len(claims)), key=lambda i: claims[i].endpoint_id)

        async def txn(c: asyncpg.Connection) -> tuple[list[int], list[Claimed]]:
            inserted = [
                await _enqueue(c, s, channel, e, cols, now)
                for e, cols in zip(enqueues, columns, strict=True)
            ]
            if finished:
                await finish(c, s, channel, finished, token)
            claimed: dict[int, Claimed] = {}
            for i in order:
                e, ordering, limit = claims[i].endpoint_id, claims[i].ordering, claims[i].limit
                if ordering == "concurrent":
                    claimed[i] = await claim_concurrent(c, s, e, now, limit, token)
                else:
                    claimed[i] = await claim_serial(c, s, e, ordering, now, limit, token)
            return inserted, [claimed[i] for i in range(len(claims))]

        return await self._storage.transact(txn, "write deliveries")

    async def recover(self, now: float) -> int:
        """Return the in-flight rows of gone processes (and this one's) to pending."""
        await self._keep_alive()
        returned = await sweep(self._storage, self.channel, self.token, now, own=True)
        return sum(returned.values())

    async def sweep(self, now: float) -> dict[str, int]:
        """Return the in-flight rows of processes that are gone to ``pending``, while
        running (see :mod:`~consumers.delivery.postgres_ledger_claims`); the rows
        returned per endpoint id."""
        await self._keep_alive()
        return await sweep(self._storage, self.channel, self.token, now, own=False)

    async def _keep_alive(self) -> None:
        # The lease is lost with its connection (a network blip): take it
        # again, or every other process would keep sweeping our claims.
        if self._alive is None or not self._alive.held:
            self._alive = await self._storage.acquire_lease(owner_lease(self.token))

    async def watch(self, listener: Callable[[Change], None]) -> Callable[[], None]:
        """Call ``listener`` with every :class:`~consumers.delivery.changes.Change`
        any process makes (this one's too); returns the call that stops it."""

        def heard(payload: str | None) -> None:
            change = parse_change(payload)
            if change is not None:
                listener(change)

        return await self._storage.subscribe(self.channel, heard)

    async def deliveries(
        self,
        endpoint_id: str,
        *,
        status: DeliveryStatus | None = None,
        from_seq: int = 0,
        limit: int = 100,
    ) -> list[Delivery]:
        sql = (
            f"SELECT {_COLUMNS} FROM {self._s}.webhook_deliveries "
            "WHERE endpoint_id = $1 AND seq >= $2"
        )
        args: list[Any] = [endpoint_id, from_seq]
        if status is not None:
            sql += " AND status = $3"
            args.append(status)
        sql += f" ORDER BY seq LIMIT ${len(args) + 1}"
        args.append(limit)
        rows = await self._storage.query(lambda c: c.fetch(sql, *args))
        return [_row(r) for r in rows]

    async def delivery(
        self, endpoint_id: str, delivery_id: str
    ) -> tuple[Delivery, list[Attempt]] | None:
        s = self._s

        async def q(c: asyncpg.Connection) -> tuple[Delivery, list[Attempt]] | None:
            r = await c.fetchrow(
                f"SELECT {_COLUMNS} FROM {s}.webhook_deliveries WHERE id = $1 AND endpoint_id = $2",
                delivery_id,
                endpoint_id,
            )
            if r is None:
                return None
            attempts = [
                attempt_from_row(delivery_id, a)
                for a in await c.fetch(
                    f"SELECT {ATTEMPT_COLUMNS} "
                    f"FROM {s}.webhook_attempts WHERE delivery_id = $1 ORDER BY number",
                    delivery_id,
                )
            ]
            return _row(r), attempts

        return await self._storage.query(q)

    async def counts(self) -> dict[str, EndpointCounts]:
        rows = await self._storage.query(
            lambda c: c.fetch(
                "SELECT endpoint_id, status, count(*), min(created) "
                f"FROM {self._s}.webhook_deliveries WHERE status IN ('pending', 'in_flight') "
                "GROUP BY endpoint_id, status"
            )
        )
        return counts_from_rows(rows)

    async def rewrite(self, endpoint_id: str, pick: Pick, decide: Decide[T]) -> T:
        """Rows of the active window are read under the endpoint's claim lock (the one
        the ordered modes' claims take), and every picked row ``FOR UPDATE``."""
        s = self._s

        async def txn(c: asyncpg.Connection) -> T:
            if pick.ids is not None:
                found = await c.fetch(
                    f"SELECT {_COLUMNS} FROM {s}.webhook_deliveries WHERE endpoint_id = $1 "
                    "AND id = ANY($2::text[]) ORDER BY seq FOR UPDATE",
                    endpoint_id,
                    list(dict.fromkeys(pick.ids)),
                )
            else:
                await c.execute(
                    "SELECT pg_advisory_xact_lock($1)", advisory_key(s, "claim", endpoint_id)
                )
                if pick.due is None:
                    found = await c.fetch(
                        f"SELECT {_COLUMNS} FROM {s}.webhook_deliveries WHERE endpoint_id = $1 "
                        "AND status IN ('pending', 'in_flight') ORDER BY seq LIMIT $2 FOR UPDATE",
                        endpoint_id,
                        pick.active,
                    )
                else:
                    found = await c.fetch(
                        f"SELECT {_COLUMNS} FROM {s}.webhook_deliveries WHERE endpoint_id = $1 "
                        "AND status IN ('pending', 'in_flight') AND coalesce(next_at, 0) <= $3 "
                        "ORDER BY seq LIMIT $2 FOR UPDATE",
                        endpoint_id,
                        pick.active,
                        pick.due,
                    )
                    found += await c.fetch(
                        f"SELECT {_COLUMNS} FROM {s}.webhook_deliveries WHERE endpoint_id = $1 "
                        "AND status = 'pending' AND next_at > $2 ORDER BY next_at LIMIT 1",
                        endpoint_id,
                        pick.due,
                    )
                    found.sort(key=lambda r: r["seq"])
            decision = decide([_row(r) for r in found])
            if decision.rows:
                await c.executemany(
                    f"UPDATE {s}.webhook_deliveries SET status = $1, attempts = $2, "
                    "budget_start = $3, rate_limited = $4, next_at = $5, updated = $6, "
                    "last_error = $7 WHERE seq = $8",
                    [(*_state(d), d.updated, d.last_error, d.seq) for d in decision.rows],
                )
            if any(d.status == "pending" for d in decision.rows):
                await notify_pending(c, self.channel, [endpoint_id])
            return decision.result

        return await self._storage.transact(txn, "rewrite deliveries")


def _columns(rows: Sequence[NewDelivery]) -> list[list[Any]]:
    """The rows' values, column by column (for ``unnest``)."""
    columns: list[list[Any]] = [[], [], [], [], [], [], [], []]
    for r in rows:
        values = (r.id, r.stream, r.offset, r.event_id, r.event_type, r.key, r.next_attempt_at)
        for column, value in zip(columns, (*values, int(r.replay)), strict=True):
            column.append(value)
    return columns


async def _enqueue(
    c: asyncpg.Connection, s: str, channel: str, e: Enqueue, columns: list[list[Any]], now: float
) -> int:
    """Insert an enqueue's rows (``columns``), advance its consumer, say there are rows."""
    inserted = 0
    if e.rows:
        inserted = await c.fetchval(
            f"WITH i AS (INSERT INTO {s}.webhook_deliveries (id, endpoint_id, stream, "
            '"offset", event_id, event_type, key, status, next_at, created, updated, '
            "replay) "
            "SELECT v.id, $1, v.stream, v.off, v.event_id, v.event_type, v.key, 'pending', "
            "v.next_at, $2, $2, v.replay FROM unnest($3::text[], $4::text[], $5::bigint[], "
            "$6::text[], $7::text[], $8::text[], $9::float8[], $10::int[]) "
            "AS v(id, stream, off, event_id, event_type, key, next_at, replay) "
            "ON CONFLICT DO NOTHING RETURNING 1) SELECT count(*) FROM i",
            e.endpoint_id,
            now,
            *columns,
        )
    if e.consumer is not None:
        await set_offset(c, s, e.consumer.name, e.consumer.stream, e.consumer.offset)
    if inserted:
        await notify_pending(c, channel, [e.endpoint_id])
    return int(inserted)
