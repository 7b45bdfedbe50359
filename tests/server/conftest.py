"""Fixtures of the server tests: ``eventlog serve`` as a process, or uvicorn in a thread."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serverproc import ServerProcess
from tests.serverthread import ServerThread
from tests.support import scaled


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """``eventlog serve`` on a free loopback port over ``tmp_path/events.db``."""
    with ServerProcess.start(db=tmp_path / "events.db") as proc:
        yield proc


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """One in-process server for a whole test module (tests use their own stream names).

    Small limits make the limit paths cheap to reach: 64 KiB bodies, 1 s body timeout.
    """
    db = tmp_path_factory.mktemp("shared") / "events.db"
    env = {"EVENTLOG_MAX_BODY_BYTES": str(64 << 10), "EVENTLOG_BODY_TIMEOUT": "1"}
    with ServerThread.start(db=db, env=env) as proc:
        yield proc


@pytest.fixture(scope="module")
def client(shared_server: ServerThread) -> Iterator[httpx.Client]:
    """A keep-alive httpx client on the module's shared server (one per module: making
    one costs ~0.1 s of TLS set-up on a busy machine, even for plain HTTP)."""
    with httpx.Client(base_url=shared_server.url, timeout=scaled(10)) as c:
        yield c
