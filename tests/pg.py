"""A throwaway PostgreSQL cluster for the tests, started from the machine's binaries.

The cluster itself (``initdb`` into a temporary directory, ``postgres`` on a
free loopback port, stopped and deleted at the end of the session) is
:mod:`bench.pgcluster`, shared with the benchmarks. Tests that need it are
skipped with a clear reason only when no PostgreSQL binaries exist.

Each test gets a database of its own, so tests never see each other's rows,
notifications or advisory locks: one a finished test used, reset (its other
connections ended, every schema dropped: ~10 ms), or a new one (``CREATE
DATABASE ... TEMPLATE``, 60-250 ms, most of it a checkpoint).

Use the ``pg_cluster`` fixture (session-scoped), ``pg_url`` (a fresh database
per test), ``pg_storage`` (an open PostgresStorage on one), ``two_logs`` (two
logs on one, as two processes would have) and ``own_cluster`` (a cluster of the
test's own, for tests that restart it); tests/conftest.py imports them for the
whole suite.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from bench.pgcluster import RUN_AS, find_bin_dir
from bench.pgcluster import PgCluster as _PgCluster
from eventlog import EventLog
from eventlog.storage.postgres import PostgresStorage
from tests.support import TIMEOUT_SCALE, opened

__all__ = [
    "PgCluster",
    "find_bin_dir",
    "own_cluster",
    "pg_cluster",
    "pg_storage",
    "pg_url",
    "two_logs",
]


class PgCluster(_PgCluster):
    """The benchmarks' throwaway cluster (:mod:`bench.pgcluster`), waiting on the
    suite's scalable timeouts."""

    def __init__(self, bin_dir: Path, *, fsync: bool = False) -> None:
        super().__init__(bin_dir, fsync=fsync, timeout_scale=TIMEOUT_SCALE)
        #: Databases finished tests used (:meth:`give_back`), to reset and use again.
        self.spare: list[str] = []

    async def fresh_database(self) -> str:
        """The URL of an empty database: a spare one reset, else a new one."""
        while self.spare:
            url = self.spare.pop()
            if await _reset(self.url(), url):
                return url
        return await self.create_database()

    def give_back(self, url: str) -> None:
        """``url`` (from :meth:`fresh_database`) is no longer used by its test."""
        self.spare.append(url)

    def _remove(self, folder: Path) -> None:
        # The session's cluster ends up holding a few hundred databases; deleting
        # their files took 3-12 s at the end of each test worker, on the suite's
        # critical path. A detached `rm` deletes them while the run finishes.
        subprocess.run(
            ["sh", "-c", 'rm -rf -- "$1" &', "sh", str(folder)],
            check=True,
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


async def _reset(admin_url: str, url: str) -> bool:
    """Make the database at ``url`` empty again: end every other session on it (a
    test's leftover connections) and drop every schema; False if that failed."""
    name = url.rsplit("/", 1)[1]
    try:
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
            )
        finally:
            await admin.close()
        conn = await asyncpg.connect(url)
        try:
            schemas = await conn.fetch(
                "SELECT nspname FROM pg_namespace "
                "WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'"
            )
            for (schema,) in schemas:
                await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
            await conn.execute("CREATE SCHEMA public")
        finally:
            await conn.close()
    except (OSError, asyncpg.PostgresError):
        return False
    return True


_cluster: PgCluster | None = None
_users = 0


def _acquire() -> PgCluster:
    global _cluster, _users
    if _cluster is None:
        bin_dir = find_bin_dir()
        if bin_dir is None:
            pytest.skip(
                "no PostgreSQL server binaries (initdb, postgres) on PATH or in "
                "/usr/lib/postgresql/*/bin; install the 'postgresql' package"
            )
        if os.geteuid() == 0:
            try:
                pwd.getpwnam(RUN_AS)
            except KeyError:
                pytest.skip("running as root and there is no 'postgres' OS user to run the server")
        cluster = PgCluster(bin_dir)
        cluster.start()
        _cluster = cluster
    _users += 1
    return _cluster


def _release() -> None:
    global _cluster, _users
    _users -= 1
    if _users == 0 and _cluster is not None:
        _cluster.stop()
        _cluster = None


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """The session's PostgreSQL server (shared by every conftest that imports this)."""
    cluster = _acquire()
    try:
        yield cluster
    finally:
        _release()


@pytest.fixture
async def pg_url(pg_cluster: PgCluster) -> AsyncIterator[str]:
    """The URL of an empty database of this test's own."""
    url = await pg_cluster.fresh_database()
    yield url
    pg_cluster.give_back(url)


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


@pytest.fixture
async def two_logs(pg_url: str) -> AsyncIterator[tuple[EventLog, EventLog]]:
    """Two logs on one database, each with its own connections (two "processes")."""
    async with (
        EventLog.open(pg_url, retention_interval=0) as a,
        EventLog.open(pg_url, retention_interval=0) as b,
    ):
        yield a, b
