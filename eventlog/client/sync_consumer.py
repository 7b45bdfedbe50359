"""``SyncConsumer``: the embedded log's :class:`~eventlog.Consumer` with blocking methods.

:meth:`Client.consumer <eventlog.client.Client.consumer>` returns one: the same
cursor, its committed offset in the server, each call waited for on the
client's event loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, Protocol, TypeVar

from eventlog.consumer import Consumer
from eventlog.holds import Truncation
from eventlog.model import Event, Position

__all__ = ["SyncConsumer"]

T = TypeVar("T")


class Portal(Protocol):
    """Where the client's coroutines run (``eventlog.client.sync._Portal``)."""

    def call(self, coro: Coroutine[Any, Any, T]) -> T: ...

    def iterate(self, source: AsyncIterator[T]) -> Iterator[T]: ...


class SyncConsumer:
    """A :class:`~eventlog.Consumer` with blocking ``seek``, ``poll``, ``commit``
    and ``lag``. ``for event in consumer`` yields events forever and commits each
    page once the loop asks for the next one, as ``async for`` does."""

    def __init__(self, consumer: Consumer, portal: Portal) -> None:
        self.consumer = consumer
        self._portal = portal
        self.name, self.stream = consumer.name, consumer.stream

    @property
    def position(self) -> int | None:
        """The next offset :meth:`poll` will return (None until first used)."""
        return self.consumer.position

    @property
    def committed(self) -> int | None:
        """The committed offset, as last loaded or committed."""
        return self.consumer.committed

    @property
    def truncation(self) -> Truncation | None:
        """The last time retention removed events before this consumer read them."""
        return self.consumer.truncation

    def seek(self, position: Position) -> int:
        """Move the read position (not committed until :meth:`commit`); the offset."""
        return self._portal.call(self.consumer.seek(position))

    def poll(self, max_events: int = 100, timeout: float | None = 0.0) -> list[Event]:
        """Up to ``max_events`` events from the position, waiting up to ``timeout`` s."""
        return self._portal.call(self.consumer.poll(max_events, timeout))

    def commit(self, offset: int | None = None) -> None:
        """Store ``offset`` (default: the position) as committed (needs ``admin``)."""
        self._portal.call(self.consumer.commit(offset))

    def lag(self) -> int:
        """Events between the committed offset and the stream's head."""
        return self._portal.call(self.consumer.lag())

    def __iter__(self) -> Iterator[Event]:
        return self._portal.iterate(aiter(self.consumer))
