"""Hostile clients at the connection level: huge headers, slow headers, connection floods.

Each test runs a real ``eventlog serve`` and talks to it over raw sockets.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import psutil
import pytest

from server.config import ConfigError, load_config
from server.serve import exposure_warning
from tests.serverproc import ServerProcess
from tests.support import scaled

HALF_REQUEST = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


def _connect(server: ServerProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=scaled(10))


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (a reset ends it too)."""
    chunks: list[bytes] = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def _read_head(sock: socket.socket) -> bytes:
    """A response's status line and headers, read byte by byte (nothing after them)."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        assert byte, f"closed after {head!r}"
        head += byte
    return head


def _read_response(sock: socket.socket) -> bytes:
    """One response with a Content-Length body."""
    head = _read_head(sock)
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    body = b""
    while len(body) < length:
        body += sock.recv(length - len(body))
    return head + body


class _PeakRss:
    """A thread sampling a process's resident memory every 20 ms; keeps the peak."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.start = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def growth(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak - self.start


def test_the_edge_limits_are_options_with_documented_defaults() -> None:
    config = load_config()
    assert (config.max_header_bytes, config.header_timeout) == (64 << 10, 10.0)
    assert (config.idle_timeout, config.max_connections) == (5.0, 2048)
    flags = {"max_header_bytes": 1024, "header_timeout": 2.5, "max_connections": 10}
    env = {"EVENTLOG_IDLE_TIMEOUT": "1.5"}
    config = load_config(environ=env, flags=flags)
    assert (config.max_header_bytes, config.header_timeout) == (1024, 2.5)
    assert (config.idle_timeout, config.max_connections) == (1.5, 10)
    with pytest.raises(ConfigError, match="max_connections"):
        load_config(flags={"max_connections": 0})


def test_serving_a_public_address_without_keys_warns() -> None:
    public = load_config(flags={"host": "0.0.0.0", "insecure": True})
    warning = exposure_warning(public)
    assert warning is not None
    assert "0.0.0.0 without API keys" in warning
    assert exposure_warning(load_config(flags={"insecure": True})) is None  # loopback
    keyed = load_config(
        flags={"host": "0.0.0.0", "api_keys": [{"name": "k", "hash": "sha256:" + "0" * 64}]}
    )
    assert exposure_warning(keyed) is None


