"""The write side of :class:`~eventlog.log.EventLog`: appends now, later, and in a transaction.

* ``append`` / ``append_batch`` / ``append_event`` go through the group-commit
  writer (:mod:`eventlog.writer`).
* With ``at=``, they schedule instead (:mod:`eventlog.schedule`).
* With ``connection=`` (PostgreSQL), or inside ``log.transaction()``, they
  append in a transaction the caller holds, committed with the caller's own
  writes (:mod:`eventlog.transaction`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal, overload

from eventlog.config import LogConfig
from eventlog.encoding import BatchItem, pending_event, pending_events, plain_event
from eventlog.errors import EventLogError, InvalidEvent, InvalidInput, InvalidPosition
from eventlog.heads import HeadWatcher
from eventlog.model import utc_now, validate_stream_name
from eventlog.schedule import Scheduled, Scheduler
from eventlog.storage.base import Appended, AppendRequest, PendingEvent
from eventlog.storage.held import HeldSource
from eventlog.transaction import LogTransaction, outcome_offsets
from eventlog.writer import GroupCommitWriter

if TYPE_CHECKING:
    import asyncpg

__all__ = ["Appends"]

logger = logging.getLogger("eventlog")


class Appends:
    """The append methods of :class:`~eventlog.log.EventLog` (a base class of it)."""

    config: LogConfig
    heads: HeadWatcher
    _state: Literal["new", "open", "closed"]
    _writer: GroupCommitWriter
    _scheduler: Scheduler
    _held: HeldSource

    def _check_open(self) -> None:
        raise NotImplementedError

    def _request(
        self, stream: str, events: list[PendingEvent], expected_offset: int | None
    ) -> tuple[AppendRequest, int]:
        validate_stream_name(stream)
        if expected_offset is not None:
            _check_expected(expected_offset)
        nbytes = len(events[0].data) if len(events) == 1 else sum(len(e.data) for e in events)
        return AppendRequest(stream=stream, events=events, expected_offset=expected_offset), nbytes

    @overload
    async def append(
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
        connection: asyncpg.Connection | None = None,
    ) -> int: ...

    @overload
    async def append(
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

    async def append(
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
        connection: asyncpg.Connection | None = None,
    ) -> int | Scheduled:
        """Append one event; return its offset once it is durable.

        With ``at``, schedule it instead: it is stored durably now and
        appended at that time (a timezone-aware datetime, or a timedelta from
        now); returns a :class:`~eventlog.schedule.Scheduled` (see
        :mod:`eventlog.schedule` for the guarantees).

        Args:
            stream: Stream name (created on first append).
            data: Any JSON-serialisable value, or :class:`msgspec.Raw` JSON bytes.
            type: Event type, e.g. ``"order.created"``.
            key: Optional aggregate / partition key.
            id: Idempotency key: if an event with this id exists in the stream,
                its offset is returned and nothing is written.
            headers: String metadata.
            expected_offset: If given, the append succeeds only if the stream's
                next offset equals it (optimistic concurrency).
            at: When to append (scheduled append); an ``id`` makes scheduling
                idempotent and names the event to cancel.
            connection: PostgreSQL only: an asyncpg connection inside a
                transaction of yours. The event is appended in it: visible,
                gapless, only if that transaction commits (the outbox; see
                :mod:`eventlog.transaction`). Returns the offset it will have.

        Raises:
            InvalidStreamName, InvalidEvent, EventTooLarge: Bad input.
            InvalidSchedule: ``at`` is naive or beyond the schedule horizon.
            ExpectedOffsetMismatch: The stream head moved.
            LogClosed: The log is closed.
        """
        if self._state != "open":
            self._check_open()
        if key is None and id is None and headers is None:
            event = plain_event(data, type, self.config.max_event_bytes)
        else:
            event = pending_event(
                data,
                type=type,
                key=key,
                id=id,
                headers=headers,
                max_bytes=self.config.max_event_bytes,
            )
        validate_stream_name(stream)
        if at is not None:
            return (await self._schedule(stream, [event], at, expected_offset))[0]
        if expected_offset is not None:
            _check_expected(expected_offset)
        if connection is not None:
            request = AppendRequest(stream=stream, events=[event], expected_offset=expected_offset)
            return (await self._append_on(connection, [request]))[0]
        writer = self._writer
        if writer.full:
            await writer.wait_for_room()
        if expected_offset is None:
            return await writer.enqueue_one(stream, event)
        request = AppendRequest(stream=stream, events=[event], expected_offset=expected_offset)
        result = await writer.enqueue(request, len(event.data))
        return result.offsets[0]

    @overload
    async def append_batch(
        self,
        stream: str,
        events: Sequence[BatchItem],
        *,
        expected_offset: int | None = None,
        at: None = None,
        connection: asyncpg.Connection | None = None,
    ) -> list[int]: ...

    @overload
    async def append_batch(
        self, stream: str, events: Sequence[BatchItem], *, at: datetime | timedelta
    ) -> list[Scheduled]: ...

    async def append_batch(
        self,
        stream: str,
        events: Sequence[BatchItem],
        *,
        expected_offset: int | None = None,
        at: datetime | timedelta | None = None,
        connection: asyncpg.Connection | None = None,
    ) -> list[int] | list[Scheduled]:
        """Append events atomically (all or none, consecutive offsets); return their offsets.

        Each event is a :class:`NewEvent` or a plain mapping with its fields,
        ``{"type": "t", "data": {...}}`` (``key``, ``id``, ``headers``
        optional; other keys are refused). A bad item raises
        :class:`InvalidEvent` naming its path (``$[3].type``) and nothing is
        written.

        With ``at``, schedule them all (stored atomically) for that time
        instead; with ``connection``, append them in your PostgreSQL
        transaction; both like :meth:`append`.
        """
        if at is not None:
            return await self._schedule(stream, self._pending(events), at, expected_offset)
        if connection is not None:
            self._check_open()
            request, _ = self._request(stream, self._pending(events), expected_offset)
            return await self._append_on(connection, [request])
        result = await self.append_batch_result(stream, events, expected_offset=expected_offset)
        return result.offsets

    async def _schedule(
        self,
        stream: str,
        events: list[PendingEvent],
        at: datetime | timedelta,
        expected_offset: int | None,
    ) -> list[Scheduled]:
        self._check_open()
        if expected_offset is not None:
            raise InvalidInput("expected_offset cannot be combined with a scheduled append")
        return await self._scheduler.schedule(validate_stream_name(stream), events, at)

    async def _append_on(
        self, connection: asyncpg.Connection, requests: list[AppendRequest]
    ) -> list[int]:
        self._check_open()
        return outcome_offsets(await self._held.append_in(connection, requests, utc_now()))

    def transaction(self, *, timeout: float | None = 5.0) -> LogTransaction:
        """A transaction of the log's database: your writes and appends, committed together.

        ::

            async with log.transaction() as txn:
                await txn.execute("INSERT INTO orders (id, total) VALUES (?, ?)", 7, 9.5)
                await txn.append("orders", {"id": 7}, type="order.created")

        Commits when the block ends, rolls back if it raises (or runs longer
        than ``timeout`` seconds: :class:`TimeoutError`). While it is open the
        log's other appends wait: on SQLite all of them (one write lock), on
        PostgreSQL those to the streams it appended to. See
        :mod:`eventlog.transaction`.
        """
        self._check_open()
        return LogTransaction(self._held, self.config, self.heads.advance, timeout)

    async def checkpoint(self, name: str) -> bytes | None:
        """A producer's last committed checkpoint (see :meth:`LogTransaction.set_checkpoint`)."""
        self._check_open()
        return await self._held.checkpoint(name)

    @property
    def schedules(self) -> Scheduler:
        """The log's scheduled appends: list, get and cancel them."""
        return self._scheduler

    async def append_batch_result(
        self,
        stream: str,
        events: Sequence[BatchItem],
        *,
        expected_offset: int | None = None,
    ) -> Appended:
        """Like :meth:`append_batch`, also telling how many events were new."""
        self._check_open()
        pending = self._pending(events)
        request, nbytes = self._request(stream, pending, expected_offset)
        writer = self._writer
        if writer.full:
            await writer.wait_for_room()
        return await writer.enqueue(request, nbytes)

    def _pending(self, events: Sequence[BatchItem]) -> list[PendingEvent]:
        if not events:
            raise InvalidEvent("a batch needs at least one event")
        if len(events) > self.config.max_batch_events:
            raise InvalidEvent(
                f"a batch holds at most {self.config.max_batch_events} events, got {len(events)}"
            )
        return pending_events(events, self.config.max_event_bytes)

    def append_event(
        self,
        stream: str,
        data: object,
        *,
        type: str,
        key: str | None = None,
        id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Fire and forget: queue one event and return at once.

        Never raises: invalid input, a closed log or a failed write is logged
        on the ``eventlog`` logger. Call it from the log's event loop.
        """
        try:
            self._check_open()
            event = pending_event(
                data,
                type=type,
                key=key,
                id=id,
                headers=headers,
                max_bytes=self.config.max_event_bytes,
            )
            validate_stream_name(stream)
            future = self._writer.enqueue_one(stream, event)
        except EventLogError as exc:
            logger.warning("append_event to %r dropped: %s", stream, exc)
            return
        future.add_done_callback(_log_failure)


def _check_expected(expected_offset: object) -> None:
    if not isinstance(expected_offset, int) or expected_offset < 0:
        raise InvalidPosition("expected_offset must be a non-negative integer")


def _log_failure(future: asyncio.Future[int]) -> None:
    if not future.cancelled() and (exc := future.exception()) is not None:
        logger.warning("append_event failed: %s", exc)
