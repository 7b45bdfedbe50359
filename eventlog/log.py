"""``EventLog``: the append-only, offset-indexed log, embeddable in any asyncio program.

::

    async with EventLog.open("events.db") as log:
        offset = await log.append("orders", {"id": 7}, type="order.created")
        async for event in log.scan("orders"):
            ...

The log owns a group-commit writer (:mod:`eventlog.writer`), a head watcher
for wake-ups (:mod:`eventlog.heads`) and a retention task; storage is a
pluggable :class:`~eventlog.storage.base.Storage`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Generator
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from eventlog.appends import Appends
from eventlog.config import LogConfig, storage_for
from eventlog.consumer import Consumer, ResetPolicy
from eventlog.errors import (
    EventLogError,
    InvalidInput,
    InvalidPosition,
    LogClosed,
    OffsetOutOfRange,
    StreamNotFound,
)
from eventlog.heads import HeadWatcher
from eventlog.holds import HoldPlan, HoldPolicy
from eventlog.model import (
    BEGINNING,
    ConsumerInfo,
    Event,
    Position,
    Retention,
    StreamInfo,
    utc_now,
    validate_stream_name,
)
from eventlog.retention import check_retention, enforce_retention, plan_stream
from eventlog.schedule import Scheduler
from eventlog.storage.base import Storage
from eventlog.storage.held import held_for
from eventlog.storage.schedule import schedule_store_for
from eventlog.transaction import LogTransaction
from eventlog.writer import GroupCommitWriter

__all__ = ["EventLog", "LogConfig", "storage_for"]

logger = logging.getLogger("eventlog")


class _Opener:
    """What :meth:`EventLog.open` returns: await it, or use it with ``async with``."""

    def __init__(self, log: EventLog) -> None:
        self._log = log

    def __await__(self) -> Generator[Any, None, EventLog]:
        return self._start().__await__()

    async def _start(self) -> EventLog:
        await self._log.start()
        return self._log

    async def __aenter__(self) -> EventLog:
        return await self._start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._log.close()


class EventLog(Appends):
    """A durable, offset-indexed log of named streams.

    Create one with :meth:`open`, or with a storage backend directly:
    ``EventLog(MemoryStorage())`` then ``await log.start()``.
    """

    def __init__(self, storage: Storage, config: LogConfig | None = None) -> None:
        self.storage = storage
        self.config = config or LogConfig()
        self.heads = HeadWatcher(self._fetch_head, recheck=self.config.recheck_interval)
        self._writer = GroupCommitWriter(
            storage,
            self.heads.advance,
            max_batch_events=self.config.writer_batch_events,
            max_batch_bytes=self.config.writer_batch_bytes,
            max_queued_events=self.config.queue_events,
            max_queued_bytes=self.config.queue_bytes,
        )
        self._scheduler = Scheduler(
            schedule_store_for(storage),
            # Not self.transaction: a dispatch in hand may finish while the log closes.
            lambda: LogTransaction(self._held, self.config, self.heads.advance, 30.0),
            horizon=self.config.schedule_horizon,
            poll=self.config.schedule_poll,
        )
        self._held = held_for(storage)
        self._state: Literal["new", "open", "closed"] = "new"
        self._retention_task: asyncio.Task[None] | None = None
        self._holds: dict[str, HoldPolicy] = {}

    @classmethod
    def open(
        cls, target: str | Path = "eventlog.db", *, config: LogConfig | None = None, **options: Any
    ) -> _Opener:
        """Open a log: ``async with EventLog.open("events.db") as log:`` or ``await``.

        Args:
            target: An SQLite file path (default ``eventlog.db``), ``":memory:"``,
                or a ``postgresql://`` URL.
            config: A :class:`LogConfig`; or pass its fields as keyword options.
        """
        if config is None:
            try:
                config = LogConfig(**options)
            except TypeError as exc:
                raise InvalidInput(f"unknown log option: {exc}") from exc
        elif options:
            raise TypeError("pass either config= or keyword options, not both")
        return _Opener(cls(storage_for(target, config), config))

    async def start(self) -> None:
        """Open storage and start the writer and retention tasks."""
        if self._state == "open":
            return
        if self._state == "closed":
            raise LogClosed("a closed log cannot be reopened; open a new one")
        await self.storage.open()
        self.storage.listen(self.heads.advance)
        self._writer.start()
        try:
            await self._held.open()
            await self._scheduler.start()
        except BaseException:
            await self._writer.close()
            await self.storage.close()
            raise
        if self.config.retention_interval > 0:
            self._retention_task = asyncio.create_task(self._retention_loop())
        self._state = "open"

    async def close(self) -> None:
        """Write everything queued, stop the tasks, close storage. Idempotent."""
        if self._state != "open":
            self._state = "closed"
            return
        self._state = "closed"
        if self._retention_task is not None:
            self._retention_task.cancel()
            await asyncio.gather(self._retention_task, return_exceptions=True)
        await self._scheduler.close()
        await self._held.close()
        await self._writer.close()
        self.heads.wake_all()
        await self.storage.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return self._state == "closed"

    def _check_open(self) -> None:
        if self._state != "open":
            raise LogClosed("the log is closed" if self._state == "closed" else "log not started")

    # -- reads ---------------------------------------------------------------

    async def read(self, stream: str, from_offset: int = 0, limit: int = 1000) -> list[Event]:
        """Up to ``limit`` events of ``stream`` from ``from_offset`` on, in order.

        Returns an empty list at the head (or for a stream that does not exist).

        Raises:
            OffsetOutOfRange: ``from_offset`` is before the first retained offset.
        """
        self._check_open()
        validate_stream_name(stream)
        if not isinstance(from_offset, int) or from_offset < 0:
            raise InvalidPosition("from_offset must be a non-negative integer")
        if not isinstance(limit, int) or limit < 1:
            raise InvalidPosition("limit must be a positive integer")
        events = await self.storage.read(stream, from_offset, limit)
        if events and events[0].offset == from_offset:
            return events
        known = self.heads.known_head(stream)
        if events or known is None or from_offset < known:
            # A gap at the start (or nothing below a known head): retention may
            # have passed the offset. At or past the head nothing can be missing.
            info = await self.storage.stream_info(stream)
            if info is not None and from_offset < info.first_offset:
                raise OffsetOutOfRange(stream, from_offset, info.first_offset)
        return events

    async def scan(
        self, stream: str, start: int = 0, stop: int | None = None
    ) -> AsyncIterator[Event]:
        """Iterate events from ``start`` up to (not including) ``stop`` or the
        current head, one page at a time; never loads the stream into memory."""
        page = self.config.read_page
        offset = start
        while stop is None or offset < stop:
            limit = page if stop is None else min(page, stop - offset)
            events = await self.read(stream, offset, limit)
            if not events:
                return
            for event in events:
                yield event
            offset = events[-1].offset + 1

    async def wait(self, stream: str, offset: int, timeout: float | None = None) -> bool:
        """Wait until ``stream`` has an event at ``offset``; False on timeout or close."""
        self._check_open()
        return await self.heads.wait_beyond(stream, offset, timeout)

    async def _fetch_head(self, stream: str) -> int:
        info = await self.storage.stream_info(stream)
        return 0 if info is None else info.next_offset

    async def stream_info(self, stream: str) -> StreamInfo:
        """Head, low watermark, count, bytes and retention of a stream.

        Raises:
            StreamNotFound: The stream does not exist.
        """
        self._check_open()
        validate_stream_name(stream)
        info = await self.storage.stream_info(stream)
        if info is None:
            raise StreamNotFound(stream)
        return info

    async def streams(self) -> list[StreamInfo]:
        """Every stream, ordered by name."""
        self._check_open()
        return await self.storage.streams()

    async def delete_stream(self, stream: str) -> None:
        """Delete a stream, its events and its consumers' offsets.

        Raises:
            StreamNotFound: The stream does not exist.
        """
        self._check_open()
        validate_stream_name(stream)
        if not await self.storage.delete_stream(stream):
            raise StreamNotFound(stream)
        self.heads.reset(stream)

    async def offset_at_time(self, stream: str, time: datetime) -> int:
        """The first offset appended at or after ``time`` (the head if none)."""
        self._check_open()
        if time.tzinfo is None:
            raise InvalidPosition("time must be timezone-aware")
        return await self.storage.offset_at_time(validate_stream_name(stream), time)

    # -- consumers -------------------------------------------------------------

    def consumer(
        self,
        name: str,
        stream: str,
        *,
        start: Position = BEGINNING,
        reset: ResetPolicy = "earliest",
    ) -> Consumer:
        """A named cursor over ``stream`` whose committed offset lives in this log.

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

    async def consumers(self) -> list[ConsumerInfo]:
        """Every committed consumer position."""
        self._check_open()
        return await self.storage.consumers()

    # -- retention -------------------------------------------------------------

    async def set_retention(self, stream: str, retention: Retention) -> None:
        """Set a stream's retention policy (applied by the next retention pass)."""
        self._check_open()
        check_retention(retention)
        await self.storage.set_retention(validate_stream_name(stream), retention)

    async def enforce_retention(self, now: datetime | None = None) -> int:
        """Apply every stream's retention policy now, short of what named
        consumers have not read (see :mod:`eventlog.holds`); return events deleted."""
        self._check_open()
        return await enforce_retention(
            self.storage, now or utc_now(), self.hold_policy, self.notice
        )

    def set_hold_policy(self, consumer: str, policy: HoldPolicy) -> None:
        """How ``consumer`` holds retention in this process (default from the config)."""
        self._holds[validate_stream_name(consumer)] = policy

    def hold_policy(self, consumer: str) -> HoldPolicy:
        """How ``consumer`` holds retention."""
        policy = self._holds.get(consumer)
        if policy is None:
            return HoldPolicy(protect=self.config.protect_consumers, max_hold=self.config.max_hold)
        return policy

    async def retention_holds(self, stream: str, now: datetime | None = None) -> HoldPlan:
        """Who holds ``stream``'s retention back, by how many events, and the cutoff.

        Raises:
            StreamNotFound: The stream does not exist.
        """
        info = await self.stream_info(stream)
        consumers = await self.storage.consumers()
        return await plan_stream(self.storage, info, consumers, self.hold_policy, now or utc_now())

    async def notice(self, type: str, data: dict[str, object]) -> None:
        """Record something the log or a runtime did on its own on the system stream."""
        await self.append(self.config.system_stream, data, type=type)

    async def _retention_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.retention_interval)
            try:
                await self.enforce_retention()
            except EventLogError as exc:
                logger.warning("retention pass failed: %s", exc)

    # -- metrics ---------------------------------------------------------------

    @property
    def writer_stats(self) -> dict[str, int]:
        """Writer counters: transactions, events written, events queued."""
        return {
            "transactions": self._writer.transactions,
            "events_written": self._writer.events_written,
            "queued_events": self._writer.queued_events,
        }
