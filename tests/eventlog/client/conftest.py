"""Fixtures of the client tests: a real server in a thread, an ``AsyncClient`` on it,
and ``log``: the same calls on an embedded log and on a client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from eventlog import EventLog
from eventlog.client import AsyncClient
from tests.serverthread import ServerThread


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    """A server on a loopback port, its log in ``tmp_path``."""
    with ServerThread.start(db=tmp_path / "server.db") as running:
        yield running


@pytest.fixture
async def client(server: ServerThread) -> AsyncIterator[AsyncClient]:
    """An ``AsyncClient`` of :func:`server`, closed after the test."""
    async with AsyncClient.open(server.url) as remote:
        yield remote


@pytest.fixture(params=["embedded", "remote"])
async def log(
    request: pytest.FixtureRequest, tmp_path: Path, server: ServerThread
) -> AsyncIterator[EventLog | AsyncClient]:
    """The same calls on an embedded log and on a client of a server."""
    if request.param == "embedded":
        async with EventLog.open(tmp_path / "embedded.db") as embedded:
            yield embedded
    else:
        async with AsyncClient.open(server.url) as remote:
            yield remote
