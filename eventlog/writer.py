"""The group-commit writer: one task owns every append.

Producers put append requests on a bounded queue and wait on a future. The
writer takes everything queued (bounded by count and bytes), hands it to the
backend as one transaction with one commit, then resolves every waiting
producer. While one transaction is being written the next one gathers, so
under load one fsync serves hundreds of appends. When the queue is full,
producers wait for room (backpressure) instead of growing memory.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import Callable
from datetime import datetime

from eventlog.errors import EventLogError, LogClosed, StorageError
from eventlog.model import utc_now
from eventlog.storage.base import Appended, AppendRequest, Storage

__all__ = ["GroupCommitWriter", "take_batch"]

log = logging.getLogger("eventlog.writer")


def _unstarted() -> asyncio.Future[Appended]:
    raise LogClosed("the writer is not started")


_Item = tuple[AppendRequest, "asyncio.Future[Appended]", int]
"""A queued append: the request, its producer's future, its payload bytes.

A plain tuple: one is made per append, and a class's ``__init__`` call costs
several times more on this hot path."""


def take_batch(queue: deque[_Item], max_events: int, max_bytes: int) -> list[_Item]:
    """Pop the longest prefix of ``queue`` within the limits (always at least one item)."""
    batch: list[_Item] = []
    events = 0
    nbytes = 0
    while queue:
        request, _, size = queue[0]
        n = len(request.events)
        if batch and (events + n > max_events or nbytes + size > max_bytes):
            break
        batch.append(queue.popleft())
        events += n
        nbytes += size
    return batch


class GroupCommitWriter:
    """Batches concurrent appends into single transactions.

    Args:
        storage: The backend.
        on_commit: Called with ``(stream, next_offset)`` for each stream a
            transaction advanced, after it is durable.
        max_batch_events: Most events in one transaction.
        max_batch_bytes: Most payload bytes in one transaction.
        max_queued_events: Queue bound; producers wait beyond it.
        max_queued_bytes: Queue bound in payload bytes.
        clock: Returns the append time (UTC); injectable for tests.
    """

    def __init__(
        self,
        storage: Storage,
        on_commit: Callable[[str, int], None],
        *,
        max_batch_events: int = 5_000,
        max_batch_bytes: int = 16 << 20,
        max_queued_events: int = 50_000,
        max_queued_bytes: int = 64 << 20,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._storage = storage
        self._on_commit = on_commit
        self._max_batch_events = max_batch_events
        self._max_batch_bytes = max_batch_bytes
        self._max_queued_events = max_queued_events
        self._max_queued_bytes = max_queued_bytes
        self._clock = clock
        self._queue: deque[_Item] = deque()
        self._queued_events = 0
        self._queued_bytes = 0
        self._work = asyncio.Event()
        self._writer_waiting = False
        self._new_future: Callable[[], asyncio.Future[Appended]] = _unstarted
        self._room = asyncio.Event()
        self._room.set()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        #: Transactions and events written, for metrics.
        self.transactions = 0
        self.events_written = 0

    def start(self) -> None:
        """Start the writer task on the running loop."""
        loop = asyncio.get_running_loop()
        self._new_future = functools.partial(asyncio.Future, loop=loop)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="eventlog-writer")

    @property
    def queued_events(self) -> int:
        """Events waiting for the writer."""
        return self._queued_events

    def _full(self) -> bool:
        return (
            self._queued_events >= self._max_queued_events
            or self._queued_bytes >= self._max_queued_bytes
        )

    @property
    def has_room(self) -> bool:
        """False while the queue is full: producers should :meth:`wait_for_room`."""
        return self._room.is_set()

    async def wait_for_room(self) -> None:
        """Wait until the queue has room (backpressure)."""
        while not self._room.is_set():
            await self._room.wait()

    def enqueue(self, request: AppendRequest, nbytes: int) -> asyncio.Future[Appended]:
        """Queue a request now, room or not; the future resolves once it is durable.

        Producers that honour backpressure check :attr:`has_room` first and
        :meth:`wait_for_room` when it is False; ``append_event`` accepts the
        overshoot instead of waiting.
        """
        if self._closing:
            raise LogClosed("the log is closed")
        future = self._new_future()
        self._queue.append((request, future, nbytes))
        self._queued_events += len(request.events)
        self._queued_bytes += nbytes
        if (
            self._queued_events >= self._max_queued_events
            or self._queued_bytes >= self._max_queued_bytes
        ):
            self._room.clear()
        if self._writer_waiting:
            self._work.set()
        return future

    async def _run(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._work.clear()
                self._writer_waiting = True
                await self._work.wait()
                self._writer_waiting = False
                continue
            # Between transactions the counters hold exactly what is queued.
            queue = self._queue
            if (
                self._queued_events <= self._max_batch_events
                and self._queued_bytes <= self._max_batch_bytes
            ):
                # Everything queued fits in one transaction (the usual case):
                # take it whole instead of item by item.
                batch = list(queue)
                queue.clear()
                events, nbytes = self._queued_events, self._queued_bytes
            else:
                batch = take_batch(queue, self._max_batch_events, self._max_batch_bytes)
                events = sum([len(request.events) for request, _, _ in batch])
                nbytes = sum([size for _, _, size in batch])
            await self._write(batch)
            self._queued_events -= events
            self._queued_bytes -= nbytes
            if not self._full():
                self._room.set()

    async def _write(self, batch: list[_Item]) -> None:
        requests = [request for request, _, _ in batch]
        try:
            outcomes = await self._storage.append(requests, self._clock())
        except EventLogError as exc:
            log.error("append transaction of %d requests failed: %s", len(batch), exc)
            self._fail(batch, exc)
            return
        except Exception as exc:  # a backend bug: fail the producers, keep the writer alive
            log.exception("append transaction failed unexpectedly")
            self._fail(batch, StorageError(f"append failed: {exc!r}"))
            return
        self.transactions += 1
        heads: dict[str, int] = {}
        written = 0
        for (request, future, _), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, Appended):
                if outcome.written:
                    written += outcome.written
                    heads[request.stream] = outcome.next_offset
                if not future.done():
                    future.set_result(outcome)
            elif not future.done():
                future.set_exception(outcome)
        self.events_written += written
        for stream, head in heads.items():
            self._on_commit(stream, head)

    @staticmethod
    def _fail(batch: list[_Item], error: Exception) -> None:
        for _, future, _ in batch:
            if not future.done():
                future.set_exception(error)

    async def close(self) -> None:
        """Stop accepting, write everything already queued, stop the task."""
        self._closing = True
        self._room.set()
        self._work.set()
        if self._task is not None:
            await self._task
            self._task = None
