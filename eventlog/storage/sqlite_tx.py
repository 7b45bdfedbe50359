"""Offset transactions on the SQLite file (see :mod:`eventlog.storage.transactions`).

They run on a connection of their own, not on the writer's: a handler's
transaction awaits the handler between statements, and the writer
connection must never sit inside someone else's open transaction. SQLite
has one write lock per file, so while a handler's ``BEGIN IMMEDIATE``
transaction is open, appends wait for it (SQLite's busy handler, up to the
10 s busy timeout) and vice versa; transactions from one log take turns.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import aiosqlite

from eventlog.errors import LogClosed, StorageError
from eventlog.storage.rows import to_us
from eventlog.storage.transactions import Body, OffsetTransaction

__all__ = ["SQLiteOffsetTransactions"]

T = TypeVar("T")

_SET_OFFSET = (
    "INSERT INTO consumer_offsets (name, stream, offset, updated_us) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (name, stream) DO UPDATE SET offset = excluded.offset, "
    "updated_us = excluded.updated_us"
)


class SQLiteOffsetTransactions:
    """One connection to the log's file for offset transactions, used one at a time."""

    def __init__(self, path: Path, synchronous: str) -> None:
        self._path = path
        self._synchronous = synchronous
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    async def _connection(self) -> aiosqlite.Connection:
        if self._closed:
            raise LogClosed("storage is closed")
        if self._conn is None:
            try:
                conn = await aiosqlite.connect(self._path, isolation_level=None)
                await conn.execute("PRAGMA busy_timeout = 10000")
                await conn.execute(f"PRAGMA synchronous = {self._synchronous.upper()}")
            except sqlite3.Error as exc:
                raise StorageError(f"cannot open {str(self._path)!r}: {exc}") from exc
            self._conn = conn
        return self._conn

    async def run(self, consumer: str, stream: str, offset: int, body: Body[T]) -> T:
        """See :meth:`OffsetTransactions.transact_offset`."""
        async with self._lock:
            conn = await self._connection()
            try:
                await conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StorageError(f"cannot begin a transaction: {exc}") from exc
            try:
                result = await body(OffsetTransaction("sqlite", conn))
                now = to_us(datetime.now(UTC))
                await conn.execute(_SET_OFFSET, (consumer, stream, offset, now))
                await conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    await asyncio.shield(conn.execute("ROLLBACK"))
                raise
            return result

    async def close(self) -> None:
        """Close the connection (a transaction in progress is rolled back by SQLite)."""
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None:
            async with self._lock:
                await conn.close()
