"""Scheduled appends: events stored now, appended to their stream at their due time.

::

    await log.append("reminders", {"call": 42}, type="reminder.due", at=timedelta(hours=24))
    page = await log.schedules.page(stream="reminders")
    await log.schedules.cancel("reminders", page.schedules[0].id)

The :class:`Scheduler` validates an event as an append would, gives it an id
(the producer's, or a new UUIDv7), and stores it in the backend's schedule
(:mod:`eventlog.storage.schedule`) before returning. One task per log then
appends due events in due order, with their ids, and deletes them from the
schedule. Guarantees:

* **Never early.** An event is appended when the log's clock has reached its
  due time, so its ``time`` is at or after it.
* **Exactly once.** Due events are appended and removed from the schedule in
  one transaction of the log's database (``log.transaction()``): a crash
  leaves them scheduled, never both. On PostgreSQL, processes sharing the log
  lock the rows they take (``SKIP LOCKED``). A cancel either comes first or
  finds nothing.
* **Survives restarts.** What fell due while the log was closed is appended
  when it starts, oldest first.
* **Precision.** The task sleeps until the earliest due time it knows, so an
  event is typically appended within milliseconds of its time (one
  transaction's commit). Events scheduled by another process on the same database
  are found within ``schedule_poll`` seconds.
* **Order.** Per stream, events are appended in due order (ties: in the order
  they were scheduled), as long as one process dispatches them.

A due time in the past appends at once; one beyond ``schedule_horizon``
seconds is refused (:class:`~eventlog.errors.InvalidSchedule`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import msgspec

from eventlog.errors import (
    EventLogError,
    InvalidInput,
    InvalidSchedule,
    LogClosed,
    ScheduleNotFound,
)
from eventlog.model import NewEvent, utc_now
from eventlog.storage.base import PendingEvent
from eventlog.storage.rows import from_us, to_us
from eventlog.storage.schedule import Begin, ScheduleFilter, ScheduleRow, ScheduleStore

if TYPE_CHECKING:
    from eventlog.transaction import LogTransaction

__all__ = [
    "DISPATCH_BATCH",
    "SchedulePage",
    "Scheduled",
    "ScheduledEvent",
    "Scheduler",
    "aware_time",
    "check_at",
    "due_time",
]

logger = logging.getLogger("eventlog.schedule")

#: Most due events taken in one dispatch transaction.
DISPATCH_BATCH = 1000
#: How long to wait when due rows are held by another process.
_HELD_ELSEWHERE = 0.05

_encode = msgspec.json.encode
_decode_headers = msgspec.json.Decoder(dict[str, str]).decode


class Scheduled(msgspec.Struct, frozen=True, kw_only=True):
    """What scheduling an event answers.

    Attributes:
        stream: The stream it will be appended to.
        id: Its event id (cancel it with this).
        deliver_at: When it is due.
        new: False when an event with this id was already scheduled (that
            one is kept, and its due time is returned).
    """

    stream: str
    id: str
    deliver_at: datetime
    new: bool


class ScheduledEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event waiting in the schedule."""

    stream: str
    id: str
    type: str
    key: str | None
    headers: dict[str, str]
    data: msgspec.Raw
    deliver_at: datetime
    scheduled_at: datetime


class SchedulePage(msgspec.Struct, frozen=True, kw_only=True):
    """A page of scheduled events; pass ``next`` as ``after`` for the next page."""

    schedules: list[ScheduledEvent]
    next: str | None


def check_at(at: object) -> None:
    """Refuse what no clock makes a due time (pure; the remote client checks so too).

    Raises:
        InvalidSchedule: Not a datetime or a timedelta, or a naive datetime.
    """
    if isinstance(at, datetime):
        if at.tzinfo is None:
            raise InvalidSchedule("a due time must be timezone-aware (e.g. 2026-12-06T14:00:00Z)")
    elif not isinstance(at, timedelta):
        raise InvalidSchedule(f"a due time is a datetime or a timedelta, not {type(at).__name__}")


