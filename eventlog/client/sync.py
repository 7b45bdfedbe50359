"""``Client``: the :class:`~eventlog.client.AsyncClient` for code without an event loop.

::

    with Client("http://127.0.0.1:7432") as log:
        offset = log.append("orders", {"id": 7}, type="order.created")
        for event in log.follow("orders", "beginning"):
            ...

Each client runs one ``AsyncClient`` on an event loop in a daemon thread of
its own and waits for each call there, so both clients behave the same
(retries, errors, resuming follows) from one implementation. A ``Client`` may
be shared by threads; calls from several threads run concurrently on its loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar, overload

from eventlog.client.aio import DEFAULT_URL, AsyncClient
from eventlog.client.schedules import RemoteSchedules
from eventlog.client.shared import Claim, SharedConsumerInfo
from eventlog.client.sync_consumer import SyncConsumer
from eventlog.closing import Closing
from eventlog.consumer import ResetPolicy
from eventlog.model import (
    BEGINNING,
    ConsumerInfo,
    Event,
    NewEvent,
    Position,
    Retention,
    StreamInfo,
)
from eventlog.schedule import Scheduled, ScheduledEvent, SchedulePage
from eventlog.storage.base import Appended

__all__ = ["Client", "SyncClaim", "SyncSchedules"]

T = TypeVar("T")


class _Portal:
    """An event loop in a daemon thread, and a way to wait for coroutines on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="eventlog-client", daemon=True
        )
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:  # Ctrl-C while waiting: stop the work on the loop too
            future.cancel()
            raise

    def iterate(self, source: AsyncIterator[T]) -> Iterator[T]:
        try:
            while True:
                try:
                    yield self.call(_next(source))
                except StopAsyncIteration:
                    return
        finally:
            if not self.loop.is_closed():
                aclose = getattr(source, "aclose", None)
                if aclose is not None:
                    self.call(aclose())

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


async def _next(source: AsyncIterator[T]) -> T:
    return await source.__anext__()


class SyncClaim:
    """A :class:`~eventlog.client.Claim` with blocking ``ack``, ``nack`` and ``in_progress``."""

    def __init__(self, claim: Claim, portal: _Portal) -> None:
        self.claim = claim
        self._portal = portal
        self.id, self.offset, self.stream = claim.id, claim.offset, claim.stream
        self.attempt, self.event = claim.attempt, claim.event

    @property
    def expires(self) -> datetime:
        """When the claim lapses."""
        return self.claim.expires

    def ack(self) -> None:
        """Done with the event."""
        self._portal.call(self.claim.ack())

    def nack(self, delay: float = 0.0) -> None:
        """Give the event back, to be handed out again after ``delay`` seconds."""
        self._portal.call(self.claim.nack(delay))

    def in_progress(self) -> datetime:
        """Extend the claim by its ``ack_wait``; the new expiry."""
        return self._portal.call(self.claim.in_progress())

    def __repr__(self) -> str:
        return f"Sync{self.claim!r}"


class SyncSchedules:
    """:class:`~eventlog.client.schedules.RemoteSchedules` with blocking methods."""

    def __init__(self, remote: RemoteSchedules, portal: _Portal) -> None:
        self._remote = remote
        self._portal = portal

    def get(self, stream: str, event_id: str) -> ScheduledEvent:
        """One scheduled event (:class:`~eventlog.ScheduleNotFound` if none)."""
        return self._portal.call(self._remote.get(stream, event_id))

    def cancel(self, stream: str, event_id: str) -> None:
        """Remove a scheduled event before it is appended."""
        self._portal.call(self._remote.cancel(stream, event_id))

    def page(self, **where: Any) -> SchedulePage:
        """Scheduled events in due order, a page at a time (``RemoteSchedules.page``)."""
        return self._portal.call(self._remote.page(**where))


