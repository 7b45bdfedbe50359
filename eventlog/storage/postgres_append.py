"""The PostgreSQL backend's append transaction: gapless offsets across processes.

One :class:`PgAppender` per storage owns a dedicated connection (the
group-commit writer is one task per process, so one connection suffices and
appends never wait for a pool slot). A transaction:

1. locks the head row of every stream it writes, ``SELECT ... ORDER BY name
   FOR UPDATE``: sorted, so two transactions never wait on each other in a cycle;
2. inserts head rows for new streams (sorted, ``ON CONFLICT DO NOTHING``); if
   another process created one at the same moment, the next statement locks
   the row it made (no restart: the transaction may be the caller's own,
   :meth:`PgAppender.append_in`);
3. looks up producer-given ids, lets the shared planner
   (:func:`eventlog.storage.planner.plan_appends`) assign offsets, inserts the
   rows, moves the heads and ``pg_notify``-s them, then commits.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Literal

import asyncpg
import msgspec

from eventlog.errors import LogClosed, StorageError
from eventlog.storage.base import AppendOutcome, AppendRequest
from eventlog.storage.planner import Row, given_ids, plan_appends
from eventlog.storage.postgres_schema import DRIVER_ERRORS, LOST_ERRORS, errors_translated
from eventlog.storage.rows import to_us

__all__ = ["COPY_FROM_ROWS", "InsertMethod", "PgAppender", "to_us"]

InsertMethod = Literal["auto", "unnest", "executemany", "copy"]

#: From this many rows per transaction on, ``auto`` inserts with COPY (see the
#: insert-method table of ``python -m bench postgres``: ``unnest`` is best or
#: close for small and medium transactions, COPY for large ones).
COPY_FROM_ROWS = 500

_RETRIES = 8
_encode = msgspec.json.encode
_EVENT_COLUMNS = ("stream", "offset", "id", "type", "key", "time_us", "headers", "data")


class _Retry(Exception):
    """Start the transaction over: another transaction created a stream this
    one wanted to create, or the idle connection was found dead."""


class PgAppender:
    """Applies append requests in one transaction each, on its own connection.

    Args:
        schema: The (validated) schema name.
        channel: The NOTIFY channel.
        connect: Opens a new connection.
        insert: The insert method (see :class:`~eventlog.storage.postgres.PostgresStorage`).
    """

    def __init__(
        self,
        schema: str,
        channel: str,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        insert: InsertMethod = "auto",
    ) -> None:
        self._schema = schema
        self._channel = channel
        self._connect = connect
        self._insert = insert
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()
        self._closed = False
        #: Transactions started over (a stream created concurrently, or a dead
        #: idle connection), for metrics and tests.
        self.retries = 0
        s = schema
        self._sql_lock = (
            f"SELECT name, next_offset, last_time_us FROM {s}.streams "
            "WHERE name = ANY($1::text[]) ORDER BY name FOR UPDATE"
        )
        self._sql_create = (
            f"INSERT INTO {s}.streams (name, next_offset) SELECT unnest($1::text[]), 0 "
            "ON CONFLICT (name) DO NOTHING RETURNING name"
        )
        self._sql_ids = (
            f'SELECT e.stream, e.id, e."offset" FROM {s}.events e '
            "JOIN unnest($1::text[], $2::text[]) AS w(stream, id) "
            "ON e.stream = w.stream AND e.id = w.id"
        )
        self._sql_unnest = (
            f'INSERT INTO {s}.events (stream, "offset", id, type, key, time_us, headers, data) '
            "SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], "
            "$5::text[], $6::bigint[], $7::bytea[], $8::bytea[])"
        )
        self._sql_values = (
            f'INSERT INTO {s}.events (stream, "offset", id, type, key, time_us, headers, data) '
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        )
        self._sql_heads = (
            f"WITH u AS (UPDATE {s}.streams t SET next_offset = v.next_offset, "
            "bytes = t.bytes + v.added, last_time_us = v.last_us "
            "FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[]) "
            "AS v(name, next_offset, added, last_us) WHERE t.name = v.name "
            "RETURNING t.name, t.next_offset) "
            "SELECT count(pg_notify($5, u.name || ':' || u.next_offset)) FROM u"
        )

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        if self._closed:
            raise LogClosed("storage is closed")
        async with self._lock:
            with errors_translated("append"):
                if self._conn is None or self._conn.is_closed():
                    self._conn = await self._connect()
                conn = self._conn
                try:
                    yield conn
                except BaseException:
                    # Interrupted mid-transaction (cancelled): start afresh next time.
                    if not conn.is_closed() and conn.is_in_transaction():
                        conn.terminate()
                    raise

    async def close(self) -> None:
        """Close the connection (after a running transaction). Idempotent."""
        self._closed = True
        async with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(*DRIVER_ERRORS):
                await asyncio.wait_for(conn.close(), 5)
            if not conn.is_closed():
                conn.terminate()

    async def append(self, requests: Sequence[AppendRequest], now: datetime) -> list[AppendOutcome]:
        """Apply the requests in one transaction (see the module docstring)."""
        if not requests:
            return []
        now_us = to_us(now)
        streams = sorted({r.stream for r in requests})
        for attempt in range(_RETRIES):
            try:
                async with self._connection() as conn:
                    tx = conn.transaction()
                    try:
                        await tx.start()
                    except LOST_ERRORS as exc:
                        # The idle connection died (server restart, network):
                        # nothing was sent, so reconnecting and retrying is safe.
                        conn.terminate()
                        raise _Retry from exc
                    try:
                        outcomes = await self._transaction(conn, requests, streams, now_us)
                    except BaseException:
                        if not conn.is_closed():
                            with contextlib.suppress(*DRIVER_ERRORS):
                                await tx.rollback()
                        raise
                    await tx.commit()
                    return outcomes
            except _Retry:
                self.retries += 1
                continue
            except StorageError as exc:
                # Deadlocks cannot happen with sorted locking, but a serialization
                # failure under a stricter default isolation level can: retry it.
                cause = exc.__cause__
                if isinstance(cause, asyncpg.TransactionRollbackError) and attempt < _RETRIES - 1:
                    continue
                raise
        raise StorageError(f"append: gave up after {_RETRIES} conflicting attempts")

    async def append_in(
        self, conn: asyncpg.Connection, requests: Sequence[AppendRequest], now: datetime
    ) -> list[AppendOutcome]:
        """Apply the requests on ``conn``, inside a transaction its owner holds.

        The events become visible, and their heads move (and are notified),
        only if that transaction commits. Until then the stream rows it
        locked stay locked: every other append to those streams waits.
        """
        if not requests:
            return []
        streams = sorted({r.stream for r in requests})
        with errors_translated("append in a transaction"):
            return await self._transaction(conn, requests, streams, to_us(now))

    async def _transaction(
        self,
        conn: asyncpg.Connection,
        requests: Sequence[AppendRequest],
        streams: list[str],
        now_us: int,
    ) -> list[AppendOutcome]:
        heads: dict[str, int] = {}
        times: dict[str, int] = {}
        created: list[str] = []
        pending = streams
        for _ in range(_RETRIES):
            for row in await conn.fetch(self._sql_lock, pending):
                heads[row[0]] = row[1]
                times[row[0]] = max(now_us, row[2] or 0)
            missing = [s for s in pending if s not in heads]
            if not missing:
                break
            # If another transaction created one of these first, ours waited for
            # it to commit and got nothing back: lock the row it made (a new
            # statement sees it), without starting over (the caller's
            # transaction may hold writes of its own).
            made = {r[0] for r in await conn.fetch(self._sql_create, missing)}
            for stream in made:
                heads[stream] = 0
                times[stream] = now_us
            created += made
            pending = [s for s in missing if s not in made]
            if not pending:
                break
        else:
            raise _Retry
        created.sort()
        wanted = given_ids(requests)
        existing: dict[tuple[str, str], int] = {}
        if any(s in heads for s in wanted):
            pairs = [(s, i) for s, ids in wanted.items() if s in heads for i in ids]
            for stream, event_id, offset in await conn.fetch(
                self._sql_ids, [p[0] for p in pairs], [p[1] for p in pairs]
            ):
                existing[(stream, event_id)] = offset
        plan = plan_appends(requests, heads, existing)
        if plan.rows:
            await self._insert_rows(conn, plan.rows, times)
        unused = [s for s in created if s not in plan.heads]
        if unused:  # created for a request that wrote nothing: leave no trace
            await conn.execute(f"DELETE FROM {self._schema}.streams WHERE name = ANY($1)", unused)
        if plan.heads:
            names = list(plan.heads)
            await conn.fetchval(
                self._sql_heads,
                names,
                [plan.heads[s] for s in names],
                [plan.added_bytes.get(s, 0) for s in names],
                [times[s] for s in names],
                self._channel,
            )
        return plan.outcomes

    async def _insert_rows(
        self, conn: asyncpg.Connection, rows: list[Row], times: dict[str, int]
    ) -> None:
        records = [
            (
                r.stream,
                r.offset,
                r.event.id,
                r.event.type,
                r.event.key,
                times[r.stream],
                _encode(r.event.headers) if r.event.headers else None,
                r.event.data,
            )
            for r in rows
        ]
        method = self._insert
        if method == "auto":
            method = "copy" if len(records) >= COPY_FROM_ROWS else "unnest"
        if method == "unnest":
            columns: list[list[Any]] = [list(c) for c in zip(*records, strict=True)]
            await conn.execute(self._sql_unnest, *columns)
        elif method == "executemany":
            await conn.executemany(self._sql_values, records)
        else:
            await conn.copy_records_to_table(
                "events", records=records, columns=_EVENT_COLUMNS, schema_name=self._schema
            )
