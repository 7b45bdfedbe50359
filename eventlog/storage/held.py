"""Transactions held across awaits: your writes and the log's appends, committed together.

The group-commit writer owns its transactions: each is opened, filled and
committed in one step. A *held* transaction is one the caller keeps open
while it awaits its own work, then commits or rolls back: the outbox
(``log.transaction()``, ``log.append(..., connection=conn)``) and file sources
(a source's read position committed with the lines it appended) are built on
it. One :class:`HeldTransaction` shape per backend:

* **SQLite** (:class:`SQLiteHeld`): a connection of its own on a thread of its
  own, ``BEGIN IMMEDIATE``: SQLite's one write lock is taken, so the log's
  writer (another connection) waits until the held transaction ends. Held
  transactions in one process run one at a time.
* **PostgreSQL** (:class:`PgHeld`): a pooled connection in a transaction; an
  append locks the stream's head row until commit, so appends to that stream
  from every process wait (other streams do not).
* **Memory** (:class:`MemoryHeld`): appends apply at once; nothing of yours to
  write and nothing rolls back (the memory backend keeps nothing anyway).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    import asyncpg

from eventlog.errors import InvalidInput, LogClosed
from eventlog.model import utc_now
from eventlog.storage.base import AppendOutcome, AppendRequest, Storage
from eventlog.storage.checkpoints import MIGRATIONS as PG_CHECKPOINTS
from eventlog.storage.checkpoints import SQLITE_MIGRATIONS as SQLITE_CHECKPOINTS
from eventlog.storage.rows import to_us

__all__ = ["HeldSource", "HeldTransaction", "MemoryHeld", "PgHeld", "SQLiteHeld"]

T = TypeVar("T")

_NO_CONNECTION = (
    "connection= takes a PostgreSQL connection: this log is not on PostgreSQL "
    "(use log.transaction() for your writes and appends in one transaction)"
)


class HeldTransaction(Protocol):
    """One open transaction on the log's database."""

    #: PostgreSQL: the asyncpg connection the transaction runs on (else None).
    connection: Any

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """SQLite: ``fn(connection)`` on the transaction's thread.

        Raises:
            InvalidInput: Not an SQLite transaction.
        """
        ...

    async def append(self, requests: Sequence[AppendRequest], now: datetime) -> list[AppendOutcome]:
        """Append inside this transaction (visible only once it commits)."""
        ...

    async def execute(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Run one statement of your own; its rows (empty for a write)."""
        ...

    async def set_checkpoint(self, name: str, value: bytes) -> None:
        """Store a producer's checkpoint (e.g. a file source's position) in this transaction."""

    async def read_checkpoint(self, name: str) -> bytes | None:
        """A checkpoint as this transaction sees it, locked until it ends (so a
        compare-and-set on it cannot race another transaction)."""
        ...

    async def set_offset(self, consumer: str, stream: str, offset: int) -> None:
        """Store a consumer's committed offset in this transaction (exactly-once handlers)."""


class HeldSource(Protocol):
    """Opens held transactions on one backend."""

    #: True when a transaction holds the caller's own writes (a real database).
    own_writes: bool

    async def open(self) -> None:
        """Create the checkpoint table if needed."""

    async def checkpoint(self, name: str) -> bytes | None:
        """A producer's last committed checkpoint, or None."""
        ...

    def transaction(self) -> contextlib.AbstractAsyncContextManager[HeldTransaction]:
        """Begin; commit when the block ends, roll back if it raises."""
        ...

    async def append_in(
        self, conn: Any, requests: Sequence[AppendRequest], now: datetime
    ) -> list[AppendOutcome]:
        """Append on a connection in a transaction the caller holds (PostgreSQL only).

        Raises:
            InvalidInput: The backend has no such connections.
        """
        ...

    async def close(self) -> None:
        """Release the connection or thread it keeps."""


