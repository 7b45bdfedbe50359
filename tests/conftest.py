"""Suite-wide fixtures, and the one backend fixture every contract suite runs behind.

``any_storage`` is parametrised over :data:`BACKENDS`; the storage, log and
ledger contract suites take it (or ``any_log``, a log over it), so a new
contract test runs on every backend, PostgreSQL included, without being
listed anywhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from eventlog import EventLog, LogConfig
from eventlog.storage.base import Storage
from eventlog.storage.memory import MemoryStorage
from eventlog.storage.sqlite import SQLiteStorage
from tests.consumers.delivery.receiver import Receiver
from tests.ordering import DurationsSeen, long_first, stored_durations
from tests.pg import (  # noqa: F401 - the PostgreSQL fixtures, for every test
    PgCluster,
    own_cluster,
    pg_cluster,
    pg_storage,
    pg_url,
    two_logs,
)
from tests.support import opened


def pytest_configure(config: pytest.Config) -> None:
    """Record how long each test takes (on the xdist controller, or the one process)."""
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(DurationsSeen(), "eventlog-durations")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Long tests first (tests/ordering.py), so the xdist workers finish together."""
    items[:] = long_first(items, stored_durations(config))


#: Every storage backend; each contract suite runs once per entry.
BACKENDS = ["memory", "sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
async def any_storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    """An open, empty storage of each backend (PostgreSQL: a fresh database)."""
    makers: dict[str, Callable[[], Storage]] = {
        "memory": MemoryStorage,
        "sqlite": lambda: SQLiteStorage(tmp_path / "contract.db"),
    }
    if request.param != "postgres":
        async with opened(makers[request.param]()) as backend:
            yield backend
        return
    from eventlog.storage.postgres import PostgresStorage

    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    url = await cluster.fresh_database()  # (pg_url is async: not for getfixturevalue here)
    try:
        async with opened(PostgresStorage(url)) as backend:
            yield backend
    finally:
        cluster.give_back(url)


@pytest.fixture
async def any_log(any_storage: Storage) -> AsyncIterator[EventLog]:
    """An open EventLog over each backend (``any_storage``'s params)."""
    config = LogConfig(retention_interval=0, recheck_interval=0.2)
    async with EventLog(any_storage, config) as event_log:  # start(), then close()
        yield event_log


@pytest.fixture
async def sqlite_log(tmp_path: Path) -> AsyncIterator[EventLog]:
    """An open log on a real SQLite file under tmp_path."""
    async with EventLog.open(tmp_path / "events.db") as log:
        yield log


@pytest.fixture
async def memory_log() -> AsyncIterator[EventLog]:
    """An open in-memory log."""
    async with EventLog.open(":memory:") as log:
        yield log


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A loopback webhook receiver answering 204."""
    r = await Receiver().start()
    yield r
    await r.stop()
