"""Leases: a named consumer runs in exactly one process; a dead holder's lease moves on."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from eventlog.errors import LogClosed
from eventlog.storage.leases import Leases, LocalLeases, leases_for, run_exclusively
from eventlog.storage.memory import MemoryStorage
from eventlog.storage.postgres import PostgresStorage
from eventlog.storage.sqlite import SQLiteStorage
from tests.support import opened, scaled

CHILD = Path(__file__).with_name("lease_child.py")


@pytest.fixture
async def other(pg_url: str) -> AsyncIterator[PostgresStorage]:
    """A second storage on the same database: another process, as far as PostgreSQL knows."""
    async with opened(PostgresStorage(pg_url)) as storage:
        yield storage


async def eventually_acquire(storage: PostgresStorage, name: str, within: float) -> float:
    loop = asyncio.get_running_loop()
    start = loop.time()
    while await storage.acquire_lease(name) is None:
        assert loop.time() - start < within, f"lease {name!r} not free after {within} s"
        await asyncio.sleep(0.05)
    return loop.time() - start


async def test_lease_is_exclusive_across_sessions(
    pg_storage: PostgresStorage, other: PostgresStorage
) -> None:
    assert isinstance(pg_storage, Leases)
    assert leases_for(pg_storage) is pg_storage
    lease = await pg_storage.acquire_lease("consumer:billing")
    assert lease is not None
    assert lease.held
    assert await other.acquire_lease("consumer:billing") is None
    assert await pg_storage.acquire_lease("consumer:billing") is None  # not re-entrant
    assert await other.acquire_lease("consumer:shipping") is not None  # names independent
    await lease.release()
    await lease.release()  # idempotent
    assert not lease.held
    assert await other.acquire_lease("consumer:billing") is not None


async def test_closing_the_holder_frees_its_leases_and_tells_it(
    pg_storage: PostgresStorage, other: PostgresStorage
) -> None:
    lease = await pg_storage.acquire_lease("c")
    assert lease is not None
    await pg_storage.close()
    await asyncio.wait_for(lease.wait_lost(), scaled(2))
    assert await other.acquire_lease("c") is not None
    with pytest.raises(LogClosed):
        await pg_storage.acquire_lease("c")


async def test_holder_whose_connection_dies_gives_the_lease_up(
    pg_url: str, pg_storage: PostgresStorage, other: PostgresStorage
) -> None:
    lease = await pg_storage.acquire_lease("c")
    assert lease is not None
    assert pg_storage.leases is not None
    admin = await asyncpg.connect(pg_url)
    try:
        await admin.fetchval("SELECT pg_terminate_backend($1)", pg_storage.leases.connection_pid)
    finally:
        await admin.close()
    # The holder learns it lost the lease within its liveness check interval.
    await asyncio.wait_for(lease.wait_lost(), scaled(6))
    assert await other.acquire_lease("c") is not None
    # ... and can take other leases again on a fresh connection.
    assert await pg_storage.acquire_lease("d") is not None


async def test_sigkilled_holder_process_loses_the_lease_at_once(
    pg_url: str, other: PostgresStorage
) -> None:
    with subprocess.Popen(
        [sys.executable, str(CHILD), pg_url, "consumer:billing"],
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        try:
            assert child.stdout is not None
            line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), scaled(20))
            assert line == "held\n"
            assert await other.acquire_lease("consumer:billing") is None
            child.send_signal(signal.SIGKILL)
            await asyncio.to_thread(child.wait)
            await eventually_acquire(other, "consumer:billing", scaled(5))
        finally:
            child.kill()


async def test_single_process_backends_get_process_local_leases(tmp_path: Path) -> None:
    memory = MemoryStorage()
    sqlite = SQLiteStorage(tmp_path / "x.db")
    leases = leases_for(memory)
    assert isinstance(leases, LocalLeases)
    assert leases_for(memory) is leases
    assert leases_for(sqlite) is not leases
    lease = await leases.acquire_lease("c")
    assert lease is not None
    assert await leases.acquire_lease("c") is None
    assert await leases_for(sqlite).acquire_lease("c") is not None
    await lease.release()
    await asyncio.wait_for(lease.wait_lost(), scaled(1))
    assert await leases.acquire_lease("c") is not None


async def test_run_exclusively_stops_work_when_the_lease_is_lost(
    pg_url: str, pg_storage: PostgresStorage, other: PostgresStorage
) -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def work() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    runner = asyncio.create_task(run_exclusively(pg_storage, "c", work, retry=0.05))
    try:
        await asyncio.wait_for(started.wait(), scaled(5))
        assert await other.acquire_lease("c") is None
        assert pg_storage.leases is not None
        admin = await asyncpg.connect(pg_url)
        try:
            await admin.fetchval(
                "SELECT pg_terminate_backend($1)", pg_storage.leases.connection_pid
            )
        finally:
            await admin.close()
        await asyncio.wait_for(cancelled.wait(), scaled(6))
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
    assert await other.acquire_lease("c") is not None


async def test_run_exclusively_releases_the_lease_when_work_fails() -> None:
    leases = LocalLeases()

    async def work() -> None:
        raise ValueError("handler bug")

    with pytest.raises(ValueError, match="handler bug"):
        await run_exclusively(leases, "c", work)
    assert await leases.acquire_lease("c") is not None
