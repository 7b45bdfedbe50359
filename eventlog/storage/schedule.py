"""The durable schedule: events waiting for their due time, one table per backend.

A scheduled event is stored whole (id, type, key, headers, data) with its due
time, keyed by ``(stream, id)`` so that scheduling the same id twice keeps the
first and cancelling needs only the id. The dispatcher
(:mod:`eventlog.schedule`) takes due rows in due order with :meth:`ScheduleStore.dispatch`,
appends them with their ids and deletes them, in one transaction of the log's
database (``log.transaction()``): a crash at any moment leaves each row either
scheduled or appended, never both, and a cancel either wins or finds nothing.

Three implementations: :class:`MemorySchedule` here, and the SQLite and
PostgreSQL tables of :mod:`eventlog.storage.schedule_sqlite` and
:mod:`eventlog.storage.schedule_postgres`, which keep their table in the
log's own database as a versioned component (``schedule``).
:func:`~eventlog.storage.components.schedule_store_for` picks the one that goes
with a backend.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

import msgspec

T = TypeVar("T")

__all__ = [
    "ROW_COLUMNS",
    "Begin",
    "Deliver",
    "MemorySchedule",
    "ScheduleFilter",
    "ScheduleRow",
    "ScheduleStore",
    "Txn",
    "schedule_row",
]


class ScheduleRow(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One scheduled event as stored.

    Attributes:
        stream: The stream it will be appended to.
        id: Its event id (unique per stream among scheduled events).
        due_us: When it is due, microseconds since the epoch (UTC).
        seq: Order of scheduling; breaks ties between equal due times.
            Assigned by the store (0 until stored).
        created_us: When it was scheduled.
        type: Event type.
        key: Event key.
        headers: Event headers as JSON bytes (None when empty).
        data: The payload as JSON bytes.
    """

    stream: str
    id: str
    due_us: int
    created_us: int
    type: str
    key: str | None
    headers: bytes | None
    data: bytes
    seq: int = 0


#: The columns the SQL backends select, in :func:`schedule_row`'s order.
ROW_COLUMNS = "stream, id, due_us, created_us, type, key, headers, data, seq"


def schedule_row(r: Any) -> ScheduleRow:
    """A :class:`ScheduleRow` from a database row of :data:`ROW_COLUMNS`."""
    stream, event_id, due_us, created_us, type_, key, headers, data, seq = r
    return ScheduleRow(
        stream=stream,
        id=event_id,
        due_us=due_us,
        created_us=created_us,
        type=type_,
        key=key,
        headers=None if headers is None else bytes(headers),
        data=bytes(data),
        seq=seq,
    )


class ScheduleFilter(msgspec.Struct, frozen=True, kw_only=True):
    """Which scheduled events a listing returns, in (due, seq) order.

    Attributes:
        stream: Only this stream.
        type: Only this event type.
        until_us: Only events due at or before this time.
        after: Resume after this ``(due_us, seq)`` position (a page's cursor).
        limit: At most this many.
    """

    stream: str | None = None
    type: str | None = None
    until_us: int | None = None
    after: tuple[int, int] | None = None
    limit: int = 100

    def matches(self, row: ScheduleRow) -> bool:
        """True if ``row`` passes the filter (the cursor included)."""
        return (
            (self.stream is None or row.stream == self.stream)
            and (self.type is None or row.type == self.type)
            and (self.until_us is None or row.due_us <= self.until_us)
            and (self.after is None or (row.due_us, row.seq) > self.after)
        )


class Txn(Protocol):
    """The open transaction a dispatch runs in (a :class:`~eventlog.transaction.LogTransaction`)."""

    async def execute(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Run one statement in the transaction; its rows."""
        ...

    async def run(self, fn: Callable[[Any], T]) -> T:
        """SQLite: ``fn(connection)`` on the transaction's thread."""
        ...


Begin = Callable[[], contextlib.AbstractAsyncContextManager[Txn]]
"""Opens a transaction of the log's database (``log.transaction``)."""

Deliver = Callable[[list[ScheduleRow], Any], Awaitable[None]]
"""Appends due rows (in the order given) in the transaction it is given."""


class ScheduleStore(Protocol):
    """Where scheduled events wait. Every method is atomic on its own."""

    async def open(self) -> None:
        """Create or migrate the table."""

    async def add(self, rows: Sequence[ScheduleRow]) -> list[tuple[ScheduleRow, bool]]:
        """Store rows in one transaction; per row, the stored row and whether it is new.

        A row whose ``(stream, id)`` is already scheduled is not stored again:
        the existing row is returned with ``False``.
        """
        ...

    async def get(self, stream: str, event_id: str) -> ScheduleRow | None:
        """The scheduled row, or None."""
        ...

    async def cancel(self, stream: str, event_id: str) -> bool:
        """Delete a scheduled row; False if there was none."""
        ...

    async def page(self, where: ScheduleFilter) -> list[ScheduleRow]:
        """Rows matching ``where``, in (due, seq) order."""
        ...

    async def next_due(self) -> int | None:
        """The earliest due time waiting (microseconds), or None if none."""
        ...

    async def dispatch(self, now_us: int, limit: int, begin: Begin, deliver: Deliver) -> int:
        """In one transaction from ``begin``: take up to ``limit`` rows due at or
        before ``now_us``, in (due, seq) order, pass them to ``deliver`` (which
        appends them in that transaction), and delete them.

        All or nothing: if ``deliver`` raises, nothing is appended or deleted.
        Returns how many rows were delivered. On a backend shared by several
        processes, rows another process is delivering are skipped; a cancel
        waits for the transaction, so a cancelled event is never appended.
        """
        ...


class MemorySchedule:
    """A :class:`ScheduleStore` in a dict, for in-memory logs (nothing survives)."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], ScheduleRow] = {}
        self._seq = itertools.count(1)

    async def open(self) -> None:
        """Nothing to create."""

    async def add(self, rows: Sequence[ScheduleRow]) -> list[tuple[ScheduleRow, bool]]:
        out: list[tuple[ScheduleRow, bool]] = []
        for row in rows:
            existing = self._rows.get((row.stream, row.id))
            if existing is not None:
                out.append((existing, False))
                continue
            stored = msgspec.structs.replace(row, seq=next(self._seq))
            self._rows[(row.stream, row.id)] = stored
            out.append((stored, True))
        return out

    async def get(self, stream: str, event_id: str) -> ScheduleRow | None:
        return self._rows.get((stream, event_id))

    async def cancel(self, stream: str, event_id: str) -> bool:
        return self._rows.pop((stream, event_id), None) is not None

    def _ordered(self) -> list[ScheduleRow]:
        return sorted(self._rows.values(), key=lambda r: (r.due_us, r.seq))

    async def page(self, where: ScheduleFilter) -> list[ScheduleRow]:
        return [r for r in self._ordered() if where.matches(r)][: where.limit]

    async def next_due(self) -> int | None:
        return min((r.due_us for r in self._rows.values()), default=None)

    async def dispatch(self, now_us: int, limit: int, begin: Begin, deliver: Deliver) -> int:
        due = [r for r in self._ordered() if r.due_us <= now_us][:limit]
        if not due:
            return 0
        async with begin() as txn:
            await deliver(due, txn)
        for row in due:
            current = self._rows.get((row.stream, row.id))
            if current is not None and current.seq == row.seq:
                del self._rows[(row.stream, row.id)]
        return len(due)
