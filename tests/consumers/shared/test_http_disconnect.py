"""A long-polling claim whose client has gone claims nothing for it (real uvicorn, raw socket)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.consumers.shared.test_http import append, claim, declare
from tests.serverthread import ServerThread
from tests.support import scaled


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    with ServerThread.start(db=tmp_path / "events.db") as s:
        yield s


def _leave_a_long_poll(port: int, worker: str) -> None:
    """Start a claim long-poll on a raw connection, then close it without reading the answer."""
    body = f'{{"worker": "{worker}", "max": 5, "wait": 20}}'.encode()
    head = (
        "POST /api/consumers/mailer/claim HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head + body)
        # Nothing observable says the server parked the poll; either way round, an
        # event it claims for the closed connection must go straight back.
        time.sleep(scaled(0.3))


def test_an_event_appended_after_a_claiming_client_left_goes_to_the_next_worker(
    server: ServerThread,
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as api:
        declare(api, ack_wait=30)
        _leave_a_long_poll(server.port, "gone")
        append(api, 1)
        time.sleep(scaled(0.3))  # time for a poll still parked to take the event
        assert api.get("/api/consumers/mailer/shared").json()["claimed"] == 0
        started = time.monotonic()
        claims = claim(api, "w2", wait=scaled(5))
        assert [c["offset"] for c in claims] == [0], "the event sits with the departed worker"
        assert time.monotonic() - started < scaled(5)
        assert claims[0]["id"].endswith(".w2")