class Client(Closing):
    """A remote eventlog server, with blocking methods. Arguments are
    :class:`~eventlog.client.AsyncClient`'s; so are the methods, names and
    return types (iterators instead of async iterators)."""

    def __init__(self, url: str = DEFAULT_URL, **options: Any) -> None:
        self.aio = AsyncClient(url, **options)
        self.url = self.aio.url
        self._portal = _Portal()

    @classmethod
    def open(cls, url: str = DEFAULT_URL, **options: Any) -> Client:
        """``with Client.open(url) as log:`` (the same as ``Client(url)``)."""
        return cls(url, **options)

    def close(self) -> None:
        """Close the connections and stop the client's thread. Idempotent."""
        if not self._portal.loop.is_closed():
            self._portal.call(self.aio.close())
        self._portal.close()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return self.aio.closed

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._portal.call(coro)

    # -- appends -----------------------------------------------------------------------------

    @overload
    def append(
        self,
        stream: str,
        data: object,
        *,
        type: str,
        key: str | None = None,
        id: str | None = None,
        headers: Mapping[str, str] | None = None,
        expected_offset: int | None = None,
        at: None = None,
    ) -> int: ...

    @overload
    def append(
        self,
        stream: str,
        data: object,
        *,
        type: str,
        key: str | None = None,
        id: str | None = None,
        headers: Mapping[str, str] | None = None,
        at: datetime | timedelta,
    ) -> Scheduled: ...

    def append(
        self,
        stream: str,
        data: object,
        *,
        type: str,
        key: str | None = None,
        id: str | None = None,
        headers: Mapping[str, str] | None = None,
        expected_offset: int | None = None,
        at: datetime | timedelta | None = None,
    ) -> int | Scheduled:
        """Append one event; its offset (see :meth:`AsyncClient.append`)."""
        if at is not None:
            coro = self.aio.append(stream, data, type=type, key=key, id=id, headers=headers, at=at)
            return self._call(coro)
        return self._call(
            self.aio.append(
                stream,
                data,
                type=type,
                key=key,
                id=id,
                headers=headers,
                expected_offset=expected_offset,
            )
        )

    @overload
    def append_batch(
        self,
        stream: str,
        events: Sequence[NewEvent | Mapping[str, Any]],
        *,
        expected_offset: int | None = None,
        at: None = None,
    ) -> list[int]: ...

    @overload
    def append_batch(
        self,
        stream: str,
        events: Sequence[NewEvent | Mapping[str, Any]],
        *,
        at: datetime | timedelta,
    ) -> list[Scheduled]: ...

    def append_batch(
        self,
        stream: str,
        events: Sequence[NewEvent | Mapping[str, Any]],
        *,
        expected_offset: int | None = None,
        at: datetime | timedelta | None = None,
    ) -> list[int] | list[Scheduled]:
        """Append events atomically; their offsets (see :meth:`AsyncClient.append_batch`)."""
        if at is not None:
            return self._call(self.aio.append_batch(stream, events, at=at))
        return self._call(self.aio.append_batch(stream, events, expected_offset=expected_offset))

    def append_batch_result(
        self,
        stream: str,
        events: Sequence[NewEvent | Mapping[str, Any]],
        *,
        expected_offset: int | None = None,
    ) -> Appended:
        """Like :meth:`append_batch`, also telling how many events were new."""
        coro = self.aio.append_batch_result(stream, events, expected_offset=expected_offset)
        return self._call(coro)

    @property
    def schedules(self) -> SyncSchedules:
        """The server's scheduled appends: blocking ``page``, ``get`` and ``cancel``."""
        return SyncSchedules(self.aio.schedules, self._portal)

    def call(
        self, method: str, path: str, body: object = None, **params: str | int | float | None
    ) -> Any:
        """One request to any route of the API (see :meth:`AsyncClient.call`)."""
        return self._call(self.aio.call(method, path, body, **params))

    # -- reads -------------------------------------------------------------------------------

    def read(self, stream: str, from_offset: int = 0, limit: int = 1000) -> list[Event]:
        """Up to ``limit`` events from ``from_offset`` (see :meth:`AsyncClient.read`)."""
        return self._call(self.aio.read(stream, from_offset, limit))

    def read_wait(
        self, stream: str, from_offset: int, limit: int = 1000, timeout: float = 30.0
    ) -> list[Event]:
        """:meth:`read`, long-polling up to ``timeout`` seconds for the first event."""
        return self._call(self.aio.read_wait(stream, from_offset, limit, timeout))

    def scan(self, stream: str, start: int = 0, stop: int | None = None) -> Iterator[Event]:
        """Events from ``start`` up to ``stop`` or the current head, a page at a time."""
        return self._portal.iterate(self.aio.scan(stream, start, stop))

    def wait(self, stream: str, offset: int, timeout: float | None = None) -> bool:
        """Wait until ``stream`` has an event at ``offset``; False on timeout."""
        return self._call(self.aio.wait(stream, offset, timeout))

    def follow(
        self,
        stream: str,
        start: int | str = "end",
        *,
        types: Sequence[str] | None = None,
        key: str | None = None,
        batch: int = 100,
    ) -> Iterator[Event]:
        """Events from ``start`` on, forever, resuming after disconnects
        (see :meth:`AsyncClient.follow`)."""
        source = self.aio.follow(stream, start, types=types, key=key, batch=batch)
        return self._portal.iterate(source)

    # -- streams and consumers ----------------------------------------------------------------

    def stream_info(self, stream: str) -> StreamInfo:
        """A stream's shape; :class:`~eventlog.StreamNotFound` if it does not exist."""
        return self._call(self.aio.stream_info(stream))

    def bounds(self, stream: str) -> tuple[int, int]:
        """``(first_offset, next_offset)``; ``(0, 0)`` for a stream that does not exist."""
        return self._call(self.aio.bounds(stream))

    def streams(self) -> list[StreamInfo]:
        """Every stream, ordered by name."""
        return self._call(self.aio.streams())

    def set_retention(self, stream: str, retention: Retention) -> None:
        """:meth:`AsyncClient.set_retention <eventlog.client.AsyncClient.set_retention>`."""
        self._call(self.aio.set_retention(stream, retention))

    def delete_stream(self, stream: str) -> None:
        """Delete a stream (needs ``admin``)."""
        self._call(self.aio.delete_stream(stream))

    def consumers(self) -> list[ConsumerInfo]:
        """Every committed consumer position."""
        return self._call(self.aio.consumers())

    def consumer_detail(self, name: str) -> dict[str, Any]:
        """One consumer as ``GET /api/consumers/{name}`` describes it."""
        return self._call(self.aio.consumer_detail(name))

    def offset_at_time(self, stream: str, time: datetime) -> int:
        """The offset of the first event appended at or after ``time``."""
        return self._call(self.aio.offset_at_time(stream, time))

    def consumer(
        self,
        name: str,
        stream: str,
        *,
        start: Position = BEGINNING,
        reset: ResetPolicy = "earliest",
    ) -> SyncConsumer:
        """The embedded log's consumer with blocking methods, its committed offset
        in the server (see :meth:`AsyncClient.consumer`)."""
        cursor = self.aio.consumer(name, stream, start=start, reset=reset)
        return SyncConsumer(cursor, self._portal)

    def committed_offset(self, consumer: str, stream: str) -> int | None:
        """The offset ``consumer`` committed on ``stream``, or None."""
        return self._call(self.aio.committed_offset(consumer, stream))

    def commit_offset(self, consumer: str, stream: str, offset: int) -> None:
        """Store ``offset`` as the next offset ``consumer`` reads on ``stream`` (admin)."""
        self._call(self.aio.commit_offset(consumer, stream, offset))

    def replay_parked(self, name: str) -> dict[str, Any]:
        """Hand a consumer's parked events back to its handler in the server (admin)."""
        return self._call(self.aio.replay_parked(name))

    # -- shared consumers ------------------------------------------------------------------

    def declare_shared(self, name: str, stream: str, **spec: Any) -> SharedConsumerInfo:
        """Declare (or update) a shared consumer (see :meth:`AsyncClient.declare_shared`)."""
        return self._call(self.aio.declare_shared(name, stream, **spec))

    def shared_info(self, name: str) -> SharedConsumerInfo:
        """A shared consumer's spec and counts."""
        return self._call(self.aio.shared_info(name))

    def delete_shared(self, name: str) -> None:
        """Delete a shared consumer (admin)."""
        self._call(self.aio.delete_shared(name))

    def claim(
        self, consumer: str, *, worker: str, max: int = 10, wait: float = 5.0
    ) -> list[SyncClaim]:
        """Up to ``max`` claims for ``worker``, waiting up to ``wait`` s for the first."""
        got = self._call(self.aio.claim(consumer, worker=worker, max=max, wait=wait))
        return [SyncClaim(c, self._portal) for c in got]

    def ack(self, consumer: str, claims: Sequence[SyncClaim | str], *, worker: str) -> int:
        """Ack claims (all or none); how many."""
        return self._call(self.aio.ack(consumer, _ids(claims), worker=worker))

    def nack(
        self, consumer: str, claims: Sequence[SyncClaim | str], *, worker: str, delay: float = 0.0
    ) -> int:
        """Give claims back, handed out again after ``delay`` seconds; how many."""
        return self._call(self.aio.nack(consumer, _ids(claims), worker=worker, delay=delay))

    def in_progress(
        self, consumer: str, claims: Sequence[SyncClaim | str], *, worker: str
    ) -> datetime:
        """Extend claims by their ``ack_wait``; their new expiry."""
        return self._call(self.aio.in_progress(consumer, _ids(claims), worker=worker))

    def claims(
        self, consumer: str, *, worker: str, max: int = 10, wait: float = 5.0
    ) -> Iterator[SyncClaim]:
        """Claims for ``worker``, forever: ``for claim in client.claims(...)``."""
        source = self.aio.claims(consumer, worker=worker, max=max, wait=wait)
        return (SyncClaim(c, self._portal) for c in self._portal.iterate(source))


def _ids(claims: Sequence[SyncClaim | str]) -> list[str]:
    return [c if isinstance(c, str) else c.id for c in claims]
