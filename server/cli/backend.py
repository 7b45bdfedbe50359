"""The one contract the client commands run against, and the errors they report.

Two implementations, so every command is written once:
:class:`server.cli.http.HttpBackend` speaks the HTTP API with :mod:`eventlog.client` (a bearer
API key if given); :class:`server.cli.db.DbBackend` opens an SQLite file with
:class:`eventlog.EventLog` in this process, for when no server runs. Each is
imported only when used, which keeps the CLI quick to start.

Failures surface as :class:`CliError` carrying the exit code: 1 for what the
server or the log refused (with the server's own error message), 2 for usage.
:func:`cli_error` writes every refusal in one format, local or remote:
``message (code, HTTP status)`` (no status for a local database).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from eventlog import (
    Event,
    EventLogError,
    NewEvent,
    OffsetOutOfRange,
    Retention,
    StreamInfo,
    StreamNotFound,
)
from eventlog import errors as e
from eventlog.closing import AsyncClosing
from eventlog.schedule import Scheduled, ScheduledEvent
from server.cli.events import OutEvent

if TYPE_CHECKING:
    from eventlog import EventLog
    from eventlog.client import AsyncClient

__all__ = [
    "Appended",
    "Backend",
    "CliError",
    "ConsumerRow",
    "LogApiBackend",
    "OutOfRange",
    "Unavailable",
    "cli_error",
    "new_events",
    "translated",
]

#: What a user can do about an unreachable server.
UNREACHABLE_HINT = "(is `eventlog serve` running? set --url or EVENTLOG_URL)"


class CliError(Exception):
    """A failure to report on stderr and exit with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 1, *, path: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        #: The JSON path the server named in a validation error, e.g. ``$[3].type``.
        self.path = path


class OutOfRange(CliError):
    """A read started before the stream's first retained offset."""

    def __init__(self, message: str, first: int | None) -> None:
        super().__init__(message, 1)
        self.first = first


class Unavailable(CliError):
    """The server could not be reached, timed out, or answered 503: worth retrying."""


class Appended(msgspec.Struct, frozen=True, kw_only=True):
    """What an append answered: each event's offset, and how many were new (if known)."""

    offsets: list[int]
    written: int | None = None


class ConsumerRow(msgspec.Struct, frozen=True, kw_only=True):
    """One consumer's committed position on one stream, with its lag."""

    name: str
    stream: str
    offset: int
    lag: int | None = None
    updated: datetime | None = None


class Backend(Protocol):
    """What a client command needs from a log, local or remote."""

    async def append(self, stream: str, events: Sequence[OutEvent]) -> Appended:
        """Append events atomically; return their offsets."""
        ...

    async def schedule(
        self, stream: str, events: Sequence[OutEvent], at: datetime | timedelta
    ) -> list[Scheduled]:
        """Schedule events to be appended at ``at`` (a time, or a delay from now)."""
        ...

    async def schedules(self, stream: str | None) -> list[ScheduledEvent]:
        """Every scheduled event (of ``stream``), in due order."""
        ...

    async def cancel_schedule(self, stream: str, event_id: str) -> None:
        """Cancel a scheduled event (CliError if it is not scheduled)."""
        ...

    async def read(self, stream: str, start: int, limit: int, wait: float) -> list[Event]:
        """Up to ``limit`` events from ``start``, waiting up to ``wait`` s for the first."""
        ...

    async def stream_info(self, stream: str) -> StreamInfo | None:
        """The stream's shape, or None if it does not exist."""
        ...

    async def streams(self) -> list[StreamInfo]:
        """Every stream."""
        ...

    async def set_retention(self, stream: str, retention: Retention) -> Retention:
        """Replace the stream's retention policy; return the stored one."""
        ...

    async def consumers(self) -> list[ConsumerRow]:
        """Every consumer position."""
        ...

    async def consumer(self, name: str) -> dict[str, Any]:
        """One consumer as ``GET /api/consumers/{name}`` describes it."""
        ...

    async def replay_parked(self, name: str) -> dict[str, Any]:
        """Replay the consumer's parked events (``POST .../replay-parked``)."""
        ...

    async def aclose(self) -> None:
        """Release connections / close the log."""
        ...


