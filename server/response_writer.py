"""The transport uvicorn's HTTP response cycle writes to in ``eventlog serve``:
one write per small answer (see :class:`ResponseWriter`).

Used by :class:`server.protocols.GuardedHttpProtocol`.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["HeldHeads", "ResponseWriter"]


class ResponseWriter:
    """The transport as uvicorn's response cycle sees it: a response's status line
    and headers wait for its first body bytes and leave with them in one write.

    uvicorn writes the head and the body of an answer separately: two system
    calls and two TCP segments for a small JSON answer, where the client reads
    one. The head is held at most until the loop's next turn (a streamed answer
    that sends its head and then waits gets it out at once; the heads held in
    one turn share one callback, :class:`HeldHeads`). A close by the cycle (no
    keep-alive, or the app failed) also calls ``on_close``: the protocol then
    watches that the answer drains, and resets the connection if it stops.
    """

    __slots__ = ("_head", "_held", "_held_heads", "_on_close", "_transport")

    def __init__(self, protocol: HttpToolsProtocol, on_close: Callable[[], None]) -> None:
        self._transport = protocol.transport
        self._on_close = on_close
        self._held: bytes | None = None
        self._head = False
        self._held_heads = _held_heads_of(protocol.loop)

    def head_next(self) -> None:
        """The next write is a new response's head (or a ``100 Continue``)."""
        self._head = True

    def write(self, data: bytes) -> None:
        if self._head:
            self._head = False
            if self._held is not None:  # a body-less answer (HEAD) before it
                self._transport.write(self._held)
            self._held = data
            self._held_heads.add(self)
        elif self._held is not None:
            held, self._held = self._held, None
            self._transport.write(held + data)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        """Write the held head, if any."""
        if self._held is not None:
            held, self._held = self._held, None
            if not self._transport.is_closing():
                self._transport.write(held)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self.flush()
        self._transport.close()
        self._on_close()


class HeldHeads:
    """The response writers of one event loop holding a head: flushed together at
    the loop's next turn, one callback for every answer a turn starts (a commit
    settles dozens of appends at once) instead of one per answer."""

    __slots__ = ("_loop", "_writers")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._writers: list[ResponseWriter] = []

    def add(self, writer: ResponseWriter) -> None:
        """Flush ``writer`` at the loop's next turn (if its body has not taken the head)."""
        if not self._writers:
            self._loop.call_soon(self._flush)
        self._writers.append(writer)

    def _flush(self) -> None:
        writers, self._writers = self._writers, []
        for writer in writers:
            writer.flush()


_HELD_HEADS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, HeldHeads] = (
    weakref.WeakKeyDictionary()
)


def _held_heads_of(loop: asyncio.AbstractEventLoop) -> HeldHeads:
    held = _HELD_HEADS.get(loop)
    if held is None:
        held = _HELD_HEADS[loop] = HeldHeads(loop)
    return held