def due_time(at: datetime | timedelta, now: datetime, horizon: float) -> datetime:
    """When an event scheduled ``at`` is due (pure).

    A ``timedelta`` counts from ``now``. A time in the past means now.

    Raises:
        InvalidSchedule: A naive datetime, or a time more than ``horizon``
            seconds after ``now``.
    """
    check_at(at)
    due = now + at if isinstance(at, timedelta) else at
    if due <= now:
        return now
    if (due - now).total_seconds() > horizon:
        span = timedelta(seconds=horizon)
        days = f"{span.days} day" + ("" if span.days == 1 else "s")
        shown = days if span == timedelta(days=span.days) else str(span)
        raise InvalidSchedule(
            f"due time {due.isoformat()} is further away than the schedule horizon "
            f"(schedule_horizon: {shown})"
        )
    return due


def aware_time(text: str) -> datetime | None:
    """``text`` as an RFC 3339 time with an offset (``2026-12-06T14:00:00Z``);
    None if it is not one (malformed, or naive)."""
    try:
        value = msgspec.convert(text, datetime)
    except msgspec.ValidationError:
        return None
    return value if value.tzinfo is not None else None


def encode_cursor(row: ScheduleRow) -> str:
    """The opaque cursor that resumes a listing after ``row``."""
    return f"{row.due_us}.{row.seq}"


def decode_cursor(text: str) -> tuple[int, int]:
    """The ``(due_us, seq)`` of a cursor.

    Raises:
        InvalidInput: Not a cursor this log made.
    """
    due, _, seq = text.partition(".")
    if not (due.isdigit() and seq.isdigit() and len(due) < 20 and len(seq) < 20):
        raise InvalidInput(f"not a schedule cursor: {text[:40]!r}")
    if int(due) >= 2**63 or int(seq) >= 2**63:  # past a 64-bit column: none we made
        raise InvalidInput(f"not a schedule cursor: {text[:40]!r}")
    return int(due), int(seq)


def _public(row: ScheduleRow) -> ScheduledEvent:
    return ScheduledEvent(
        stream=row.stream,
        id=row.id,
        type=row.type,
        key=row.key,
        headers=_decode_headers(row.headers) if row.headers else {},
        data=msgspec.Raw(row.data),
        deliver_at=from_us(row.due_us),
        scheduled_at=from_us(row.created_us),
    )


def _new_event(row: ScheduleRow) -> NewEvent:
    headers = _decode_headers(row.headers) if row.headers else {}
    return NewEvent(
        type=row.type, data=msgspec.Raw(row.data), key=row.key, id=row.id, headers=headers
    )


def _dropped(stream: str, event: NewEvent, exc: InvalidInput) -> None:
    logger.warning(
        "scheduled event %r of %r dropped, the log refuses it: %s", event.id, stream, exc
    )


