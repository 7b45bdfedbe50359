"""Offset transactions: a consumer's own writes and its offset commit, atomically.

A backend that keeps events in a database the caller can also write to
declares :class:`OffsetTransactions` in its capabilities
(``Capabilities.offset_transactions``): it runs the caller's ``body(tx)``
inside one database transaction and stores the consumer's offset in the same
transaction before committing. Either both the caller's writes and the new
offset are durable, or neither is: a handler that projects events into its
own tables sees each event exactly once across crashes.

================  ===========================================================
backend           what ``tx.connection`` is
================  ===========================================================
PostgreSQL        an ``asyncpg.Connection`` in a transaction (parameters ``$1``)
SQLite            an ``aiosqlite.Connection`` to the log's file in a
                  ``BEGIN IMMEDIATE`` transaction (parameters ``?``); it holds
                  SQLite's one write lock until it commits, so appends wait
                  for it
memory            none: the backend declares no ``offset_transactions``
================  ===========================================================
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol, TypeVar

__all__ = ["Body", "OffsetTransaction", "OffsetTransactions"]

T = TypeVar("T")


class OffsetTransaction:
    """The open transaction a body runs in.

    Attributes:
        kind: ``"sqlite"`` or ``"postgres"``: which SQL dialect to write.
        connection: The driver's connection, inside the transaction (see the
            module docstring). Do not commit or roll back on it.
    """

    def __init__(self, kind: Literal["sqlite", "postgres"], connection: Any) -> None:
        self.kind = kind
        self.connection = connection

    async def execute(self, sql: str, *args: Any) -> None:
        """Run one statement with positional parameters (``?`` on SQLite, ``$n`` on PostgreSQL)."""
        if self.kind == "postgres":
            await self.connection.execute(sql, *args)
        else:
            await (await self.connection.execute(sql, args)).close()

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Run a query; its rows as tuples."""
        if self.kind == "postgres":
            return [tuple(row) for row in await self.connection.fetch(sql, *args)]
        async with self.connection.execute(sql, args) as cursor:
            return [tuple(row) for row in await cursor.fetchall()]


Body = Callable[[OffsetTransaction], Awaitable[T]]
"""What runs inside an offset transaction."""


class OffsetTransactions(Protocol):
    """A backend that can commit a consumer offset inside the caller's transaction."""

    async def transact_offset(self, consumer: str, stream: str, offset: int, body: Body[T]) -> T:
        """Run ``body(tx)`` in one transaction, store ``offset`` as ``consumer``'s
        committed offset on ``stream`` in it, and commit; roll back if ``body`` raises."""
        ...
