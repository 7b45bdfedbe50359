"""Offset transactions on PostgreSQL (see :mod:`eventlog.storage.transactions`).

The body runs on a pooled connection inside ``conn.transaction()``; other
processes' and this process's appends go on meanwhile (row locks only: the
consumer's ``consumer_offsets`` row, and whatever the body touches).
"""

from __future__ import annotations

from typing import TypeVar

import asyncpg

from eventlog.storage.capabilities import PostgresTables
from eventlog.storage.postgres_schema import set_offset
from eventlog.storage.transactions import Body, OffsetTransaction

__all__ = ["transact_offset"]

T = TypeVar("T")


async def transact_offset(
    storage: PostgresTables, consumer: str, stream: str, offset: int, body: Body[T]
) -> T:
    """See :meth:`OffsetTransactions.transact_offset`."""

    async def txn(conn: asyncpg.Connection) -> T:
        result = await body(OffsetTransaction("postgres", conn))
        await set_offset(conn, storage.schema, consumer, stream, offset)
        return result

    return await storage.transact(txn, "consumer transaction")
