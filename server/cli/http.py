"""``HttpBackend``: the client commands on a server, through :mod:`eventlog.client`.

A thin adapter: each method is one :class:`~eventlog.client.AsyncClient` call,
and every error of the log's tree becomes a :class:`~server.cli.backend.CliError`
through :func:`~server.cli.backend.cli_error` (the one format). The CLI does
not retry on its own (``retry_for=0``): a command reports at once that the
server is unreachable; ``tail -f`` waits for it with its own backoff.
"""

from __future__ import annotations

from typing import Any

import msgspec

from eventlog import Event
from eventlog.client import AsyncClient
from eventlog.errors import EventLogError
from server.cli.backend import ConsumerRow, LogApiBackend, translated

__all__ = ["HttpBackend"]

_NOT_SHARED = ("consumer_not_shared", "consumer_not_found")


class HttpBackend(LogApiBackend):
    """The HTTP API of an eventlog server, through one :class:`AsyncClient`.

    Args:
        url: The server's base URL.
        api_key: Sent as ``Authorization: Bearer``.
        timeout: Seconds per request (a long-poll adds its wait).
    """

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 30.0) -> None:
        self.client = AsyncClient(url, api_key=api_key, timeout=timeout, retry_for=0)
        self.url = self.client.url

    @property
    def api(self) -> AsyncClient:
        """The client."""
        return self.client

    async def _exit(self) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self.client.close()

    async def read(self, stream: str, start: int, limit: int, wait: float) -> list[Event]:
        """One page of events, long-polling up to ``wait`` seconds."""
        async with translated():
            if wait > 0:
                return await self.client.read_wait(stream, start, limit, wait)
            return await self.client.read(stream, start, limit)

    async def consumers(self) -> list[ConsumerRow]:
        """Every consumer position, with the lag the server computed."""
        async with translated():
            rows = await self.client.call("GET", "/api/consumers")
        return msgspec.convert(rows["consumers"], list[ConsumerRow])

    async def consumer(self, name: str) -> dict[str, Any]:
        """One consumer as ``GET /api/consumers/{name}`` describes it; ``shared`` holds
        ``GET /api/consumers/{name}/shared`` for a shared consumer (else None)."""
        async with translated():
            detail = await self.client.consumer_detail(name)
            detail["shared"] = None
            if detail.get("runtime") is None:  # a handler of the server is not shared
                try:
                    detail["shared"] = msgspec.to_builtins(await self.client.shared_info(name))
                except EventLogError as exc:
                    if exc.code not in _NOT_SHARED:
                        raise
        return detail

    async def replay_parked(self, name: str) -> dict[str, Any]:
        """Replay the consumer's parked events (its handler runs in the server)."""
        async with translated():
            return await self.client.replay_parked(name)
