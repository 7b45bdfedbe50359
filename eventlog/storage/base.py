"""The ``Storage`` protocol every backend implements, and the write types it takes.

A backend is a narrow thing: it stores events, stream metadata and consumer
offsets, and applies group-committed writes atomically. Everything that is
policy (batching, waiting, retention decisions, consumer positions) lives in
:mod:`eventlog.log` and runs unchanged over every backend. The one contract
suite in ``tests/eventlog/storage/`` proves each backend equivalent.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

import msgspec

from eventlog.errors import ExpectedOffsetMismatch
from eventlog.model import ConsumerInfo, Event, Retention, StreamInfo
from eventlog.storage.capabilities import Capabilities, HeadListener

__all__ = [
    "AppendOutcome",
    "AppendRequest",
    "Appended",
    "Capabilities",
    "HeadListener",
    "PendingEvent",
    "Storage",
]


class PendingEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """An event ready for storage: validated and encoded, not yet given an offset.

    Attributes:
        id: The event id (producer-given, or a generated UUIDv7).
        id_given: True when the producer chose the id, so it must be checked
            for duplicates; generated ids are unique by construction.
        type: Event type.
        key: Optional key.
        headers: Metadata headers.
        data: The payload as JSON bytes.
    """

    id: str
    id_given: bool
    type: str
    key: str | None
    headers: dict[str, str]
    data: bytes


class AppendRequest(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One producer's atomic append: one or more events to one stream."""

    stream: str
    events: list[PendingEvent]
    expected_offset: int | None = None


class Appended(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The result of an append request that succeeded.

    Attributes:
        offsets: The offset of each event of the request, in order. An event
            whose id already existed gets its original offset.
        written: How many events were newly written (0 for a pure retry).
        next_offset: The stream's next offset after this request.
    """

    offsets: list[int]
    written: int
    next_offset: int


AppendOutcome = Appended | ExpectedOffsetMismatch
"""Per request: what happened. Mismatches are returned, not raised, so that one
producer's conflict never fails the others that share its transaction."""


@runtime_checkable
class Storage(Protocol):
    """What a backend provides. All methods translate driver errors to
    :class:`eventlog.errors.StorageError` subclasses.

    Anything optional (cross-process wake-ups and leases, several append
    transactions at once, tables of other components in the same database,
    faster ways to do what :mod:`eventlog.storage.derived` derives from these
    methods) the backend declares in :attr:`capabilities`; nothing asks a
    backend for its type.
    """

    #: What this backend offers beyond these methods.
    capabilities: Capabilities

    async def open(self) -> None:
        """Connect, check and migrate the schema. Never damages a foreign file."""

    async def close(self) -> None:
        """Release connections. Idempotent."""

    async def append(self, requests: Sequence[AppendRequest], now: datetime) -> list[AppendOutcome]:
        """Apply the requests in one transaction, durably, in order.

        Offsets are consecutive per stream. Event time is ``now``, raised to
        the stream's last event time if the clock went backwards, so time is
        monotonic within a stream. Returns one outcome per request.
        """
        ...

    async def read(self, stream: str, start: int, limit: int) -> list[Event]:
        """Up to ``limit`` events with offset >= ``start``, in offset order."""
        ...

    async def stream_info(self, stream: str) -> StreamInfo | None:
        """The stream's head, low watermark, count, bytes; None if it does not exist."""
        ...

    async def streams(self) -> list[StreamInfo]:
        """Every stream, ordered by name."""
        ...

    async def set_retention(self, stream: str, retention: Retention) -> None:
        """Store the stream's retention policy, creating the stream if needed."""

    async def trim(self, stream: str, before: int) -> int:
        """Delete events with offset < ``before``; returns how many were deleted."""
        ...

    async def delete_stream(self, stream: str) -> bool:
        """Delete a stream, its events and its consumers' offsets."""
        ...

    async def get_offset(self, consumer: str, stream: str) -> int | None:
        """The consumer's committed offset on the stream, or None."""
        ...

    async def commit_offset(self, consumer: str, stream: str, offset: int) -> None:
        """Durably store the consumer's next offset on the stream."""

    async def consumers(self) -> list[ConsumerInfo]:
        """Every committed consumer position, ordered by name then stream."""
        ...
