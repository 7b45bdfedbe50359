"""Offset transactions: a consumer's own writes and its offset commit, atomically.

:meth:`eventlog.Consumer.transact` runs the caller's ``body(tx)`` inside one
*held* transaction on the log's database (:mod:`eventlog.storage.held`, the
same transactions the outbox uses) and stores the consumer's offset in it
before committing. Either both the caller's writes and the new offset are
durable, or neither is: a handler that projects events into its own tables
sees each event exactly once across crashes.

================  ===========================================================
backend           what the transaction is
================  ===========================================================
PostgreSQL        a pooled connection in a transaction; ``tx.connection`` is
                  the ``asyncpg.Connection`` (parameters ``$1``)
SQLite            a connection of its own, on a thread of its own, in
                  ``BEGIN IMMEDIATE`` (parameters ``?``); it holds SQLite's
                  one write lock until it commits, so appends wait for it.
                  ``tx.connection`` is None; ``tx.run(fn)`` runs
                  ``fn(sqlite3_connection)`` on that thread (many statements,
                  one hop)
memory            refused (:class:`~eventlog.errors.Unsupported`)
================  ===========================================================
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

from eventlog.storage.held import HeldTransaction

__all__ = ["Body", "OffsetTransaction"]

T = TypeVar("T")


class OffsetTransaction:
    """The open transaction a body runs in.

    Attributes:
        kind: ``"sqlite"`` or ``"postgres"``: which SQL dialect to write.
        connection: PostgreSQL: the ``asyncpg.Connection`` inside the
            transaction (do not commit or roll back on it); SQLite: None.
    """

    def __init__(self, held: HeldTransaction) -> None:
        self._held = held
        self.connection: Any = held.connection
        self.kind: Literal["sqlite", "postgres"] = (
            "sqlite" if held.connection is None else "postgres"
        )

    async def execute(self, sql: str, *args: Any) -> None:
        """Run one statement with positional parameters (``?`` on SQLite, ``$n`` on PostgreSQL)."""
        await self._held.execute(sql, *args)

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Run a query; its rows as tuples."""
        return await self._held.execute(sql, *args)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """SQLite: ``fn(connection)`` on the transaction's thread (several statements, one hop)."""
        return await self._held.run(fn)


Body = Callable[[OffsetTransaction], Awaitable[T]]
"""What runs inside an offset transaction."""
