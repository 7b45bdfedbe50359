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
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from eventlog._opener import Opener
from eventlog.appends import Appends
from eventlog.closing import AsyncClosing
from eventlog.config import LogConfig, storage_for
from eventlog.consumer import ConsumerMethods
from eventlog.errors import (
    InvalidInput,
    InvalidPosition,
    LogClosed,
    OffsetOutOfRange,
    StreamNotFound,
)
from eventlog.heads import HeadWatcher
from eventlog.holds import HoldPolicy
from eventlog.log_offsets import OffsetMethods
from eventlog.log_retention import RetentionMethods
from eventlog.model import (
    Event,
    StreamInfo,
    validate_stream_name,
)
from eventlog.paging import scan_pages
from eventlog.retention import run_retention
from eventlog.schedule import Scheduler
from eventlog.storage import derived
from eventlog.storage.base import Storage
from eventlog.storage.capabilities import Capabilities
from eventlog.storage.components import held_for, schedule_store_for
from eventlog.storage.leases import Leases, leases_for
from eventlog.transaction import LogTransaction
from eventlog.writer import GroupCommitWriter

__all__ = ["EventLog", "LogConfig", "storage_for"]

logger = logging.getLogger("eventlog")


class EventLog(AsyncClosing, Appends, OffsetMethods, RetentionMethods, ConsumerMethods):
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
    ) -> Opener[EventLog]:
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
        return Opener(cls(storage_for(target, config), config))

    async def start(self) -> None:
        """Open storage and start the writer and retention tasks."""
        if self._state == "open":
            return
        if self._state == "closed":
            raise LogClosed("a closed log cannot be reopened; open a new one")
        await self.storage.open()
        if self.storage.capabilities.listen is not None:
            self.storage.capabilities.listen(self.heads.advance)
        self._writer.start()
        try:
            await self._held.open()
            await self._scheduler.start()
        except BaseException:
            await self._writer.close()
            await self.storage.close()
            raise
        if self.config.retention_interval > 0:
            self._retention_task = asyncio.create_task(
                run_retention(self.enforce_retention, self.config.retention_interval)
            )
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

    async def _enter(self) -> None:
        await self.start()

    async def _exit(self) -> None:
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

    def scan(self, stream: str, start: int = 0, stop: int | None = None) -> AsyncIterator[Event]:
        """Iterate events from ``start`` up to (not including) ``stop`` or the
        current head, one page at a time; never loads the stream into memory."""
        return scan_pages(self.read, stream, start, stop, self.config.read_page)

    async def wait(self, stream: str, offset: int, timeout: float | None = None) -> bool:
        """Wait until ``stream`` has an event at ``offset``; False on timeout or close."""
        self._check_open()
        return await self.heads.wait_beyond(stream, offset, timeout)

    async def _fetch_head(self, stream: str) -> int:
        info = await self.storage.stream_info(stream)
        return 0 if info is None else info.next_offset

    async def bounds(self, stream: str) -> tuple[int, int]:
        """``(first_offset, next_offset)``: the stream's retained offsets are
        ``first_offset <= offset < next_offset``; ``(0, 0)`` for a stream that
        does not exist (yet)."""
        self._check_open()
        info = await self.storage.stream_info(validate_stream_name(stream))
        return (0, 0) if info is None else (info.first_offset, info.next_offset)

    def known_head(self, stream: str) -> int | None:
        """The newest next offset this log has seen for the stream without
        asking storage (its own commits, other processes' notifications), or
        None. A hint for a reader deciding whether to :meth:`wait`."""
        return self.heads.known_head(stream)

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
        return await derived.offset_at_time(self.storage, validate_stream_name(stream), time)

    # -- what the backend offers ---------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        """What the storage backend declares beyond the ``Storage`` protocol."""
        return self.storage.capabilities

    @property
    def leases(self) -> Leases:
        """Leases for "runs in one process at a time" over this log's storage
        (across processes on PostgreSQL, within this process otherwise)."""
        return leases_for(self.storage)

    # -- metrics ---------------------------------------------------------------

    @property
    def writer_stats(self) -> dict[str, int]:
        """Writer counters: transactions, events written, events queued."""
        return {
            "transactions": self._writer.transactions,
            "events_written": self._writer.events_written,
            "queued_events": self._writer.queued_events,
        }
