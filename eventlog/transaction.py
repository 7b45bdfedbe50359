"""``log.transaction()``: your own writes and the log's appends in one transaction.

The outbox pattern: an application that stores its own rows and wants the
event appended *if and only if* those rows commit.

* **PostgreSQL**: pass your asyncpg connection, inside your transaction, to
  ``log.append(..., connection=conn)`` (or ``append_batch``); or let the log
  open one: ``async with log.transaction() as txn`` gives ``txn.connection``.
  The event's offset is assigned under the stream's row lock, so offsets stay
  gapless; if your transaction rolls back, so do the event and the head. The
  head moves and is announced (``NOTIFY``) when your transaction commits, not
  before, so no reader sees an offset that might vanish. The cost: until then
  the stream's row stays locked and every other append to that stream, from
  any process, waits (in this process that is the log's whole writer, which
  appends one transaction at a time). Keep these transactions short.
* **SQLite**: ``async with log.transaction() as txn`` opens a connection of
  its own on the log's file with ``BEGIN IMMEDIATE``; ``txn.execute(sql,
  *params)`` and ``txn.run(fn)`` write your tables in the log's database file,
  ``txn.append(...)`` appends. The cost: SQLite has one write lock, so while
  the block runs every other append waits (for at most its busy timeout, 10 s;
  the block's own ``timeout``, 5 s by default, rolls it back first).
* **Memory**: appends apply at once and nothing rolls back.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from types import EllipsisType, TracebackType
from typing import Any, Self, TypeVar

from eventlog.config import LogConfig
from eventlog.encoding import BatchItem, pending_event, pending_events
from eventlog.errors import CheckpointMoved, ExpectedOffsetMismatch, InvalidInput, LogClosed
from eventlog.model import utc_now, validate_stream_name
from eventlog.storage.base import AppendOutcome, AppendRequest
from eventlog.storage.held import HeldSource, HeldTransaction

__all__ = ["LogTransaction", "outcome_offsets"]

T = TypeVar("T")


def outcome_offsets(outcomes: Sequence[AppendOutcome]) -> list[int]:
    """The offsets of appended requests, in order; raises a mismatch outcome."""
    offsets: list[int] = []
    for outcome in outcomes:
        if isinstance(outcome, ExpectedOffsetMismatch):
            raise outcome
        offsets += outcome.offsets
    return offsets


class LogTransaction:
    """One open transaction of the log's database (use ``async with log.transaction()``)."""

    def __init__(
        self,
        held: HeldSource,
        config: LogConfig,
        advance: Callable[[str, int], None],
        timeout: float | None,
    ) -> None:
        self._held = held
        self._config = config
        self._advance = advance
        self._timeout = timeout
        self._stack = contextlib.AsyncExitStack()
        self._txn: HeldTransaction | None = None
        self._heads: dict[str, int] = {}

    async def __aenter__(self) -> Self:
        if self._txn is not None:
            raise InvalidInput("a log transaction cannot be entered twice")
        async with contextlib.AsyncExitStack() as stack:
            self._txn = await stack.enter_async_context(self._held.transaction())
            if self._timeout is not None:
                await stack.enter_async_context(asyncio.timeout(self._timeout))
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._txn = self._stack, None
        await stack.__aexit__(exc_type, exc, tb)
        if exc_type is None:  # committed: wake readers of what it appended
            for stream, head in self._heads.items():
                self._advance(stream, head)

    def _open(self) -> HeldTransaction:
        if self._txn is None:
            raise LogClosed("use the transaction inside its async with block")
        return self._txn

    @property
    def connection(self) -> Any:
        """PostgreSQL: the asyncpg connection, inside the transaction (None on SQLite)."""
        return self._open().connection

    async def execute(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Run one statement of yours in the transaction; the rows it returns.

        Placeholders are the backend's: ``?`` on SQLite, ``$1`` on PostgreSQL.
        """
        return await self._open().execute(sql, *params)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """SQLite: run ``fn(connection)`` on the transaction's thread (many
        statements in one hop). ``fn`` must not commit."""
        return await self._open().run(fn)

    async def set_checkpoint(
        self, name: str, value: bytes, *, expected: bytes | EllipsisType | None = ...
    ) -> None:
        """Store a producer's checkpoint (``log.checkpoint(name)`` reads it) in this
        transaction: committed with its appends, or not at all. File sources keep
        their read positions this way.

        Args:
            expected: If given, the checkpoint must still be this (None: never
                set); it is locked until the transaction ends, so two producers
                that read from the same place cannot both commit.

        Raises:
            CheckpointMoved: ``expected`` was given and the checkpoint is not it.
        """
        txn = self._open()
        if expected is not ...:
            current = await txn.read_checkpoint(name)
            if current != expected:
                raise CheckpointMoved(name)
        await txn.set_checkpoint(name, value)

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
    ) -> int:
        """Append one event in the transaction; its offset (if the transaction commits)."""
        event = pending_event(
            data, type=type, key=key, id=id, headers=headers, max_bytes=self._config.max_event_bytes
        )
        request = AppendRequest(
            stream=validate_stream_name(stream), events=[event], expected_offset=expected_offset
        )
        return (await self._append([request]))[0]

    async def append_batch(
        self, stream: str, events: Sequence[BatchItem], *, expected_offset: int | None = None
    ) -> list[int]:
        """Append events in the transaction, consecutive offsets; their offsets."""
        if not events:
            raise InvalidInput("a batch needs at least one event")
        pending = pending_events(events, self._config.max_event_bytes)
        request = AppendRequest(
            stream=validate_stream_name(stream), events=pending, expected_offset=expected_offset
        )
        return await self._append([request])

    async def _append(self, requests: list[AppendRequest]) -> list[int]:
        outcomes = await self._open().append(requests, utc_now())
        for request, outcome in zip(requests, outcomes, strict=True):
            if not isinstance(outcome, ExpectedOffsetMismatch):
                self._heads[request.stream] = outcome.next_offset
        return outcome_offsets(outcomes)
