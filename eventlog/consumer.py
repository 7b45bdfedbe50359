"""``Consumer``: a named cursor over one stream with a committed offset in the log.

Delivery is at-least-once: :meth:`Consumer.poll` advances only the in-memory
position; :meth:`Consumer.commit` makes it durable. A consumer that dies
before committing reads the same events again from its committed offset.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Literal, Protocol, TypeVar

import msgspec

from eventlog.config import LogConfig
from eventlog.errors import InvalidPosition, LogClosed, OffsetOutOfRange
from eventlog.holds import Truncation
from eventlog.model import (
    BEGINNING,
    Beginning,
    End,
    Event,
    Offset,
    Position,
    Time,
    validate_stream_name,
)
from eventlog.storage.transactions import Body

__all__ = ["Consumer", "ConsumerMethods", "ResetPolicy"]

ResetPolicy = Literal["earliest", "latest", "error"]

logger = logging.getLogger("eventlog")

T = TypeVar("T")


class _Log(Protocol):
    """What a consumer uses of its :class:`~eventlog.log.EventLog` (its public methods)."""

    @property
    def closed(self) -> bool: ...

    @property
    def config(self) -> LogConfig: ...

    async def read(self, stream: str, from_offset: int = 0, limit: int = 1000) -> list[Event]: ...

    async def wait(self, stream: str, offset: int, timeout: float | None = None) -> bool: ...

    async def bounds(self, stream: str) -> tuple[int, int]: ...

    async def offset_at_time(self, stream: str, time: datetime) -> int: ...

    async def committed_offset(self, consumer: str, stream: str) -> int | None: ...

    async def commit_offset(self, consumer: str, stream: str, offset: int) -> None: ...

    @property
    def can_transact(self) -> bool: ...

    async def transact_offset(
        self, consumer: str, stream: str, offset: int, body: Body[T]
    ) -> T: ...

    def append_event(self, stream: str, data: object, *, type: str) -> None: ...


class Consumer:
    """A named reader of one stream. Get one from :meth:`EventLog.consumer`.

    ``async for event in consumer`` yields events forever, waiting for new
    ones, and commits each page once the loop asks for the next one (so an
    event is committed only after the loop body finished with it).
    """

    def __init__(
        self,
        log: _Log,
        name: str,
        stream: str,
        *,
        start: Position,
        reset: ResetPolicy,
    ) -> None:
        if reset not in ("earliest", "latest", "error"):
            raise InvalidPosition(f"reset must be earliest, latest or error, not {reset!r}")
        self._log = log
        self.name = validate_stream_name(name)
        self.stream = validate_stream_name(stream)
        self._start = start
        self._reset = reset
        self._position: int | None = None
        self._committed: int | None = None
        self._loaded = False
        self._page: list[Event] = []
        self._index = 0
        #: The last time retention removed events before this consumer read
        #: them (None if never): set by :meth:`poll` when it resets.
        self.truncation: Truncation | None = None

    @property
    def position(self) -> int | None:
        """The next offset :meth:`poll` will return (None until first used)."""
        return self._position

    @property
    def committed(self) -> int | None:
        """The durably committed offset, as last loaded or committed."""
        return self._committed

    async def _resolve(self, position: Position) -> int:
        if isinstance(position, Beginning):
            return (await self._log.bounds(self.stream))[0]
        if isinstance(position, End):
            return (await self._log.bounds(self.stream))[1]
        if isinstance(position, Offset):
            return position.value
        if isinstance(position, Time):
            return await self._log.offset_at_time(self.stream, position.value)
        raise InvalidPosition(f"not a position: {position!r}")

    async def _ensure_position(self) -> int:
        if self._position is None:
            if not self._loaded:
                self._committed = await self._log.committed_offset(self.name, self.stream)
                self._loaded = True
            if self._committed is not None:
                self._position = self._committed
            else:
                self._position = await self._resolve(self._start)
        return self._position

    async def seek(self, position: Position) -> int:
        """Move the read position (not committed until :meth:`commit`); returns the offset."""
        if self._log.closed:
            raise LogClosed("the log is closed")
        if not self._loaded:
            self._committed = await self._log.committed_offset(self.name, self.stream)
            self._loaded = True
        self._position = await self._resolve(position)
        self._page, self._index = [], 0
        return self._position

    async def poll(self, max_events: int = 100, timeout: float | None = 0.0) -> list[Event]:
        """Return up to ``max_events`` events from the position, advancing it.

        Waits up to ``timeout`` seconds (None: forever) for an append when none
        are available, waking as soon as one is committed; returns ``[]`` when
        the wait ends empty.

        When the position is before the retained range and the reset policy
        is ``"earliest"`` or ``"latest"``, the poll moves on and says so: it
        sets :attr:`truncation`, logs a warning and records a
        ``consumer.truncated`` event (the :class:`Truncation`) on the log's
        system stream.

        Raises:
            OffsetOutOfRange: The position is before the retained range and the
                reset policy is ``"error"``.
        """
        position = await self._ensure_position()
        events = await self._read(position, max_events)
        if not events and timeout != 0 and await self._log.wait(self.stream, position, timeout):
            events = await self._read(self._position or position, max_events)
        if events:
            self._position = events[-1].offset + 1
        return events

    async def _read(self, position: int, max_events: int) -> list[Event]:
        try:
            return await self._log.read(self.stream, position, max_events)
        except OffsetOutOfRange as exc:
            if self._reset == "error":
                raise
            if self._reset == "earliest":
                self._position = exc.first
            else:
                self._position = max((await self._log.bounds(self.stream))[1], exc.first)
            self.truncation = Truncation.of(
                self.stream, position, exc.first, resumed_at=self._position, consumer=self.name
            )
            logger.warning("%s", self.truncation.describe())
            self._log.append_event(
                self._log.config.system_stream,
                msgspec.to_builtins(self.truncation),
                type="consumer.truncated",
            )
            return await self._log.read(self.stream, self._position, max_events)

    async def commit(self, offset: int | None = None) -> None:
        """Durably store ``offset`` (default: the current position) as committed.

        Raises:
            InvalidPosition: ``offset`` is negative or past the stream's head (the
                head itself, caught up, is fine; a stream that does not exist has
                head 0), as a seek past it is over HTTP.
        """
        if offset is None:
            offset = await self._ensure_position()
        if not isinstance(offset, int) or offset < 0:
            raise InvalidPosition("offset must be a non-negative integer")
        await self._log.commit_offset(self.name, self.stream, offset)
        self._committed = offset
        self._loaded = True

    async def transact(self, body: Body[T], offset: int | None = None) -> T:
        """Run ``body(tx)`` in the database transaction that commits ``offset``.

        The handler's own writes through ``tx`` (an
        :class:`~eventlog.storage.transactions.OffsetTransaction`) and the
        commit of ``offset`` (default: the current position) are atomic:
        after a crash either both happened or neither did, so a handler that
        writes its results to the log's own database sees each event exactly
        once. See :mod:`eventlog.storage.transactions` for what ``tx`` is on
        each backend and what it costs.

        Raises:
            Unsupported: The backend has no database to share (memory).
        """
        if offset is None:
            offset = await self._ensure_position()
        if not isinstance(offset, int) or offset < 0:
            raise InvalidPosition("offset must be a non-negative integer")
        result = await self._log.transact_offset(self.name, self.stream, offset, body)
        self._committed = offset
        self._loaded = True
        return result

    @property
    def can_transact(self) -> bool:
        """True when :meth:`transact` works: the log is in a database (not in memory)."""
        return self._log.can_transact

    async def lag(self) -> int:
        """Events between the committed offset (or the position, if never
        committed) and the stream head."""
        position = self._committed if self._committed is not None else await self._ensure_position()
        head = (await self._log.bounds(self.stream))[1]
        return max(head - position, 0)

    def __aiter__(self) -> Consumer:
        return self

    async def __anext__(self) -> Event:
        if self._index >= len(self._page):
            if self._page:
                await self.commit(self._page[-1].offset + 1)
            self._page, self._index = [], 0
            while not self._page:
                if self._log.closed:
                    raise StopAsyncIteration
                self._page = await self.poll(self._log.config.read_page, timeout=None)
        event = self._page[self._index]
        self._index += 1
        return event


class ConsumerMethods:
    """``consumer()`` of the embedded log and of the client (a base class of both)."""

    def consumer(
        self: _Log,
        name: str,
        stream: str,
        *,
        start: Position = BEGINNING,
        reset: ResetPolicy = "earliest",
    ) -> Consumer:
        """A named cursor over ``stream`` whose committed offset lives in this log
        (for a client: in the server), the same :class:`Consumer` either way.

        Args:
            name: Consumer name (same rules as stream names).
            stream: The stream to read.
            start: Where to begin when the consumer has never committed.
            reset: What to do when the position falls before the retained
                range: ``"earliest"`` (skip to the first retained event),
                ``"latest"`` (skip to the head) or ``"error"`` (raise
                :class:`OffsetOutOfRange`).
        """
        return Consumer(self, name, stream, start=start, reset=reset)
