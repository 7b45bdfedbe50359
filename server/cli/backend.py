"""The one contract the client commands run against, and the errors they report.

Two implementations, so every command is written once:
:class:`server.cli.http.HttpBackend` speaks the HTTP API with httpx (a bearer
API key if given); :class:`server.cli.db.DbBackend` opens an SQLite file with
:class:`eventlog.EventLog` in this process, for when no server runs. Each is
imported only when used, which keeps the CLI quick to start.

Failures surface as :class:`CliError` carrying the exit code: 1 for what the
server or the log refused (with the server's own error message), 2 for usage.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

import msgspec

from eventlog import Event, StreamInfo
from eventlog.schedule import Scheduled, ScheduledEvent
from server.cli.events import OutEvent

__all__ = [
    "Appended",
    "Backend",
    "CliError",
    "ConsumerRow",
    "OutOfRange",
    "Unavailable",
]


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
