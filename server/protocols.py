"""The HTTP and WebSocket protocols ``eventlog serve`` runs: uvicorn's, with edge limits.

uvicorn's httptools protocol has no bound on a request's headers (httptools
buffers a header of any size, re-copying it as it grows) and no deadline for
them (its keep-alive timer runs only between requests), so one client can
send a 64 MiB header or hold hundreds of connections open with half a
request each. Its WebSocket protocol closes a finished connection with
``transport.close()``, which waits for the write buffer to drain: a client
that stopped reading keeps the socket forever. These subclasses add:

* ``max_header_bytes``: a request whose target and headers pass it is
  answered 431 and the connection closed; while headers are still arriving
  the bytes received so far are checked after each read, so memory stays
  within the bound plus one read.
* ``header_timeout``: from a connection's opening, or a request's first
  byte, to the end of its headers; past it the connection is closed (408 if
  part of a request arrived).
* ``idle_timeout``: uvicorn's keep-alive timeout between requests.
* A request httptools cannot parse (a bad request line, ``Content-Length:
  abc``) is answered with the API's JSON 400 ``malformed_http``, not uvicorn's
  plain text.
* ``max_connections``: open connections (HTTP and WebSocket). One more
  closes the connection that has waited longest without a request in
  progress (idle, or still sending its headers), so a flood of slow or idle
  connections cannot lock real clients (and ``/healthz``) out; when every
  connection is busy with a request, the new one is answered 503.
* WebSocket: once the app has finished with a connection, a client that
  has not gone within ``firehose_close_timeout`` is cut off
  (a TCP reset); at once if the close frame could not even be
  queued because the client stopped reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from http import HTTPStatus
from typing import Any, ClassVar

import msgspec
from uvicorn._types import ASGI3Application
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from eventlog.errors import EventLogError, InvalidInput, Unavailable
from server.config import ServerConfig
from server.errors import status_for
from server.response_writer import ResponseWriter

__all__ = [
    "GuardedHttpProtocol",
    "GuardedWebSocketProtocol",
    "guarded_protocols",
    "reset",
]


def _error_response(error: EventLogError) -> bytes:
    """A whole HTTP/1.1 error response, its status from :data:`server.errors.ERRORS`."""
    status = status_for(error)
    body = msgspec.json.encode({"error": {"code": error.code, "message": str(error)}})
    return b"".join(
        (
            b"HTTP/1.1 %d %s\r\n" % (status, HTTPStatus(status).phrase.encode()),
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        )
    )


_TOO_LARGE = _error_response(
    InvalidInput("request headers over the limit", code="headers_too_large")
)
_TIMEOUT = _error_response(
    InvalidInput("request headers did not arrive in time", code="header_timeout")
)
_MALFORMED = _error_response(
    InvalidInput(
        "the request is not valid HTTP/1.1: its request line or a header "
        "(e.g. Content-Length) is malformed",
        code="malformed_http",
    )
)
_BUSY = _error_response(Unavailable("too many open connections", code="too_many_connections"))


class _HeadersTooLarge(Exception):
    """Raised from the parser's callback: httptools turns it into a parser error."""


_LINGER_OFF = struct.pack("ii", 1, 0)


