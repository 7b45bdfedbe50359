"""Fixtures of the consumer runtime's tests: a log on each persistent backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from eventlog import EventLog
from tests.pg import PgCluster, pg_cluster

__all__ = ["durable_log", "pg_cluster"]


@pytest.fixture(params=["sqlite", "postgres"])
async def durable_log(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EventLog]:
    """An open log on a real SQLite file, then on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        target = str(tmp_path / "events.db")
    else:
        cluster: PgCluster = request.getfixturevalue("pg_cluster")
        target = await cluster.create_database()
    async with EventLog.open(target) as log:
        yield log
