"""Fixtures of the consumer runtime's tests: a log on each persistent backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from eventlog import EventLog
from tests.pg import PgCluster, pg_cluster

__all__ = ["DURABLE", "durable_log", "durable_target", "pg_cluster"]

#: The persistent backends.
DURABLE = ["sqlite", "postgres"]


async def durable_target(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """Where a log on ``backend`` lives: a SQLite file under ``tmp_path``, or a fresh
    database of the tests' own PostgreSQL (``pg_cluster``)."""
    if backend == "sqlite":
        return str(tmp_path / "events.db")
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    return await cluster.create_database()


@pytest.fixture(params=DURABLE)
async def durable_log(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EventLog]:
    """An open log on a real SQLite file, then on a fresh PostgreSQL database."""
    async with EventLog.open(await durable_target(request.param, tmp_path, request)) as log:
        yield log