def reset(transport: asyncio.Transport) -> None:
    """Close a connection at once, unsent data dropped: the peer gets a TCP reset.

    ``transport.abort()`` alone frees the file descriptor but leaves the kernel
    trying to deliver what is buffered to a peer that does not read.
    """
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_OFF)
    transport.abort()


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header size and arrival limits and a connection cap.

    Subclassed by :func:`guarded_protocols` with :attr:`server_config` set.

    Per request it only sets numbers: the header deadline and uvicorn's
    keep-alive (idle) timeout are checked by one timer per connection that, when
    it fires before the deadline now due, re-arms itself for it (a timer armed
    and cancelled for every request, uvloop's ``call_later``, cost more than the
    rest of the guard), and the header bytes are counted once the headers are
    complete.
    """

    server_config: ClassVar[ServerConfig]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limits = self.server_config
        self.timeout_keep_alive = limits.idle_timeout  # type: ignore[assignment]
        self._max_header_bytes = limits.max_header_bytes
        self._header_timeout = limits.header_timeout
        self._max_connections = limits.max_connections
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        #: Loop time by which the headers in progress must be complete (None: none are).
        self._header_deadline: float | None = None
        #: Loop time at which an idle kept-alive connection is closed (None: not idle).
        self._idle_deadline: float | None = None
        self._received = 0  # bytes read since the request began, while in its headers
        self._chunk = 0  # bytes of the read being parsed
        self._in_headers = False
        self._too_large = False
        #: Since when the connection waits without a request in progress (None: busy).
        self.waiting_since: float | None = None
        self._lost = False
        self._writer: ResponseWriter | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.waiting_since = self.loop.time()
        if len(self.connections) > self._max_connections and not self._make_room():
            transport.write(_BUSY)
            transport.close()
            return
        self._expect_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._cancel_timer()
        self.waiting_since = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._idle_deadline = None
        self._chunk = len(data)
        super().data_received(data)
        if self._in_headers:
            self._received += len(data)
            if self._received > self._max_header_bytes and not self.transport.is_closing():
                self._too_large = True
                self.send_400_response("")

    def send_400_response(self, msg: str) -> None:
        # uvicorn answers a request httptools cannot parse in text/plain; ours is
        # the API's JSON error, like every other 4xx.
        self._cancel_timer()
        self.transport.write(_TOO_LARGE if self._too_large else _MALFORMED)
        self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._received = 0
        if self.waiting_since is None:
            self.waiting_since = self.loop.time()
        if self._header_deadline is None:
            self._expect_headers()

    def on_headers_complete(self) -> None:
        # Every byte of the headers came in this read or in those counted since
        # the request began: only a request that may pass the limit is measured.
        if self._received + self._chunk > self._max_header_bytes:
            size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
            if size > self._max_header_bytes:
                self._too_large = True
                raise _HeadersTooLarge  # uvicorn answers the parser error: send_400_response
        self._in_headers = False
        self.waiting_since = None
        self._header_deadline = None  # the timer, when it fires, finds nothing due
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        # uvicorn's, but the idle timeout is a deadline for the connection's timer.
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self._idle_deadline = deadline = self.loop.time() + self.timeout_keep_alive
            self._due_by(deadline)
        if (
            self.waiting_since is None
            and not self.pipeline
            and (self.cycle is None or self.cycle.response_complete)
            and not self.transport.is_closing()
        ):
            self.waiting_since = self.loop.time()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        writer = self._writer
        if writer is None:
            writer = self._writer = ResponseWriter(self, self._closed_by_cycle)
        writer.head_next()
        cycle.transport = writer  # type: ignore[assignment]
        super()._start_asgi_task(cycle, app)

    def _closed_by_cycle(self) -> None:
        """A response cycle closed the connection (no keep-alive, or the app failed)."""
        self.loop.call_soon(self._watch_closing, -1)

    def _watch_closing(self, before: int) -> None:
        """Reset a closing connection whose unsent answer stopped draining."""
        if self._lost or not self.transport.is_closing():
            return
        now = self.transport.get_write_buffer_size()
        if before >= 0 and now >= before:
            reset(self.transport)
            return
        self.loop.call_later(self.server_config.firehose_close_timeout, self._watch_closing, now)

    def _expect_headers(self) -> None:
        """Start the header deadline (from now)."""
        self._header_deadline = deadline = self.loop.time() + self._header_timeout
        self._due_by(deadline)

    def _due_by(self, deadline: float) -> None:
        """Have the connection's timer fire no later than ``deadline``."""
        timer = self._timer
        if timer is not None:
            if self._timer_at <= deadline:
                return  # it fires first and re-arms for what is due then
            timer.cancel()
        self._timer_at = deadline
        self._timer = self.loop.call_at(deadline, self._due)

    def _cancel_timer(self) -> None:
        self._header_deadline = self._idle_deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _due(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        now = self.loop.time()
        header, idle = self._header_deadline, self._idle_deadline
        if header is not None and header <= now:
            self._header_deadline = None
            if self._in_headers:  # part of a request came: say why it ends
                self.transport.write(_TIMEOUT)
            self.transport.close()
        elif idle is not None and idle <= now:  # uvicorn's keep-alive timeout
            self._idle_deadline = None
            self.transport.close()
        elif header is not None or idle is not None:  # later deadlines: wait for them
            self._due_by(min(d for d in (header, idle) if d is not None))

    def _make_room(self) -> bool:
        """Close the connection waiting longest without a request; False if none is."""
        oldest: GuardedHttpProtocol | None = None
        for conn in self.connections:
            if (
                isinstance(conn, GuardedHttpProtocol)
                and conn is not self
                and conn.waiting_since is not None
                and (oldest is None or conn.waiting_since < oldest.waiting_since)  # type: ignore[operator]
            ):
                oldest = conn
        if oldest is None:
            return False
        oldest.evict()
        return True

    def evict(self) -> None:
        """Close this connection to make room for a new one (it has no request in progress)."""
        self._cancel_timer()
        self.waiting_since = None
        self.connections.discard(self)
        self.transport.abort()


class GuardedWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol that cuts off clients which do not go when told to.

    Subclassed by :func:`guarded_protocols` with :attr:`server_config` set.
    """

    server_config: ClassVar[ServerConfig]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.close_timeout = self.server_config.firehose_close_timeout

    async def run_asgi(self) -> None:
        await super().run_asgi()
        self._reap()

    def keepalive_timeout(self) -> None:
        super().keepalive_timeout()
        self._reap()

    def _reap(self) -> None:
        if self.disconnected:
            return
        if not self.close_sent and self.transport.get_write_buffer_size() > 0:
            # The app gave up on a client that stopped reading: its close frame
            # could not even be queued, and close() would wait for it forever.
            reset(self.transport)
            return
        self.loop.call_later(self.close_timeout, self._abort_if_connected)

    def _abort_if_connected(self) -> None:
        if not self.disconnected:
            reset(self.transport)


def guarded_protocols(
    config: ServerConfig,
) -> tuple[type[GuardedHttpProtocol], type[GuardedWebSocketProtocol]]:
    """The HTTP and WebSocket protocol classes for uvicorn, bound to ``config``'s limits."""
    http = type("HttpProtocol", (GuardedHttpProtocol,), {"server_config": config})
    ws = type("WebSocketProtocol", (GuardedWebSocketProtocol,), {"server_config": config})
    return http, ws