class Scheduler:
    """The log's schedule: stores scheduled events and appends them when due.

    Args:
        store: The backend's schedule.
        begin: Opens a transaction of the log's database (``log.transaction``):
            due events are appended and removed from the schedule in one.
        horizon: Farthest due time accepted, in seconds from now.
        poll: Seconds between looks for events another process scheduled.
        clock: The current UTC time (injectable for tests).
    """

    def __init__(
        self,
        store: ScheduleStore,
        begin: Begin,
        *,
        horizon: float,
        poll: float,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._store = store
        self._begin = begin
        self._horizon = horizon
        self._poll = poll
        self._clock = clock
        self._wake = asyncio.Event()
        self._sleeping_until = 0
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        #: Events appended by this process's dispatcher (for metrics and tests).
        self.dispatched = 0

    async def start(self) -> None:
        """Create the schedule's table and start the dispatch task."""
        await self._store.open()
        self._task = asyncio.create_task(self._run(), name="eventlog-scheduler")

    async def close(self, timeout: float = 5.0) -> None:
        """Stop the dispatch task: a dispatch in hand finishes (within ``timeout``
        seconds, else it is rolled back); what is left stays scheduled."""
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- producers -------------------------------------------------------------

    async def schedule(
        self, stream: str, events: Sequence[PendingEvent], at: datetime | timedelta
    ) -> list[Scheduled]:
        """Store ``events`` (validated, ids given) to be appended to ``stream`` at ``at``."""
        now = self._clock()
        due_us = to_us(due_time(at, now, self._horizon))
        created_us = to_us(now)
        rows = [
            ScheduleRow(
                stream=stream,
                id=e.id,
                due_us=due_us,
                created_us=created_us,
                type=e.type,
                key=e.key,
                headers=_encode(e.headers) if e.headers else None,
                data=e.data,
            )
            for e in events
        ]
        stored = await self._store.add(rows)
        if self._sleeping_until == 0 or due_us < self._sleeping_until:
            self._wake.set()  # awake: look again before sleeping; asleep: wake earlier
        return [
            Scheduled(stream=r.stream, id=r.id, deliver_at=from_us(r.due_us), new=new)
            for r, new in stored
        ]

    # -- management ------------------------------------------------------------

    async def get(self, stream: str, event_id: str) -> ScheduledEvent:
        """One scheduled event.

        Raises:
            ScheduleNotFound: Nothing with that id waits for ``stream``.
        """
        row = await self._store.get(stream, event_id)
        if row is None:
            raise ScheduleNotFound(stream, event_id)
        return _public(row)

    async def cancel(self, stream: str, event_id: str) -> None:
        """Remove a scheduled event before it is appended.

        Raises:
            ScheduleNotFound: Nothing with that id waits for ``stream`` (never
                scheduled, cancelled, or already appended).
        """
        if not await self._store.cancel(stream, event_id):
            raise ScheduleNotFound(stream, event_id)

    async def page(
        self,
        *,
        stream: str | None = None,
        type: str | None = None,
        until: datetime | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> SchedulePage:
        """Scheduled events in due order, a page at a time.

        Args:
            stream: Only this stream's.
            type: Only events of this type.
            until: Only events due at or before this time.
            after: The ``next`` cursor of the previous page.
            limit: Page size, 1 to 1000.
        """
        if not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidInput("limit must be an integer from 1 to 1000")
        if until is not None and until.tzinfo is None:
            raise InvalidSchedule("until must be timezone-aware")
        where = ScheduleFilter(
            stream=stream,
            type=type,
            until_us=None if until is None else to_us(until),
            after=None if after is None else decode_cursor(after),
            limit=limit,
        )
        rows = await self._store.page(where)
        cursor = encode_cursor(rows[-1]) if len(rows) == limit else None
        return SchedulePage(schedules=[_public(r) for r in rows], next=cursor)

    # -- the dispatch task -----------------------------------------------------

    async def dispatch_due(self) -> int:
        """Append what is due now (one batch at most); how many were taken."""
        return await self._store.dispatch(
            to_us(self._clock()), DISPATCH_BATCH, self._begin, self._deliver
        )

    async def _deliver(self, rows: list[ScheduleRow], txn: LogTransaction) -> None:
        by_stream: dict[str, list[NewEvent]] = {}
        for row in rows:
            by_stream.setdefault(row.stream, []).append(_new_event(row))
        for stream, events in by_stream.items():
            try:
                await txn.append_batch(stream, events)
                continue
            except InvalidInput as exc:  # refused before anything was written
                if len(events) == 1:
                    _dropped(stream, events[0], exc)
                    continue
            # One event the log no longer accepts must not hold back the others.
            for event in events:
                try:
                    await txn.append_batch(stream, [event])
                except InvalidInput as exc:
                    _dropped(stream, event, exc)
        self.dispatched += len(rows)

    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            self._wake.clear()
            now_us = to_us(self._clock())
            try:
                taken = await self._store.dispatch(
                    now_us, DISPATCH_BATCH, self._begin, self._deliver
                )
                if taken >= DISPATCH_BATCH:
                    continue
                following = await self._store.next_due()
                failures = 0
            except LogClosed:
                return
            except EventLogError as exc:
                failures += 1
                logger.warning("scheduled appends failed (attempt %d): %s", failures, exc)
                await self._sleep(min(30.0, 0.25 * 2 ** min(failures, 8)))
                continue
            if following is None:
                wait = self._poll
            elif following <= now_us:
                # Due at our look but not taken: another process holds it.
                wait = 0.0 if taken else min(self._poll, _HELD_ELSEWHERE)
            else:
                wait = min(self._poll, (following - to_us(self._clock())) / 1e6)
            if wait > 0:
                await self._sleep(wait)

    async def _sleep(self, seconds: float) -> None:
        self._sleeping_until = to_us(self._clock()) + int(seconds * 1e6)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self._wake.wait()
        finally:
            self._sleeping_until = 0
