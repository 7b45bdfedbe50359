"""``HttpBackend``: the client commands on a server, through :mod:`eventlog.client`.

A thin adapter: each method is one :class:`~eventlog.client.AsyncClient` call,
and every error of the log's tree becomes a :class:`~server.cli.backend.CliError`
through :func:`~server.cli.backend.cli_error` (the one format). The CLI does
not retry on its own (``retry_for=0``): a command reports at once that the
server is unreachable; ``tail -f`` waits for it with its own backoff.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import msgspec

from eventlog import Event, StreamInfo, StreamNotFound
from eventlog.client import AsyncClient
from eventlog.closing import AsyncClosing
from eventlog.schedule import Scheduled, ScheduledEvent
from server.cli.backend import Appended, ConsumerRow, new_events, translated
from server.cli.events import OutEvent

__all__ = ["HttpBackend"]


class HttpBackend(AsyncClosing):
    """The HTTP API of an eventlog server, through one :class:`AsyncClient`.

    Args:
        url: The server's base URL.
        api_key: Sent as ``Authorization: Bearer``.
        timeout: Seconds per request (a long-poll adds its wait).
    """

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 30.0) -> None:
        self.client = AsyncClient(url, api_key=api_key, timeout=timeout, retry_for=0)
        self.url = self.client.url

    async def _exit(self) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self.client.close()

    async def append(self, stream: str, events: Sequence[OutEvent]) -> Appended:
        """Append the events atomically."""
        async with translated():
            result = await self.client.append_batch_result(stream, new_events(events))
        return Appended(offsets=result.offsets, written=result.written)

    async def schedule(
        self, stream: str, events: Sequence[OutEvent], at: datetime | timedelta
    ) -> list[Scheduled]:
        """Schedule the events for ``at`` (a time, or a delay)."""
        async with translated():
            return await self.client.append_batch(stream, new_events(events), at=at)

    async def schedules(self, stream: str | None) -> list[ScheduledEvent]:
        """Every scheduled event (of ``stream``), every page."""
        out: list[ScheduledEvent] = []
        after: str | None = None
        async with translated():
            while True:
                page = await self.client.schedules.page(stream=stream, after=after, limit=1000)
                out += page.schedules
                if page.next is None:
                    return out
                after = page.next

    async def cancel_schedule(self, stream: str, event_id: str) -> None:
        """Cancel a scheduled event."""
        async with translated():
            await self.client.schedules.cancel(stream, event_id)

    async def read(self, stream: str, start: int, limit: int, wait: float) -> list[Event]:
        """One page of events, long-polling up to ``wait`` seconds."""
        async with translated():
            if wait > 0:
                return await self.client.read_wait(stream, start, limit, wait)
            return await self.client.read(stream, start, limit)

    async def stream_info(self, stream: str) -> StreamInfo | None:
        """The stream's info; None if it does not exist."""
        async with translated():
            try:
                return await self.client.stream_info(stream)
            except StreamNotFound:
                return None

    async def streams(self) -> list[StreamInfo]:
        """Every stream."""
        async with translated():
            return await self.client.streams()

    async def consumers(self) -> list[ConsumerRow]:
        """Every consumer position, with the lag the server computed."""
        async with translated():
            rows = await self.client.call("GET", "/api/consumers")
        return msgspec.convert(rows["consumers"], list[ConsumerRow])

    async def consumer(self, name: str) -> dict[str, Any]:
        """One consumer as ``GET /api/consumers/{name}`` describes it."""
        async with translated():
            return await self.client.consumer_detail(name)

    async def replay_parked(self, name: str) -> dict[str, Any]:
        """Replay the consumer's parked events (its handler runs in the server)."""
        async with translated():
            return await self.client.replay_parked(name)
