"""The committed-offset part of :class:`~eventlog.log.EventLog`: consumer positions.

A mixin of ``EventLog``'s public methods. A consumer's committed offset (the
next offset it reads) lives in the log's storage, at most the stream's head
(committing the head itself means caught up; past it is refused, as a seek
past it is); :class:`~eventlog.consumer.Consumer`
and the delivery engine's feeders store theirs here. A log in a database also
commits one inside a held transaction with the caller's own writes
(:mod:`eventlog.storage.transactions`, :mod:`eventlog.storage.held`).
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from eventlog.errors import InvalidPosition, Unsupported
from eventlog.heads import HeadWatcher
from eventlog.model import ConsumerInfo
from eventlog.storage.base import Storage
from eventlog.storage.held import HeldSource
from eventlog.storage.transactions import Body, OffsetTransaction

__all__ = ["OffsetMethods"]

T = TypeVar("T")


class _Log(Protocol):
    storage: Storage
    heads: HeadWatcher
    _held: HeldSource

    def _check_open(self) -> None: ...

    async def bounds(self, stream: str) -> tuple[int, int]: ...


async def _within_head(log: _Log, stream: str, offset: int) -> None:
    """Refuse an offset past the stream's head (the head itself is caught up)."""
    known = log.heads.known_head(stream)  # heads only grow: no query when within it
    if known is not None and offset <= known:
        return
    head = (await log.bounds(stream))[1]
    if offset > head:
        raise InvalidPosition(f"offset {offset} is beyond the head of {stream!r} ({head})")


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
        """Durably store ``offset`` as the next offset ``consumer`` reads on ``stream``.

        Raises:
            InvalidPosition: ``offset`` is past the stream's head (a stream that
                does not exist has head 0).
        """
        self._check_open()
        await _within_head(self, stream, offset)
        await self.storage.commit_offset(consumer, stream, offset)

    @property
    def can_transact(self: _Log) -> bool:
        """True when :meth:`transact_offset` works: the log is in a database (not in memory)."""
        return self._held.own_writes

    async def transact_offset(
        self: _Log, consumer: str, stream: str, offset: int, body: Body[T]
    ) -> T:
        """Run ``body(tx)`` in one held transaction that also commits ``offset``
        for ``consumer`` on ``stream`` (:mod:`eventlog.storage.transactions`).

        Raises:
            Unsupported: The backend has no database to share (memory).
            InvalidPosition: ``offset`` is past the stream's head.
        """
        if not self._held.own_writes:
            raise Unsupported(
                "this storage backend cannot commit an offset inside the caller's "
                "transaction; use SQLite or PostgreSQL"
            )
        self._check_open()
        await _within_head(self, stream, offset)
        async with self._held.transaction() as held:
            result = await body(OffsetTransaction(held))
            await held.set_offset(consumer, stream, offset)
        return result
