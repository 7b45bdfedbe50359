"""A firehose client that never reads: once dropped, its TCP connection is gone too
(WebSocket and SSE)."""

from __future__ import annotations

import base64
import os
import socket
import time
from collections.abc import Iterator

import httpx
import psutil
import pytest

from tests.consumers.firehose.clients import append, gauge, wait_for_gauge
from tests.serverproc import ServerProcess
from tests.support import scaled

CLOSE_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def fh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A small slow-client bound (200 events) and a 1 s close timeout."""
    db = tmp_path_factory.mktemp("stalled") / "events.db"
    env = {
        "EVENTLOG_FIREHOSE_QUEUE_EVENTS": "200",
        "EVENTLOG_FIREHOSE_CLOSE_TIMEOUT": str(CLOSE_TIMEOUT),
        "EVENTLOG_SYNCHRONOUS": "off",
    }
    with ServerProcess.start(db=db, env=env) as proc:
        yield proc


def _upgrade(server: ServerProcess, path: str) -> socket.socket:
    """A raw socket with a small receive buffer, upgraded to WebSocket; it never reads again."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(scaled(10))
    sock.connect(("127.0.0.1", server.port))
    key = base64.b64encode(os.urandom(16))
    sock.sendall(
        b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path.encode(), key)
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)  # byte by byte: leave every frame unread
    assert head.startswith(b"HTTP/1.1 101 "), head
    return sock


def _flood_until_dropped(
    server: ServerProcess, http: httpx.Client, stream: str, transport: str
) -> None:
    """Append 2 KB events, 500 at a time (4,000 at most), until the server has dropped
    the stalled ``transport`` client; wait for the drop."""
    slow = ("eventlog_firehose_slow_disconnects_total", f'{{transport="{transport}"}}')
    for _ in range(8):
        append(http, stream, 500, payload=2000)
        if gauge(server, *slow) == 1:
            break
    wait_for_gauge(server, *slow, 1, 30)


def _assert_let_go(
    server: ServerProcess, sock: socket.socket, client_port: int, *, within: float
) -> None:
    """The server lets go of the stalled socket within ``within`` seconds; the client,
    reading again, finds the connection reset: it gets what its own buffer held, then
    no more (the server no longer knows the socket)."""
    deadline = time.monotonic() + scaled(within)
    while _server_holds(server, client_port):
        assert time.monotonic() < deadline, "the server still holds the stalled connection"
        time.sleep(0.05)
    received, reset = _read_to_the_end(sock)
    assert reset
    assert received < 1 << 20


def _server_holds(server: ServerProcess, client_port: int) -> bool:
    return any(
        c.raddr and c.raddr.port == client_port
        for c in psutil.Process(server.pid).net_connections(kind="tcp")
    )


def _read_to_the_end(sock: socket.socket) -> tuple[int, bool]:
    """Bytes read until the connection ended, and whether it ended with a reset."""
    received = 0
    try:
        while chunk := sock.recv(1 << 20):
            received += len(chunk)
    except ConnectionResetError:
        return received, True
    return received, False


def test_a_dropped_client_that_never_reads_loses_its_tcp_connection_within_the_close_timeout(
    fh_server: ServerProcess,
) -> None:
    http = httpx.Client(base_url=fh_server.url, timeout=scaled(30))
    append(http, "stalled", 1)
    sock = _upgrade(fh_server, "/api/streams/stalled/firehose?from=0")
    client_port = sock.getsockname()[1]
    try:
        wait_for_gauge(fh_server, "eventlog_firehose_clients", '{transport="ws"}', 1)
        # Up to ~8 MB of frames: far past the socket buffers and the 200-event bound.
        _flood_until_dropped(fh_server, http, "stalled", "ws")
        # The server lets go of the socket within the close timeout (plus scheduling slack).
        _assert_let_go(fh_server, sock, client_port, within=CLOSE_TIMEOUT + 3)
    finally:
        sock.close()
        http.close()


def test_a_dropped_sse_client_that_never_reads_loses_its_tcp_connection(
    fh_server: ServerProcess,
) -> None:
    http = httpx.Client(base_url=fh_server.url, timeout=scaled(30))
    append(http, "stalled-sse", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(scaled(10))
    sock.connect(("127.0.0.1", fh_server.port))
    client_port = sock.getsockname()[1]
    try:
        sock.sendall(b"GET /api/streams/stalled-sse/sse?from=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        wait_for_gauge(fh_server, "eventlog_firehose_clients", '{transport="sse"}', 1)
        _flood_until_dropped(fh_server, http, "stalled-sse", "sse")
        # The app gives its last messages firehose_close_timeout each, then the
        # closing connection gets as long to make progress before it is reset.
        _assert_let_go(fh_server, sock, client_port, within=3 * CLOSE_TIMEOUT + 3)
    finally:
        sock.close()
        http.close()
