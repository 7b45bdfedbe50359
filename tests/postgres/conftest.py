"""Fixtures of the PostgreSQL backend's tests: a throwaway cluster, a database per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from eventlog.storage.postgres import PostgresStorage
from tests.pg import PgCluster, pg_cluster, pg_url
from tests.support import opened

__all__ = ["own_cluster", "pg_cluster", "pg_storage", "pg_url"]


@pytest.fixture
async def pg_storage(pg_url: str) -> AsyncIterator[PostgresStorage]:
    """An open PostgresStorage on a fresh database."""
    async with opened(PostgresStorage(pg_url)) as storage:
        yield storage


@pytest.fixture
def own_cluster(pg_cluster: PgCluster) -> Iterator[PgCluster]:
    """A cluster of this test's own (it gets restarted)."""
    cluster = PgCluster(pg_cluster.bin_dir)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
