"""SQLiteThread: one connection on one thread of its own, work run whole and in order."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from eventlog.errors import LogClosed, StorageError
from eventlog.storage.sqlite_thread import SQLiteThread


async def test_work_runs_on_one_thread_in_the_order_it_was_queued(tmp_path: Path) -> None:
    conn = await SQLiteThread.connect(tmp_path / "t.db")
    try:
        await conn.run(lambda c: c.execute("CREATE TABLE t (n INTEGER)"))

        def insert(n: int) -> Callable[[sqlite3.Connection], int]:
            def work(c: sqlite3.Connection) -> int:
                c.execute("INSERT INTO t (n) VALUES (?)", (n,))
                return threading.get_ident()

            return work

        threads = await asyncio.gather(*(conn.run(insert(n)) for n in range(50)))
        assert len(set(threads)) == 1
        assert threads[0] != threading.get_ident()
        rows = await conn.run(lambda c: c.execute("SELECT n FROM t ORDER BY rowid").fetchall())
        assert [n for (n,) in rows] == list(range(50))
    finally:
        await conn.close()


async def test_driver_errors_are_translated_and_other_errors_pass_through(tmp_path: Path) -> None:
    conn = await SQLiteThread.connect(tmp_path / "t.db")
    try:
        with pytest.raises(StorageError):
            await conn.run(lambda c: c.execute("SELECT * FROM missing"))

        def fails(c: sqlite3.Connection) -> None:
            raise KeyError("mine")

        with pytest.raises(KeyError, match="mine"):
            await conn.run(fails)
        assert await conn.run(lambda c: c.execute("SELECT 1").fetchone()) == (1,)
    finally:
        await conn.close()


async def test_a_closed_connection_refuses_work_and_closing_twice_is_fine(tmp_path: Path) -> None:
    conn = await SQLiteThread.connect(tmp_path / "t.db")
    # Tasks start in the order gather makes them: the work is queued before the close.
    result, _ = await asyncio.gather(
        conn.run(lambda c: c.execute("SELECT 1").fetchone()), conn.close()
    )
    assert result == (1,)  # work queued before the close still runs
    with pytest.raises(LogClosed):
        await conn.run(lambda c: c.execute("SELECT 1"))
    await conn.close()


async def test_a_file_that_cannot_be_opened_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="cannot open"):
        await SQLiteThread.connect(tmp_path / "missing-dir" / "t.db")


def test_a_loop_closed_under_running_work_ends_the_thread_and_closes_its_connection(
    tmp_path: Path,
) -> None:
    """A program that closes its event loop without closing the log: the work
    running then has nobody to answer, and the thread must not be left behind."""
    loop = asyncio.new_event_loop()
    started, release = threading.Event(), threading.Event()

    def slow(c: sqlite3.Connection) -> int:
        started.set()
        release.wait(10)
        return 1

    async def begin() -> tuple[SQLiteThread, asyncio.Future[int]]:
        conn = await SQLiteThread.connect(tmp_path / "t.db")
        pending = asyncio.ensure_future(conn.run(slow))
        await asyncio.to_thread(started.wait, 10)
        return conn, pending

    conn, pending = loop.run_until_complete(begin())
    pending.cancel()
    loop.run_until_complete(asyncio.gather(pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()
    release.set()
    conn._thread.join(10)
    assert not conn._thread.is_alive()
