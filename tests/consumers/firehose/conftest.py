"""Fixtures of the firehose tests: real servers (uvicorn in a thread of the test process)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import msgspec
import pytest

from server.auth import hash_key
from tests.serverthread import ServerThread
from tests.support import scaled

READER_KEY = "el_test_reader_key"
WRITER_KEY = "el_test_writer_key"
API_KEYS = msgspec.json.encode(
    [
        {"name": "reader", "hash": hash_key(READER_KEY), "scopes": ["read:orders*"]},
        {"name": "writer", "hash": hash_key(WRITER_KEY), "scopes": ["append:*"]},
    ]
).decode()


@pytest.fixture(scope="module")
def fh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """One server per test module (tests use their own streams).

    A small slow-client bound (2,000 events) and a short SSE keepalive.
    """
    db = tmp_path_factory.mktemp("firehose") / "events.db"
    env = {
        "EVENTLOG_FIREHOSE_QUEUE_EVENTS": "2000",
        "EVENTLOG_FIREHOSE_KEEPALIVE": "0.5",
        # Time a stalled client has to drain its buffers and read the closing event.
        "EVENTLOG_FIREHOSE_CLOSE_TIMEOUT": str(scaled(5)),
        "EVENTLOG_SYNCHRONOUS": "normal",
        "EVENTLOG_FIREHOSE_BACKLOG_EVENTS": "2000",
    }
    with ServerThread.start(db=db, env=env) as proc:
        yield proc


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """A server with API keys and room for only two firehose clients."""
    db = tmp_path_factory.mktemp("firehose-auth") / "events.db"
    env = {"EVENTLOG_API_KEYS": API_KEYS, "EVENTLOG_FIREHOSE_MAX_CLIENTS": "2"}
    with ServerThread.start(db=db, env=env) as proc:
        yield proc


@pytest.fixture(scope="module")
def http(fh_server: ServerThread) -> Iterator[httpx.Client]:
    """An HTTP client on the module's server (one per module, as the server)."""
    with httpx.Client(base_url=fh_server.url, timeout=scaled(20)) as c:
        yield c