class _SQLiteTxn:
    connection = None

    def __init__(self, held: SQLiteHeld, conn: sqlite3.Connection) -> None:
        self._held = held
        self._conn = conn

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the transaction's thread (several statements, one hop)."""
        return await self._held.call(lambda: fn(self._conn))

    async def execute(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        return await self.run(lambda c: [tuple(r) for r in c.execute(sql, params).fetchall()])

    async def append(self, requests: Sequence[AppendRequest], now: datetime) -> list[AppendOutcome]:
        from eventlog.storage.sqlite_ops import append_in

        now_us = to_us(now)
        return await self.run(lambda c: append_in(c, requests, now_us)[0])

    async def read_checkpoint(self, name: str) -> bytes | None:
        rows = await self.execute("SELECT value FROM checkpoints WHERE name = ?", name)
        return bytes(rows[0][0]) if rows else None

    async def set_checkpoint(self, name: str, value: bytes) -> None:
        await self.execute(
            "INSERT INTO checkpoints (name, value, updated_us) VALUES (?, ?, ?) ON CONFLICT "
            "(name) DO UPDATE SET value = excluded.value, updated_us = excluded.updated_us",
            name,
            value,
            to_us(utc_now()),
        )

    async def set_offset(self, consumer: str, stream: str, offset: int) -> None:
        from eventlog.storage.sqlite_ops import set_offset

        now = to_us(utc_now())
        await self.run(lambda c: set_offset(c, consumer, stream, offset, now))


class SQLiteHeld:
    """Held transactions on an SQLite file: one connection, one thread, one at a time.

    Args:
        path: The log's database file.
        synchronous: The log's durability setting (per connection in SQLite).
        busy_timeout: Milliseconds ``BEGIN IMMEDIATE`` waits for the log's writer.
    """

    own_writes = True

    def __init__(self, storage: Any, busy_timeout: int = 10_000) -> None:
        self._storage = storage
        self._path: Path = storage.path
        self._synchronous: str = storage.synchronous
        self._busy = busy_timeout
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="eventlog-held")
        self._conn: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    async def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the held connection's thread, translating SQLite errors."""
        from eventlog.storage.sqlite_ops import translate

        try:
            return await asyncio.get_running_loop().run_in_executor(self._thread, fn)
        except sqlite3.Error as exc:
            raise translate(exc) from exc

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy)}")
        conn.execute(f"PRAGMA synchronous = {self._synchronous.upper()}")
        return conn

    async def open(self) -> None:
        await self._storage.ensure_schema("checkpoints", SQLITE_CHECKPOINTS)

    async def checkpoint(self, name: str) -> bytes | None:
        def q(conn: sqlite3.Connection) -> bytes | None:
            row = conn.execute("SELECT value FROM checkpoints WHERE name = ?", (name,)).fetchone()
            return None if row is None else bytes(row[0])

        result: bytes | None = await self._storage.query(q)
        return result

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[_SQLiteTxn]:
        async with self._lock:
            if self._closed:
                raise LogClosed("the log is closed")
            if self._conn is None:
                self._conn = await self.call(self._connect)
            conn = self._conn
            await self.call(lambda: conn.execute("BEGIN IMMEDIATE"))
            try:
                yield _SQLiteTxn(self, conn)
            except BaseException:
                await asyncio.shield(self.call(lambda: _rollback(conn)))
                raise
            await asyncio.shield(self.call(lambda: conn.execute("COMMIT")))

    async def append_in(
        self, conn: Any, requests: Sequence[AppendRequest], now: datetime
    ) -> list[AppendOutcome]:
        raise InvalidInput(_NO_CONNECTION)

    async def close(self) -> None:
        async with self._lock:
            self._closed = True
            conn, self._conn = self._conn, None
            if conn is not None:
                await self.call(conn.close)
        self._thread.shutdown(wait=False)


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")


