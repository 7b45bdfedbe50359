"""Fixtures of the client tests: a real server in a thread, and an ``AsyncClient`` on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

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
