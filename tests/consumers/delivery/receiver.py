"""A real HTTP receiver for webhook tests: an aiohttp app on a loopback port.

It records every request (headers, body) and answers through a replaceable
``behaviour`` coroutine, so tests can make it fail, hang, redirect, reset the
connection, send a huge body or trickle bytes. It can be stopped and started
again on the same port.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["Received", "Receiver", "Served"]


class Served:
    """Mixin: an aiohttp app served on a loopback port, stopped with :meth:`stop`."""

    port: int
    _runner: web.AppRunner | None

    async def _serve(self, app: web.Application, host: str = "127.0.0.1", **options: Any) -> None:
        """Listen on ``host:port`` (port 0: a free one, which ``port`` then holds)."""
        self._runner = web.AppRunner(app, access_log=None, **options)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, self.port, reuse_address=True)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        self.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening; open connections are closed."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@dataclass
class Received:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes


Behaviour = Callable[[web.Request, Received], Awaitable[web.StreamResponse]]


async def ok(request: web.Request, received: Received) -> web.StreamResponse:
    """Answer 204."""
    return web.Response(status=204)


@dataclass
class Receiver(Served):
    """Records requests; ``behaviour`` decides the answer."""

    behaviour: Behaviour = ok
    requests: list[Received] = field(default_factory=list)
    port: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        received = Received(
            request.path, {k.lower(): v for k, v in request.headers.items()}, await request.read()
        )
        self.requests.append(received)
        self.arrived.set()
        return await self.behaviour(request, received)

    async def start(self) -> Receiver:
        """Listen on 127.0.0.1 (the same port again after a stop)."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        await self._serve(app, handle_signals=False, shutdown_timeout=0.1)
        return self

    def url(self, path: str = "/hook") -> str:
        """The receiver's URL."""
        return f"http://127.0.0.1:{self.port}{path}"

    async def wait_for(self, count: int, timeout: float) -> None:
        """Wait until at least ``count`` requests arrived."""
        async with asyncio.timeout(timeout):
            while len(self.requests) < count:
                self.arrived.clear()
                await self.arrived.wait()
