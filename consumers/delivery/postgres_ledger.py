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

import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import asyncpg

from consumers.delivery.changes import (
    TOPIC,
    Change,
    EndpointChanged,
    Pending,
    encode_change,
    parse_change,
)
from consumers.delivery.ledger import Claimed, ClaimRequest, Enqueue
from consumers.delivery.model import Finished, NewDelivery
from consumers.delivery.postgres_ledger_claims import (
    NOTIFY,
    claim_concurrent,
    claim_serial,
    finish,
    new_token,
    notify_pending,
    owner_lease,
    sweep,
)
from consumers.delivery.postgres_ledger_schema import AFTER_COPY, MIGRATIONS, TABLES
from consumers.delivery.sql_ledger import Dialect, Plan, SQLLedger, Stmt
from eventlog.sealed import SecretBox
from eventlog.storage.capabilities import PostgresTables
from eventlog.storage.leases import Lease
from eventlog.storage.postgres import set_offset
from eventlog.storage.postgres_schema import advisory_key

__all__ = ["AFTER_COPY", "MIGRATIONS", "TABLES", "PostgresLedger"]

T = TypeVar("T")


@functools.lru_cache(maxsize=512)
def _numbered(sql: str) -> str:
    """``sql`` with its ``?`` placeholders numbered (``$1``, ``$2``, ...)."""
    head, *tail = sql.split("?")
    return head + "".join(f"${i}{part}" for i, part in enumerate(tail, 1))


class PostgresLedger(SQLLedger):
    """The ledger in the log's PostgreSQL schema.

    Args:
        storage: The log's (open) PostgreSQL database (its storage's declared
            :class:`~eventlog.storage.capabilities.PostgresTables`).
    """

    def __init__(self, storage: PostgresTables, *, secrets: SecretBox | None = None) -> None:
        self._s = storage.schema
        super().__init__(
            Dialect(f"{self._s}.", by_id='id COLLATE "C"', for_update=" FOR UPDATE"), secrets
        )
        self._storage = storage
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

    async def _run(self, plan: Plan[T], what: str | None) -> T:
        async def run(c: asyncpg.Connection) -> T:
            try:
                stmt = next(plan)
                while True:
                    if stmt.many:
                        await c.executemany(_numbered(stmt.sql), stmt.args)
                        stmt = plan.send([])
                    else:
                        stmt = plan.send(await c.fetch(_numbered(stmt.sql), *stmt.args))
            except StopIteration as done:
                result: T = done.value
                return result

        if what is None:
            return await self._storage.query(run)
        return await self._storage.transact(run, what)

    def _notify(self, changes: Iterable[Pending | EndpointChanged]) -> list[Stmt]:
        return [Stmt(NOTIFY, (self.channel, sorted({encode_change(c) for c in changes})))]

    def _lock_endpoint(self, endpoint_id: str) -> list[Stmt]:
        return [
            Stmt("SELECT pg_advisory_xact_lock(?)", (advisory_key(self._s, "claim", endpoint_id),))
        ]

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