class LogApiBackend(AsyncClosing):
    """The :class:`Backend` methods that are one call of the log's API, which the
    embedded :class:`~eventlog.EventLog` and :class:`~eventlog.client.AsyncClient`
    share: written once, on :attr:`api`, for both backends."""

    @property
    def api(self) -> EventLog | AsyncClient:
        """The log the methods call: an open ``EventLog`` or an ``AsyncClient``."""
        raise NotImplementedError

    async def append(self, stream: str, events: Sequence[OutEvent]) -> Appended:
        """Append the events atomically (``append_batch_result``)."""
        async with translated():
            result = await self.api.append_batch_result(stream, new_events(events))
        return Appended(offsets=result.offsets, written=result.written)

    async def schedule(
        self, stream: str, events: Sequence[OutEvent], at: datetime | timedelta
    ) -> list[Scheduled]:
        """Schedule the events for ``at`` (a time, or a delay)."""
        async with translated():
            return await self.api.append_batch(stream, new_events(events), at=at)

    async def schedules(self, stream: str | None) -> list[ScheduledEvent]:
        """Every scheduled event (of ``stream``), every page."""
        out: list[ScheduledEvent] = []
        after: str | None = None
        async with translated():
            while True:
                page = await self.api.schedules.page(stream=stream, after=after, limit=1000)
                out += page.schedules
                if page.next is None:
                    return out
                after = page.next

    async def cancel_schedule(self, stream: str, event_id: str) -> None:
        """Cancel a scheduled event."""
        async with translated():
            await self.api.schedules.cancel(stream, event_id)

    async def stream_info(self, stream: str) -> StreamInfo | None:
        """The stream's info; None if it does not exist."""
        async with translated():
            try:
                return await self.api.stream_info(stream)
            except StreamNotFound:
                return None

    async def streams(self) -> list[StreamInfo]:
        """Every stream."""
        async with translated():
            return await self.api.streams()

    async def set_retention(self, stream: str, retention: Retention) -> Retention:
        """``set_retention``, then the policy as stored."""
        async with translated():
            await self.api.set_retention(stream, retention)
            return (await self.api.stream_info(stream)).retention


def cli_error(exc: EventLogError) -> CliError:
    """The :class:`CliError` for an error of the log or the server, in the one format.

    ``message (code, HTTP status)`` for a server's answer, ``message (code)``
    for the local log's; an answer that was not eventlog's JSON error, and a
    server that could not be reached, are described as they are. A 503 or no
    answer becomes :class:`Unavailable`, retention's ``offset_out_of_range``
    :class:`OutOfRange`.
    """
    message = str(exc)
    if exc.code == "unreachable":
        message = f"{message} {UNREACHABLE_HINT}"
    elif exc.http_status is not None and not exc.code.startswith("http_"):
        message = f"{message} ({exc.code}, HTTP {exc.http_status})"
    elif exc.http_status is None and exc.code not in ("timeout", "unexpected_answer"):
        message = f"{message} ({exc.code})"
    if isinstance(exc, OffsetOutOfRange):
        return OutOfRange(message, exc.first if exc.first >= 0 else None)
    if isinstance(exc, e.Unavailable) and exc.http_status in (None, 503):
        return Unavailable(message)
    return CliError(message, path=exc.json_path)


@asynccontextmanager
async def translated() -> AsyncIterator[None]:
    """Raise the log's errors inside the block as the CLI's (:func:`cli_error`)."""
    try:
        yield
    except EventLogError as exc:
        raise cli_error(exc) from exc


def new_events(events: Sequence[OutEvent]) -> list[NewEvent]:
    """The CLI's parsed events as the log's :class:`~eventlog.NewEvent` (data untouched)."""
    return [
        NewEvent(type=e.type, data=e.data, key=e.key, id=e.id, headers=e.headers) for e in events
    ]
