"""The backend fixture the storage contract suite runs behind.

Each param is one backend; the same test bodies run against all of them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from eventlog import EventLog, LogConfig
from eventlog.storage.base import Storage
from eventlog.storage.memory import MemoryStorage
from eventlog.storage.sqlite import SQLiteStorage
from tests.pg import pg_cluster  # noqa: F401 - the session's throwaway PostgreSQL server

BACKENDS = ["memory", "sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    """An open, empty storage of each backend."""
    makers: dict[str, Callable[[], Storage]] = {
        "memory": MemoryStorage,
        "sqlite": lambda: SQLiteStorage(tmp_path / "contract.db"),
    }
    if request.param == "postgres":  # a fresh database on the session's cluster
        from eventlog.storage.postgres import PostgresStorage

        url = await request.getfixturevalue("pg_cluster").create_database()
        makers["postgres"] = lambda: PostgresStorage(url)
    backend = makers[request.param]()
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()


@pytest.fixture
async def log(storage: Storage) -> AsyncIterator[EventLog]:
    """An open EventLog over each backend (the storage fixture's params)."""
    event_log = EventLog(storage, LogConfig(retention_interval=0, recheck_interval=0.2))
    await event_log.start()
    try:
        yield event_log
    finally:
        await event_log.close()
