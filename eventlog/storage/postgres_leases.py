"""Leases on PostgreSQL: session advisory locks on one dedicated connection.

``pg_try_advisory_lock(key)`` with ``key`` a 64-bit hash of the schema and the
lease name. A session lock lives as long as the connection that took it: when
the holding process dies, its connection closes and PostgreSQL releases the
lock at once (a dead host is noticed by TCP keepalives, set short on this
connection), so another process's next ``acquire_lease`` gets it.

The holder must also notice when it lost the connection, or two processes
could run the same consumer: the connection is pinged every
``check_interval`` seconds, and on any failure every lease it held is marked
lost (``Lease.wait_lost()`` returns) before a new connection is made.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg

from eventlog.errors import LogClosed
from eventlog.storage.leases import EventLease, Lease
from eventlog.storage.postgres_schema import DRIVER_ERRORS, advisory_key, errors_translated

__all__ = ["PgLease", "PgLeases"]

log = logging.getLogger("eventlog.postgres")

#: Server-side keepalives of the lease connection: a vanished client host is
#: detected (and its locks released) after about 5 + 3 * 2 = 11 seconds.
KEEPALIVE_SETTINGS = {
    "tcp_keepalives_idle": "5",
    "tcp_keepalives_interval": "2",
    "tcp_keepalives_count": "3",
}


WATCH_ERRORS: tuple[type[BaseException], ...] = (*DRIVER_ERRORS, ConnectionError)


class PgLease(EventLease):
    """A lease held as an advisory lock by :class:`PgLeases`."""

    def __init__(self, owner: PgLeases, name: str, key: int) -> None:
        super().__init__(name)
        self.key = key
        self._owner = owner

    def _lose(self) -> None:
        self._done.set()

    async def release(self) -> None:
        if self._done.is_set():
            return
        self._done.set()
        # Shielded, as acquiring is: a lock left taken on the server but
        # forgotten here would stay held for as long as the connection lives.
        await asyncio.shield(self._owner._release(self))


class PgLeases:
    """Grants leases by name on one connection (made on first use).

    Args:
        connect: Opens a new connection (with :data:`KEEPALIVE_SETTINGS`).
        schema: Namespaces the lock keys, so two logs in one database do not collide.
        check_interval: Seconds between liveness checks of the connection.
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        schema: str,
        *,
        check_interval: float = 2.0,
    ) -> None:
        self._connect = connect
        self._schema = schema
        self._check_interval = check_interval
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()
        self._held: dict[str, PgLease] = {}
        self._task: asyncio.Task[None] | None = None
        self._giving_back: set[asyncio.Future[None]] = set()
        self._closed = False

    async def acquire_lease(self, name: str) -> Lease | None:
        """Take the lease ``name`` unless another session (or this process) holds it.

        Raises:
            StorageError: The database cannot be reached.
            LogClosed: The storage is closed.
        """
        if self._closed:
            raise LogClosed("storage is closed")
        # Shielded: a caller cancelled while the lock query runs must not leave
        # the lock taken on the server but unknown here (session locks are
        # re-entrant: a later take and release would then leave it held).
        attempt = asyncio.ensure_future(self._acquire(name))
        try:
            return await asyncio.shield(attempt)
        except asyncio.CancelledError:
            attempt.add_done_callback(self._give_back)
            raise

    def _give_back(self, attempt: asyncio.Future[Lease | None]) -> None:
        """Release a lease taken for a caller that was cancelled meanwhile."""
        if attempt.cancelled() or attempt.exception() is not None:
            return
        lease = attempt.result()
        if lease is not None:
            task = asyncio.ensure_future(lease.release())
            self._giving_back.add(task)
            task.add_done_callback(self._giving_back.discard)

    async def _acquire(self, name: str) -> Lease | None:
        async with self._lock:
            if name in self._held:
                return None  # session locks are re-entrant: refuse in-process twice
            key = advisory_key(self._schema, "lease", name)
            with errors_translated("acquire lease"):
                conn = await self._connection()
                got = await conn.fetchval("SELECT pg_try_advisory_lock($1)", key)
            if not got:
                return None
            lease = self._held[name] = PgLease(self, name, key)
            return lease

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._conn = await self._connect()
            if self._task is None:
                self._task = asyncio.create_task(self._watch(), name="eventlog-pg-leases")
        return self._conn

    async def _release(self, lease: PgLease) -> None:
        async with self._lock:
            if self._held.get(lease.name) is not lease:
                return
            del self._held[lease.name]
            conn = self._conn
            if conn is None or conn.is_closed():
                return
            try:
                await conn.fetchval("SELECT pg_advisory_unlock($1)", lease.key)
            except DRIVER_ERRORS as exc:
                log.warning(
                    "lease %r: unlock failed (%s); dropping the connection", lease.name, exc
                )
                await self._drop_connection()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._check_interval)
            async with self._lock:
                conn = self._conn
                if conn is None:
                    continue
                try:
                    if conn.is_closed():
                        raise ConnectionError("lease connection closed")
                    await conn.fetchval("SELECT 1", timeout=self._check_interval)
                except WATCH_ERRORS as exc:
                    log.warning(
                        "lease connection lost (%s): giving up %d lease(s)", exc, len(self._held)
                    )
                    await self._drop_connection()

    async def _drop_connection(self) -> None:
        """Mark every lease lost and close the connection (caller holds the lock)."""
        for lease in self._held.values():
            lease._lose()
        self._held.clear()
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()

    async def close(self) -> None:
        """Release every lease and close the connection. Idempotent."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        async with self._lock:
            conn = self._conn
            for lease in self._held.values():
                lease._lose()
            self._held.clear()
            self._conn = None
            if conn is not None and not conn.is_closed():
                with contextlib.suppress(*DRIVER_ERRORS):
                    await asyncio.wait_for(conn.close(), 2.0)
                if not conn.is_closed():
                    conn.terminate()

    @property
    def connection_pid(self) -> int | None:
        """The lease session's backend pid (lets tests kill it)."""
        return None if self._conn is None else self._conn.get_server_pid()
