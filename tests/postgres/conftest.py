"""Fixtures of the PostgreSQL backend's tests: a throwaway cluster, a database per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest

from eventlog.storage.postgres import PostgresStorage
from tests.pg import PgCluster, pg_cluster, pg_url

__all__ = ["open_storage", "own_cluster", "pg_cluster", "pg_storage", "pg_url"]


@asynccontextmanager
async def open_storage(url: str) -> AsyncIterator[PostgresStorage]:
    """An open PostgresStorage on ``url``, closed on the way out."""
    storage = PostgresStorage(url)
    await storage.open()
    try:
        yield storage
    finally:
        await storage.close()


@pytest.fixture
async def pg_storage(pg_url: str) -> AsyncIterator[PostgresStorage]:
    """An open PostgresStorage on a fresh database."""
    async with open_storage(pg_url) as storage:
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