class _PgTxn:
    def __init__(self, storage: Any, conn: asyncpg.Connection) -> None:
        self._storage = storage
        #: The asyncpg connection, inside the transaction: your statements go here.
        self.connection = conn

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        raise InvalidInput("run() is for SQLite; on PostgreSQL use txn.connection")

    async def execute(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        from eventlog.storage.postgres_schema import errors_translated

        with errors_translated("your statement"):
            return [tuple(r) for r in await self.connection.fetch(sql, *params)]

    async def append(self, requests: Sequence[AppendRequest], now: datetime) -> list[AppendOutcome]:
        result: list[AppendOutcome] = await self._storage.append_in(self.connection, requests, now)
        return result

    async def read_checkpoint(self, name: str) -> bytes | None:
        from eventlog.storage.postgres_schema import advisory_key

        # A transaction-scoped lock on the name: a row that does not exist yet
        # cannot be locked with FOR UPDATE.
        await self.execute("SELECT pg_advisory_xact_lock($1)", advisory_key("checkpoint", name))
        rows = await self.execute(
            f"SELECT value FROM {self._storage.schema}.checkpoints WHERE name = $1", name
        )
        return bytes(rows[0][0]) if rows else None

    async def set_checkpoint(self, name: str, value: bytes) -> None:
        await self.execute(
            f"INSERT INTO {self._storage.schema}.checkpoints (name, value, updated_us) "
            "VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE SET value = excluded.value, "
            "updated_us = excluded.updated_us",
            name,
            value,
            to_us(utc_now()),
        )

    async def set_offset(self, consumer: str, stream: str, offset: int) -> None:
        from eventlog.storage.postgres import set_offset

        await set_offset(self.connection, self._storage.schema, consumer, stream, offset)


class PgHeld:
    """Held transactions on PostgreSQL: a pooled connection each."""

    own_writes = True

    def __init__(self, storage: Any) -> None:
        self._storage = storage

    async def open(self) -> None:
        await self._storage.ensure_schema("checkpoints", PG_CHECKPOINTS)

    async def checkpoint(self, name: str) -> bytes | None:
        sql = f"SELECT value FROM {self._storage.schema}.checkpoints WHERE name = $1"

        async def q(conn: asyncpg.Connection) -> bytes | None:
            value = await conn.fetchval(sql, name)
            return None if value is None else bytes(value)

        result: bytes | None = await self._storage.query(q, "checkpoint")
        return result

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[_PgTxn]:
        from eventlog.storage.postgres_schema import DRIVER_ERRORS, errors_translated

        async with self._storage.connection("transaction") as conn:
            tx = conn.transaction()
            with errors_translated("begin"):
                await tx.start()
            try:
                yield _PgTxn(self._storage, conn)
            except BaseException:
                if not conn.is_closed():
                    with contextlib.suppress(*DRIVER_ERRORS):
                        await asyncio.shield(tx.rollback())
                raise
            with errors_translated("commit"):
                await tx.commit()

    async def append_in(
        self, conn: Any, requests: Sequence[AppendRequest], now: datetime
    ) -> list[AppendOutcome]:
        result: list[AppendOutcome] = await self._storage.append_in(conn, requests, now)
        return result

    async def close(self) -> None:
        """Nothing of its own: the pool is the storage's."""


class _MemoryTxn:
    connection = None

    def __init__(self, storage: Storage, checkpoints: dict[str, bytes]) -> None:
        self._storage = storage
        self._checkpoints = checkpoints

    async def read_checkpoint(self, name: str) -> bytes | None:
        return self._checkpoints.get(name)

    async def set_checkpoint(self, name: str, value: bytes) -> None:
        self._checkpoints[name] = value

    async def set_offset(self, consumer: str, stream: str, offset: int) -> None:
        await self._storage.commit_offset(consumer, stream, offset)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        raise InvalidInput("the in-memory log has no database to run statements in")

    async def execute(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        raise InvalidInput("the in-memory log has no database to run statements in")

    async def append(self, requests: Sequence[AppendRequest], now: datetime) -> list[AppendOutcome]:
        return await self._storage.append(requests, now)


class MemoryHeld:
    """The in-memory backend's stand-in: appends apply at once, nothing rolls back."""

    own_writes = False

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._lock = asyncio.Lock()
        self._checkpoints: dict[str, bytes] = {}

    async def open(self) -> None:
        """Nothing to create."""

    async def checkpoint(self, name: str) -> bytes | None:
        return self._checkpoints.get(name)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[_MemoryTxn]:
        async with self._lock:
            yield _MemoryTxn(self._storage, self._checkpoints)

    async def append_in(
        self, conn: Any, requests: Sequence[AppendRequest], now: datetime
    ) -> list[AppendOutcome]:
        raise InvalidInput(_NO_CONNECTION)

    async def close(self) -> None:
        """Nothing to release."""
