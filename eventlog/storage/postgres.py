"""The PostgreSQL backend, on asyncpg: several processes on several hosts share one log.

Selected by a ``postgresql://`` (or ``postgres://``) URL wherever a database
path is accepted. Optional ``?schema=name`` picks the PostgreSQL schema that
holds the tables (default ``eventlog``); every other URL parameter goes to
asyncpg.

Offsets stay gapless with any number of writers in any number of processes
because each append transaction locks the head row of every stream it writes
(``SELECT ... FOR UPDATE``, streams in sorted order so two transactions never
wait on each other in a cycle), reads the heads, inserts the events and moves
the heads before it commits. Within a process the log's group-commit writer
already batches appends into one transaction; across processes the row locks
serialise transactions per stream and leave other streams parallel.

After the inserts, the same transaction calls ``pg_notify`` for each stream it
advanced; PostgreSQL delivers on commit, and
:mod:`eventlog.storage.postgres_listen` turns that into head-listener calls in
every process. Leases (:mod:`eventlog.storage.postgres_leases`) keep a named
consumer in one process at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Literal, ParamSpec, TypeVar, cast

import asyncpg

from eventlog.errors import LogClosed, StorageError
from eventlog.model import ConsumerInfo, Event, Retention, StreamInfo
from eventlog.repair import event_rows
from eventlog.storage.base import AppendOutcome, AppendRequest
from eventlog.storage.capabilities import Capabilities, HeadListener, TopicListener
from eventlog.storage.leases import Lease
from eventlog.storage.postgres_append import InsertMethod, PgAppender
from eventlog.storage.postgres_leases import KEEPALIVE_SETTINGS, PgLeases
from eventlog.storage.postgres_listen import DELETED, NotificationListener
from eventlog.storage.postgres_retry import reconnecting
from eventlog.storage.postgres_schema import (
    CORE,
    DRIVER_ERRORS,
    MIGRATIONS,
    apply_migrations,
    errors_translated,
    redact,
    set_offset,
    split_url,
)
from eventlog.storage.rows import STREAM_COLUMNS, from_us, stream_info

__all__ = ["InsertMethod", "PostgresStorage", "set_offset"]

T = TypeVar("T")
P = ParamSpec("P")
CONNECT_ERRORS: tuple[type[BaseException], ...] = (*DRIVER_ERRORS, ValueError)


class PostgresStorage:
    """A log in a PostgreSQL database.

    Args:
        url: ``postgresql://user:password@host:port/database[?schema=name&...]``.
        pool_size: Most connections of the pool (reads and writes); two more
            are used for LISTEN and for leases.
        insert: How events are inserted: ``"auto"`` (the default: one
            ``INSERT ... SELECT FROM unnest(arrays)`` for small transactions,
            ``COPY`` from ``COPY_FROM_ROWS`` rows on; see docs/postgres.md
            for the measurements), or always ``"unnest"``, ``"executemany"``
            or ``"copy"`` (``copy_records_to_table``).

    Besides the ``Storage`` methods it grants leases across processes
    (:meth:`acquire_lease`), tells every process of each other's appends
    (:meth:`listen`) and is the schema of the webhook ledger and ingest
    sources (:class:`~eventlog.storage.capabilities.PostgresTables`).
    """

    def __init__(self, url: str, *, pool_size: int = 10, insert: InsertMethod = "auto") -> None:
        self._dsn, self.schema = split_url(url)
        self.url = redact(url)
        self.channel = f"{self.schema}_heads"
        self._pool_size = max(2, pool_size)
        self._insert = insert
        self._pool: asyncpg.Pool | None = None
        self._appender: PgAppender | None = None
        self._listener: NotificationListener | None = None
        self._leases: PgLeases | None = None
        self.capabilities = Capabilities(
            kind="postgres",
            durable=True,
            listen=self.listen,
            leases=self,
            tables=self,
            offset_for_bytes=self.offset_for_bytes,
        )
        s = self.schema
        self._sql_read = (
            f'SELECT "offset", id, type, key, time_us, headers, data FROM {s}.events '
            'WHERE stream = $1 AND "offset" >= $2 ORDER BY "offset" LIMIT $3'
        )
        self._sql_stream = f"SELECT {STREAM_COLUMNS} FROM {s}.streams"

    @property
    def pool_size(self) -> int:
        """Most connections of the pool (reads and writes)."""
        return self._pool_size

    @property
    def kind(self) -> Literal["postgres"]:
        """The tag of :data:`~eventlog.storage.capabilities.Tables`."""
        return "postgres"

    # -- connections -------------------------------------------------------------

    async def _connect(self, **settings: str) -> asyncpg.Connection:
        server_settings = {"application_name": "eventlog", **settings}
        return await asyncpg.connect(self._dsn, server_settings=server_settings)

    async def open(self) -> None:
        """Connect, create or migrate the schema, start listening."""
        if self._pool is not None:
            return
        try:
            pool = await asyncpg.create_pool(
                self._dsn,
                min_size=1,
                max_size=self._pool_size,
                server_settings={"application_name": "eventlog"},
                # Our connections keep no session state, so skip asyncpg's
                # reset query: one round trip less per pooled call.
                reset=_no_reset,
            )
        except CONNECT_ERRORS as exc:
            raise StorageError(f"cannot connect to {self.url}: {exc}") from exc
        assert pool is not None
        try:
            with errors_translated(f"open {self.url}"):
                async with pool.acquire() as proxy:
                    conn = cast(asyncpg.Connection, proxy)
                    await apply_migrations(conn, self.schema, CORE, MIGRATIONS)
                listener = NotificationListener(self._connect, self.channel, self._all_heads)
                await listener.start()
        except BaseException:
            with contextlib.suppress(*DRIVER_ERRORS):
                await asyncio.wait_for(pool.close(), 5)
            raise
        self._pool = pool
        self._listener = listener
        self._leases = PgLeases(lambda: self._connect(**KEEPALIVE_SETTINGS), self.schema)
        self._appender = PgAppender(self.schema, self.channel, self._connect, self._insert)

    async def close(self) -> None:
        """Release every connection (and every lease). Idempotent."""
        pool, self._pool = self._pool, None
        listener, self._listener = self._listener, None
        leases, self._leases = self._leases, None
        if leases is not None:
            await leases.close()
        if listener is not None:
            await listener.close()
        appender, self._appender = self._appender, None
        if appender is not None:
            await appender.close()
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), 10)
            except DRIVER_ERRORS:
                pool.terminate()

    @contextlib.asynccontextmanager
    async def _conn(self, what: str) -> AsyncIterator[asyncpg.Connection]:
        pool = self._pool
        if pool is None:
            raise LogClosed("storage is closed")
        with errors_translated(what):
            async with pool.acquire() as conn:
                yield cast(asyncpg.Connection, conn)

    @contextlib.asynccontextmanager
    async def connection(self, what: str = "transaction") -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection for the caller's own transaction (its errors untranslated)."""
        pool = self._pool
        if pool is None:
            raise LogClosed("storage is closed")
        with errors_translated(what):
            proxy = await pool.acquire()
        try:
            yield cast(asyncpg.Connection, proxy)
        finally:
            with errors_translated(what):
                await pool.release(proxy)

    async def transact(
        self, fn: Callable[[asyncpg.Connection], Awaitable[T]], what: str = "transaction"
    ) -> T:
        """Run ``await fn(connection)`` in one transaction on a pooled connection.

        For components that keep their own tables in the log's schema (the
        webhook ledger) and update them atomically with a consumer offset (see
        :func:`set_offset`). ``fn`` must not commit; driver errors it raises
        are translated to :class:`~eventlog.errors.StorageError`.
        """
        async with self._conn(what) as conn, conn.transaction():
            return await fn(conn)

    @reconnecting
    async def query(
        self, fn: Callable[[asyncpg.Connection], Awaitable[T]], what: str = "query"
    ) -> T:
        """Run ``await fn(connection)`` on a pooled connection (reads)."""
        async with self._conn(what) as conn:
            return await fn(conn)

    @reconnecting
    async def ensure_schema(self, component: str, migrations: Sequence[Sequence[str]]) -> None:
        """Apply a component's forward migrations to its own tables in the log's schema.

        Statements write ``{s}`` for the schema name, e.g.
        ``"CREATE TABLE {s}.deliveries (...)"``.
        """
        async with self._conn(f"migrate {component}") as conn:
            await apply_migrations(conn, self.schema, component, migrations)

    # -- writes ------------------------------------------------------------------

    async def append(self, requests: Sequence[AppendRequest], now: datetime) -> list[AppendOutcome]:
        if self._appender is None:
            raise LogClosed("storage is closed")
        return await self._appender.append(requests, now)

    async def append_in(
        self, conn: asyncpg.Connection, requests: Sequence[AppendRequest], now: datetime
    ) -> list[AppendOutcome]:
        """Append on ``conn`` in the caller's transaction (:meth:`.PgAppender.append_in`)."""
        if self._appender is None:
            raise LogClosed("storage is closed")
        return await self._appender.append_in(conn, requests, now)

    # -- other writes -------------------------------------------------------------

    @reconnecting
    async def set_retention(self, stream: str, retention: Retention) -> None:
        async with self._conn("set retention") as conn:
            await conn.execute(
                f"INSERT INTO {self.schema}.streams (name, next_offset, max_age, max_count, "
                "max_bytes, protect, max_hold) VALUES ($1, 0, $2, $3, $4, $5, $6) "
                "ON CONFLICT (name) DO UPDATE SET max_age = excluded.max_age, "
                "max_count = excluded.max_count, max_bytes = excluded.max_bytes, "
                "protect = excluded.protect, max_hold = excluded.max_hold",
                stream,
                retention.max_age,
                retention.max_count,
                retention.max_bytes,
                int(retention.protect),
                retention.max_hold,
            )

    @reconnecting
    async def trim(self, stream: str, before: int) -> int:
        s = self.schema
        async with self._conn("trim") as conn, conn.transaction():
            row = await conn.fetchrow(
                f"SELECT first_offset, next_offset FROM {s}.streams WHERE name = $1 FOR UPDATE",
                stream,
            )
            if row is None or before <= row[0]:
                return 0
            upto = min(before, row[1])
            deleted = await conn.fetchrow(
                f'WITH d AS (DELETE FROM {s}.events WHERE stream = $1 AND "offset" < $2 '
                "RETURNING octet_length(data) AS n) SELECT count(*), coalesce(sum(n), 0) FROM d",
                stream,
                upto,
            )
            count, nbytes = deleted if deleted is not None else (0, 0)
            await conn.execute(
                f"UPDATE {s}.streams SET first_offset = $1, bytes = bytes - $2 WHERE name = $3",
                upto,
                nbytes,
                stream,
            )
            return int(count)

    @reconnecting
    async def delete_stream(self, stream: str) -> bool:
        s = self.schema
        async with self._conn("delete stream") as conn, conn.transaction():
            deleted = await conn.fetchval(
                f"DELETE FROM {s}.streams WHERE name = $1 RETURNING name", stream
            )
            if deleted is not None:  # other processes forget the head they knew
                await conn.execute("SELECT pg_notify($1, $2)", self.channel, f"{stream}:{DELETED}")
            await conn.execute(f"DELETE FROM {s}.events WHERE stream = $1", stream)
            await conn.execute(f"DELETE FROM {s}.consumer_offsets WHERE stream = $1", stream)
            return deleted is not None

    @reconnecting
    async def commit_offset(self, consumer: str, stream: str, offset: int) -> None:
        async with self._conn("commit offset") as conn:
            await set_offset(conn, self.schema, consumer, stream, offset)

    # -- reads -----------------------------------------------------------------------

    @reconnecting
    async def read(self, stream: str, start: int, limit: int) -> list[Event]:
        if limit <= 0:
            return []
        async with self._conn("read") as conn:
            rows = await conn.fetch(self._sql_read, stream, start, limit)
        return event_rows(stream, rows)

    @reconnecting
    async def stream_info(self, stream: str) -> StreamInfo | None:
        async with self._conn("stream info") as conn:
            row = await conn.fetchrow(self._sql_stream + " WHERE name = $1", stream)
        return None if row is None else stream_info(row)

    @reconnecting
    async def streams(self) -> list[StreamInfo]:
        async with self._conn("streams") as conn:
            rows = await conn.fetch(self._sql_stream + " ORDER BY name")
        return [stream_info(r) for r in rows]

    @reconnecting
    async def _all_heads(self) -> list[tuple[str, int]]:
        async with self._conn("read heads") as conn:
            rows = await conn.fetch(f"SELECT name, next_offset FROM {self.schema}.streams")
        return [(r[0], r[1]) for r in rows]

    @reconnecting
    async def offset_for_bytes(self, stream: str, max_bytes: int) -> int:
        s = self.schema
        async with self._conn("offset for bytes") as conn:
            first = await conn.fetchval(
                f"SELECT first_offset FROM {s}.streams WHERE name = $1", stream
            )
            if first is None:
                return 0
            over = await conn.fetchval(
                f'SELECT "offset" FROM (SELECT "offset", sum(octet_length(data)) OVER '
                f'(ORDER BY "offset" DESC) AS total FROM {s}.events WHERE stream = $1) t '
                'WHERE total > $2 ORDER BY "offset" DESC LIMIT 1',
                stream,
                max_bytes,
            )
            return int(first) if over is None else int(over) + 1

    @reconnecting
    async def get_offset(self, consumer: str, stream: str) -> int | None:
        async with self._conn("get offset") as conn:
            value = await conn.fetchval(
                f'SELECT "offset" FROM {self.schema}.consumer_offsets '
                "WHERE name = $1 AND stream = $2",
                consumer,
                stream,
            )
        return None if value is None else int(value)

    @reconnecting
    async def consumers(self) -> list[ConsumerInfo]:
        async with self._conn("consumers") as conn:
            rows = await conn.fetch(
                f'SELECT name, stream, "offset", updated_us FROM {self.schema}.consumer_offsets '
                "ORDER BY name, stream"
            )
        return [ConsumerInfo(name=n, stream=s, offset=o, updated=from_us(u)) for n, s, o, u in rows]

    # -- cross-process ---------------------------------------------------------------

    def listen(self, listener: HeadListener) -> None:
        """Call ``listener(stream, next_offset)`` when any process commits an append."""
        if self._listener is None:
            raise LogClosed("storage is not open")
        self._listener.add(listener)

    async def subscribe(self, channel: str, listener: TopicListener) -> Callable[[], None]:
        """Call ``listener(payload)`` for each notification on ``channel`` (see
        :meth:`NotificationListener.subscribe`); returns the call that stops it."""
        if self._listener is None:
            raise LogClosed("storage is not open")
        with errors_translated(f"listen on {channel}"):
            return await self._listener.subscribe(channel, listener)

    async def acquire_lease(self, name: str) -> Lease | None:
        """Take the lease ``name`` across every process sharing this database.

        Returns None when another process (or this one) holds it. See
        :mod:`eventlog.storage.leases` for how the consumer runtime uses it.
        """
        if self._leases is None:
            raise LogClosed("storage is closed")
        return await self._leases.acquire_lease(name)

    @property
    def listener(self) -> NotificationListener | None:
        """The LISTEN connection's supervisor (None when closed)."""
        return self._listener

    @property
    def leases(self) -> PgLeases | None:
        """The lease manager (None when closed)."""
        return self._leases


async def _no_reset(conn: asyncpg.Connection) -> None:
    """Pool reset hook: nothing to reset (see :meth:`PostgresStorage.open`)."""
