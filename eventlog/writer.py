"""The group-commit writer: one queue, one writer of every append.

Producers add their appends to the open batch (:class:`~eventlog.batch.WriteBatch`)
of a bounded queue and wait on a future. The writer hands the oldest batch to
the backend as one transaction with one commit, then resolves every waiting
producer. While one transaction is being written the next batch gathers, so
under load one fsync serves hundreds of appends. A batch closes at a count
and a byte bound; when the queue as a whole is full, producers wait for room
(backpressure) instead of growing memory.

A backend that applies its writes one after another in the order they were
made (SQLite's single writer connection) may take more than one transaction
at a time (it declares ``append_slots`` in its
:class:`~eventlog.storage.capabilities.Capabilities`): the next batch then
waits at the backend, ready to start the moment the previous commit ends, and
the event loop settles one batch's producers while the backend writes
another's. That pays for a cohort of producers (at least ``COHORT`` events),
which would leave the backend idle while the loop settles and re-queues it;
a smaller batch stays open until the backend is free instead, gathering what
arrives meanwhile: handed over early, it waits out a whole commit at the
backend while later arrivals open a batch of their own (HTTP appends on 64
connections: 22 -> 31 events per commit, fewer commits for the same
producers). When
a large batch finds every slot free (the first burst, or after a pause), it
is split in two so that the two halves take turns from then on. Only while
commits are quick, though: when a transaction takes longer than
``SPLIT_BELOW`` (a moving average), the disk's flush or a busy CPU is the
bound, not the loop's work, and the writer hands over one transaction at a
time, so the next batch gathers everything queued meanwhile: one commit per
flush for all producers instead of two half-size ones (measured with a CPU
burner beside the log and a 5-8 ms flush: 256 producers 1.43x faster in one
cohort than in two).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

from eventlog.batch import WriteBatch
from eventlog.errors import EventLogError, LogClosed, StorageError
from eventlog.model import utc_now
from eventlog.storage.base import Appended, AppendRequest, PendingEvent, Storage
from eventlog.storage.derived import append_generated

__all__ = ["GroupCommitWriter"]

log = logging.getLogger("eventlog.writer")

#: A batch of at least this many events that finds every slot free is split in two.
SPLIT_AT = 128
#: ... while transactions take less than this many seconds (moving average).
SPLIT_BELOW = 0.002
#: A batch goes to a second slot, beside a transaction in hand, only with this many events.
COHORT = SPLIT_AT // 2


def _unstarted() -> asyncio.Future[Any]:
    raise LogClosed("the writer is not started")


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
        self._slots = max(1, storage.capabilities.append_slots)
        self._on_commit = on_commit
        self._max_batch_events = max_batch_events
        self._max_batch_bytes = max_batch_bytes
        self._max_queued_events = max_queued_events
        self._max_queued_bytes = max_queued_bytes
        self._clock = clock
        self._queue: deque[WriteBatch] = deque()
        self._writing: dict[asyncio.Task[None], WriteBatch] = {}
        #: Moving average of the seconds a transaction takes when it runs alone.
        self.commit_seconds = 0.0
        self._last_end = 0.0
        self._queued_events = 0
        self._queued_bytes = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._new_future: Callable[[], asyncio.Future[Any]] = _unstarted
        self._kick_pending = False
        self._room = asyncio.Event()
        self._room.set()
        #: True while the queue is full (producers should :meth:`wait_for_room`);
        #: a plain attribute, read on every append.
        self.full = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        self._stopped: StorageError | None = None
        #: Transactions and events written, for metrics.
        self.transactions = 0
        self.events_written = 0

    def start(self) -> None:
        """Start writing on the running loop."""
        self._loop = loop = asyncio.get_running_loop()
        self._new_future = functools.partial(asyncio.Future, loop=loop)

    @property
    def queued_events(self) -> int:
        """Events waiting for the writer (the batches being written included)."""
        return self._queued_events

    def _full(self) -> bool:
        return (
            self._queued_events >= self._max_queued_events
            or self._queued_bytes >= self._max_queued_bytes
        )

    async def wait_for_room(self) -> None:
        """Wait until the queue has room (backpressure)."""
        while not self._room.is_set():
            await self._room.wait()

    def enqueue(self, request: AppendRequest, nbytes: int) -> asyncio.Future[Appended]:
        """Queue a request now, room or not; the future resolves once it is durable.

        Producers that honour backpressure check :attr:`full` first and
        :meth:`wait_for_room` when it is True.
        """
        future = self._new_future()
        self._open_batch(len(request.events), nbytes).add(request, future, nbytes, False)
        self._queued(len(request.events), nbytes)
        return future

    def enqueue_one(self, stream: str, event: PendingEvent) -> asyncio.Future[int]:
        """Queue one event; the future resolves to its offset once it is durable.

        Like :meth:`enqueue` (room or not), for :meth:`EventLog.append` and
        ``append_event``, whose producers want the offset only.
        """
        future = self._new_future()
        nbytes = len(event.data)
        self._open_batch(1, nbytes).add_one(stream, event, future)
        self._queued(1, nbytes)
        return future

    def _open_batch(self, events: int, nbytes: int) -> WriteBatch:
        """The batch a request of this size joins: the last one queued, while it has room."""
        if self._closing:
            raise self._stopped or LogClosed("the log is closed")
        # The last batch is open while it is queued; the writer takes from the front.
        queue = self._queue
        if queue:
            batch = queue[-1]
            if (
                batch.events + events <= self._max_batch_events
                and batch.nbytes + nbytes <= self._max_batch_bytes
            ):
                return batch
        batch = WriteBatch()
        queue.append(batch)
        return batch

    def _queued(self, events: int, nbytes: int) -> None:
        self._queued_events += events
        self._queued_bytes += nbytes
        if (
            self._queued_events >= self._max_queued_events
            or self._queued_bytes >= self._max_queued_bytes
        ):
            self.full = True
            self._room.clear()
        if not self._kick_pending and len(self._writing) < self._open_slots():
            # Dispatch once the producers already woken have queued theirs too.
            self._kick_pending = True
            self._idle.clear()
            assert self._loop is not None
            self._loop.call_soon(self._kick)

    def _open_slots(self) -> int:
        """Transactions the backend may hold at once now: one while commits are slow."""
        return self._slots if self.commit_seconds < SPLIT_BELOW else 1

    def _kick(self) -> None:
        self._kick_pending = False
        self._dispatch()

    def _dispatch(self) -> None:
        queue = self._queue
        while queue and len(self._writing) < self._open_slots() and self._stopped is None:
            if self._writing and queue[0].events < COHORT:
                break  # gathers on until the backend is free (see the module's docstring)
            batch = queue.popleft()
            if (
                not self._writing
                and self._slots > 1
                and not queue
                and batch.generated
                and batch.events >= SPLIT_AT
                and len(batch.waiters) > 1  # a request is never split: it is atomic
                and self.commit_seconds < SPLIT_BELOW
            ):
                batch, second = batch.split()
                queue.append(second)
            assert self._loop is not None
            task = self._loop.create_task(self._write(batch))
            self._writing[task] = batch
            task.add_done_callback(self._written)
        if not queue and not self._writing and not self._kick_pending:
            self._idle.set()

    async def _write(self, batch: WriteBatch) -> None:
        storage = self._storage
        started = time.perf_counter()
        try:
            if batch.generated:
                firsts = await append_generated(storage, batch.streams, self._clock())
                outcomes = None
            else:
                outcomes = await storage.append(batch.requests, self._clock())
        except EventLogError as exc:
            log.error("append transaction of %d events failed: %s", batch.events, exc)
            batch.fail(exc)
            return
        except Exception as exc:  # a backend bug: fail the producers, keep the writer alive
            log.exception("append transaction failed unexpectedly")
            batch.fail(StorageError(f"append failed: {exc!r}"))
            return
        self.transactions += 1
        # The backend runs its transactions one after another: one queued behind
        # another began when the other ended.
        ended = time.perf_counter()
        took = ended - max(started, self._last_end)
        self._last_end = ended
        self.commit_seconds += (took - self.commit_seconds) / 4
        # Committed. With one transaction at a time (slow commits, a one-slot
        # backend, or a small next batch that waited for this one to end), hand
        # the next batch over before settling this one's producers:
        # settling is the loop's work, and under load the next commit waited 2-3
        # turns of a busy loop for it. With two slots the other transaction
        # already overlaps, and an early hand-over only makes the next batch
        # smaller (256 producers on SQLite: 94k -> 87k events/s, 132 -> 98 events
        # per commit).
        task = asyncio.current_task()
        if (
            (self._open_slots() == 1 or self._next_gathers())
            and task is not None
            and self._writing.pop(task, None) is not None
        ):
            self._release(batch)
        try:
            if outcomes is None:
                heads = batch.settle_generated(firsts)
                self.events_written += batch.events
            else:
                heads, written = batch.settle(outcomes)
                self.events_written += written
            for stream, head in heads.items():
                self._on_commit(stream, head)
        except BaseException as exc:  # a bug: no producer of this batch left waiting
            batch.fail(StorageError(f"the log's writer stopped: {exc!r}"))
            raise

    def _next_gathers(self) -> bool:
        """Whether the next batch waits for this transaction's end (it is alone in
        hand and the next one is queued, too small for a second slot): then it is
        handed over before this one's producers are settled, as with one slot."""
        queue = self._queue
        return len(self._writing) == 1 and bool(queue) and queue[0].events < COHORT

    def _release(self, batch: WriteBatch) -> None:
        """A transaction ended well: free its slot and room, dispatch what is queued."""
        self._queued_events -= batch.events
        self._queued_bytes -= batch.nbytes
        if self.full and not self._full():
            self.full = False
            self._room.set()
        self._dispatch()

    def _written(self, task: asyncio.Task[None]) -> None:
        batch = self._writing.pop(task, None)
        if not task.cancelled() and task.exception() is None:
            if batch is not None:  # else released by _write once it committed
                self._release(batch)
            return
        if batch is None:  # failed while settling, its slot already released
            batch = WriteBatch()
        else:
            self._queued_events -= batch.events
            self._queued_bytes -= batch.nbytes
        # A write ends with an error only if a bug escaped _write (or the loop
        # cancelled it): stop, and leave no producer waiting forever.
        reason = "it was cancelled" if task.cancelled() else f"{task.exception()!r}"
        if not task.cancelled():
            log.error("the log's writer stopped", exc_info=task.exception())
        self._stop(StorageError(f"the log's writer stopped: {reason}"), batch)

    def _stop(self, error: StorageError, batch: WriteBatch) -> None:
        self._stopped = error
        self._closing = True
        batch.fail(error)
        for other in self._writing.values():
            other.fail(error)
        while self._queue:
            dropped = self._queue.popleft()
            dropped.fail(error)
            self._queued_events -= dropped.events
            self._queued_bytes -= dropped.nbytes
        self.full = False
        self._room.set()
        if not self._writing:
            self._idle.set()

    async def close(self) -> None:
        """Stop accepting, write everything already queued, then return."""
        self._closing = True
        self.full = False
        self._room.set()
        if self._loop is not None:
            self._dispatch()
            await self._idle.wait()
