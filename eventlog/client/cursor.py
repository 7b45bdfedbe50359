"""What the embedded :class:`~eventlog.Consumer` needs from a log, served by a remote one.

With these methods :meth:`AsyncClient.consumer <eventlog.client.AsyncClient.consumer>`
returns the very :class:`~eventlog.Consumer` class the embedded log returns:
``seek``, ``poll`` (a long-poll), ``commit`` (``PUT /api/consumers/{name}``,
needs ``admin``), ``lag`` and ``async for``. What a server cannot share with a
client is refused: a consumer's ``transact`` (the database transaction lives
in the server) raises :class:`~eventlog.Unsupported`. A truncation record a
consumer writes when retention passed it goes to the server's system stream
in the background, as the embedded ``append_event`` does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol, TypeVar

from eventlog.config import LogConfig
from eventlog.errors import EventLogError, InvalidPosition, Unsupported
from eventlog.model import Event
from eventlog.storage.transactions import Body

__all__ = ["CursorMethods"]

logger = logging.getLogger("eventlog.client")

T = TypeVar("T")


class _Remote(Protocol):
    _background: set[asyncio.Task[Any]]

    async def read(self, stream: str, from_offset: int = 0, limit: int = 1000) -> list[Event]: ...

    async def bounds(self, stream: str) -> tuple[int, int]: ...

    async def append(self, stream: str, data: object, *, type: str) -> int: ...


class CursorMethods:
    """:class:`~eventlog.Consumer` support of :class:`~eventlog.client.AsyncClient`."""

    #: The defaults a consumer reads (page size, the system stream).
    config = LogConfig()

    async def offset_at_time(self: _Remote, stream: str, time: datetime) -> int:
        """The first offset appended at or after ``time`` (the head if none): a binary
        search over one-event reads (about log2 of the stream's length requests)."""
        if time.tzinfo is None:
            raise InvalidPosition("time must be timezone-aware")
        low, high = await self.bounds(stream)
        while low < high:
            middle = (low + high) // 2
            found = await self.read(stream, middle, 1)
            if not found or found[0].offset >= high:
                high = middle
            elif found[0].time < time:
                low = found[0].offset + 1
            else:
                high = middle
        return low

    @property
    def can_transact(self) -> bool:
        """False: a remote log's database transactions stay in the server."""
        return False

    async def transact_offset(self, consumer: str, stream: str, offset: int, body: Body[T]) -> T:
        """Refused: see the module docstring.

        Raises:
            Unsupported: Always.
        """
        raise Unsupported(
            "a consumer of a remote log cannot commit inside a database transaction; "
            "run it in the server's process (embedded) instead"
        )

    def append_event(
        self: _Remote,
        stream: str,
        data: object,
        *,
        type: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Fire and forget: append in the background; a failure is logged, never raised."""

        async def send() -> None:
            try:
                await self.append(stream, data, type=type)
            except EventLogError as exc:
                logger.warning("append_event to %r dropped: %s", stream, exc)

        task = asyncio.get_running_loop().create_task(send())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