@pytest.fixture(scope="module")
def edge_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with the default header limit (64 KiB) and a 1 s header timeout."""
    db = tmp_path_factory.mktemp("edge") / "events.db"
    with ServerProcess.start(db=db, env={"EVENTLOG_HEADER_TIMEOUT": "1"}) as proc:
        yield proc


def test_headers_over_the_limit_are_answered_431(edge_server: ServerProcess) -> None:
    with _connect(edge_server) as sock:
        sock.sendall(HALF_REQUEST + b"a" * (100 << 10) + b"\r\n\r\n")
        answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b'"code":"headers_too_large"' in answer


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /api/streams/x/events HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n{}",
        b"GET /healthz HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n",
        b"GET /healthz NOT-HTTP\r\n\r\n",
    ],
)
def test_a_request_that_is_not_valid_http_gets_a_json_400(
    edge_server: ServerProcess, request_bytes: bytes
) -> None:
    with _connect(edge_server) as sock:
        sock.sendall(request_bytes)
        answer = _read_until_closed(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert b"content-type: application/json" in head
    assert msgspec.json.decode(body) == {
        "error": {
            "code": "malformed_http",
            "message": "the request is not valid HTTP/1.1: its request line or a header "
            "(e.g. Content-Length) is malformed",
        }
    }
    assert httpx.get(f"{edge_server.url}/healthz").status_code == 200


def test_a_64_mib_header_is_refused_quickly_without_memory_growth(
    edge_server: ServerProcess,
) -> None:
    rss = _PeakRss(edge_server.pid)
    sent = 0
    started = time.monotonic()
    chunk = b"a" * (256 << 10)
    with _connect(edge_server) as sock:
        try:
            sock.sendall(HALF_REQUEST)
            while sent < 64 << 20:
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed on us: what this test wants
        elapsed = time.monotonic() - started
    growth = rss.growth()
    assert sent < 16 << 20, f"the server took {sent >> 20} MiB of header"
    assert elapsed < scaled(3)
    assert growth < 16 << 20, f"server RSS grew {growth >> 20} MiB"
    assert httpx.get(f"{edge_server.url}/healthz", timeout=scaled(2)).status_code == 200


def test_connections_that_send_half_their_headers_are_closed_after_the_header_timeout(
    edge_server: ServerProcess,
) -> None:
    socks = [_connect(edge_server) for _ in range(50)]
    try:
        started = time.monotonic()
        for sock in socks:
            sock.sendall(HALF_REQUEST)
        answers = [_read_until_closed(sock) for sock in socks]
        elapsed = time.monotonic() - started
    finally:
        for sock in socks:
            sock.close()
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers), answers[0][:200]
    assert 0.9 <= elapsed < scaled(5)


def test_a_later_request_on_a_kept_alive_connection_gets_its_own_header_timeout(
    edge_server: ServerProcess,
) -> None:
    """The header deadline is per request: the timer armed when the connection
    opened finds the second request's deadline later and waits for it."""
    with _connect(edge_server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert _read_response(sock).startswith(b"HTTP/1.1 200 ")
        time.sleep(0.6)  # past half of the 1 s timeout counted from the connection's opening
        sock.sendall(HALF_REQUEST)
        started = time.monotonic()
        answer = _read_until_closed(sock)
        elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b'"code":"header_timeout"' in answer
    assert 0.9 <= elapsed < scaled(5)


def test_an_idle_kept_alive_connection_is_closed_after_the_idle_timeout_and_a_busy_one_is_not(
    tmp_path: Path,
) -> None:
    env = {"EVENTLOG_IDLE_TIMEOUT": "1", "EVENTLOG_HEADER_TIMEOUT": "3"}
    ask = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    # A request every 0.4 s for 2.4 s: never idle for 1 s.
    with (
        ServerProcess.start(db=tmp_path / "events.db", env=env) as server,
        _connect(server) as busy,
    ):
        for _ in range(6):
            busy.sendall(ask)
            assert _read_response(busy).startswith(b"HTTP/1.1 200 ")
            time.sleep(0.4)
        busy.sendall(ask)
        assert _read_response(busy).startswith(b"HTTP/1.1 200 ")
        started = time.monotonic()
        assert _read_until_closed(busy) == b""  # then idle: closed, nothing sent
        assert 0.9 <= time.monotonic() - started < scaled(3)


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(
    edge_server: ServerProcess,
) -> None:
    with _connect(edge_server) as sock:
        started = time.monotonic()
        assert _read_until_closed(sock) == b""  # closed without an answer: no request began
        assert 0.9 <= time.monotonic() - started < scaled(5)


def test_healthz_answers_while_slow_connections_fill_the_connection_limit(
    tmp_path: Path,
) -> None:
    env = {"EVENTLOG_MAX_CONNECTIONS": "100", "EVENTLOG_HEADER_TIMEOUT": "120"}
    with ServerProcess.start(db=tmp_path / "events.db", env=env) as server:
        socks: list[socket.socket] = []
        try:
            for _ in range(300):
                sock = _connect(server)
                sock.sendall(HALF_REQUEST)
                socks.append(sock)
            started = time.monotonic()
            with httpx.Client(base_url=server.url, timeout=scaled(5)) as client:
                for _ in range(5):
                    assert client.get("/healthz").status_code == 200
            assert time.monotonic() - started < scaled(2)
            # The server holds no more than its limit (+1 while it makes room).
            assert server.connections() <= 101
        finally:
            for sock in socks:
                sock.close()


def test_a_new_connection_is_answered_503_when_every_connection_is_busy(
    tmp_path: Path,
) -> None:
    env = {"EVENTLOG_MAX_CONNECTIONS": "3"}
    with ServerProcess.start(db=tmp_path / "events.db", env=env) as server:
        # Three SSE followers: each connection has a request in progress (its
        # answer has begun), so none may be closed to make room.
        followers: list[socket.socket] = []
        try:
            for i in range(3):  # one after the other: each busy before the next connects
                sock = _connect(server)
                followers.append(sock)
                if i == 0:
                    body = b'{"type": "made"}'
                    sock.sendall(
                        b"POST /api/streams/idle/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                        % (len(body), body)
                    )
                    assert _read_response(sock).startswith(b"HTTP/1.1 201 ")
                sock.sendall(b"GET /api/streams/idle/sse HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                assert _read_head(sock).startswith(b"HTTP/1.1 200 ")
            with _connect(server) as extra:
                extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                answer = _read_until_closed(extra)
            assert answer.startswith(b"HTTP/1.1 503 "), answer[:200]
            assert b'"code":"too_many_connections"' in answer
        finally:
            for sock in followers:
                sock.close()
