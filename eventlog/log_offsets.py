"""The committed-offset part of :class:`~eventlog.log.EventLog`: consumer positions.

A mixin of ``EventLog``'s public methods. A consumer's committed offset (the
next offset it reads) lives in the log's storage; :class:`~eventlog.consumer.Consumer`
and the delivery engine's feeders store theirs here, and a backend with a
database to share commits one inside the caller's own transaction
(:mod:`eventlog.storage.transactions`).
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from eventlog.errors import Unsupported
from eventlog.model import ConsumerInfo
from eventlog.storage.base import Storage
from eventlog.storage.transactions import Body

__all__ = ["OffsetMethods"]

T = TypeVar("T")


class _Log(Protocol):
    storage: Storage

    def _check_open(self) -> None: ...


class OffsetMethods:
    """Consumer-offset methods of :class:`~eventlog.log.EventLog`."""

    async def consumers(self: _Log) -> list[ConsumerInfo]:
        """Every committed consumer position."""
        self._check_open()
        return await self.storage.consumers()

    async def committed_offset(self: _Log, consumer: str, stream: str) -> int | None:
        """The offset ``consumer`` committed on ``stream`` (the next to read), or None."""
        self._check_open()
        return await self.storage.get_offset(consumer, stream)

    async def commit_offset(self: _Log, consumer: str, stream: str, offset: int) -> None:
        """Durably store ``offset`` as the next offset ``consumer`` reads on ``stream``."""
        self._check_open()
        await self.storage.commit_offset(consumer, stream, offset)

    async def transact_offset(
        self: _Log, consumer: str, stream: str, offset: int, body: Body[T]
    ) -> T:
        """Run ``body(tx)`` in one database transaction that also commits ``offset``
        for ``consumer`` on ``stream`` (:mod:`eventlog.storage.transactions`).

        Raises:
            Unsupported: The backend has no database to share (memory).
        """
        self._check_open()
        backend = self.storage.capabilities.offset_transactions
        if backend is None:
            raise Unsupported(
                "this storage backend cannot commit an offset inside the caller's "
                "transaction; use SQLite or PostgreSQL"
            )
        return await backend.transact_offset(consumer, stream, offset, body)
