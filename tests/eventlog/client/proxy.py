"""A TCP proxy on loopback in front of a real server that misbehaves on cue, for client tests.

Each accepted connection takes the next entry of a script (then ``"pass"``):

* ``"pass"``: relay both ways;
* ``"drop_answer"``: relay the request to the server, let the server answer
  in full, then close the client's connection without relaying the answer
  (the request was carried out; the client never learns it);
* ``"503"``: answer ``503 unavailable`` in eventlog's JSON error shape
  (with ``Retry-After: 0``) without asking the server.

Connections are not reused across entries: each answer ends with the proxy
closing the connection (``drop_answer``, ``503``) or passes through untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

__all__ = ["Proxy", "proxy"]

_UNAVAILABLE = b'{"error":{"code":"unavailable","message":"the proxy says: try again later"}}'
_503 = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"retry-after: 0\r\nconnection: close\r\ncontent-length: %d\r\n\r\n%s"
    % (len(_UNAVAILABLE), _UNAVAILABLE)
)


class Proxy:
    """The running proxy: ``url``, and ``log``, what each connection did."""

    def __init__(self, upstream_port: int, script: Iterable[str]) -> None:
        self.upstream_port = upstream_port
        self.script = deque(script)
        self.log: list[str] = []
        self.port = 0
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        mode = self.script.popleft() if self.script else "pass"
        self.log.append(mode)
        try:
            if mode == "503":
                await _read_message(reader)
                writer.write(_503)
                await writer.drain()
                return
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            try:
                if mode == "drop_answer":
                    up_writer.write(await _read_message(reader))
                    await up_writer.drain()
                    await _read_message(up_reader)  # the server did the work and answered
                    return
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                up_writer.close()
        finally:
            writer.close()
            self._tasks.discard(task)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(ConnectionError, OSError):
        writer.write_eof()


async def _read_message(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return head + await reader.readexactly(length)


@asynccontextmanager
async def proxy(upstream_port: int, script: Iterable[str]) -> AsyncIterator[Proxy]:
    """A proxy on a free loopback port in front of ``upstream_port``."""
    p = Proxy(upstream_port, script)
    server = await asyncio.start_server(p.handle, "127.0.0.1", 0)
    p.port = server.sockets[0].getsockname()[1]
    try:
        yield p
    finally:
        server.close()
        await p.aclose()
        await server.wait_closed()
