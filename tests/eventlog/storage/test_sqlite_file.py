"""The SQLite file itself: persistence, refusal of foreign, corrupt or newer files."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from eventlog import CorruptDatabase, EventLog, InvalidInput, LogClosed, SchemaTooNew
from eventlog.storage import sqlite_schema
from eventlog.storage.sqlite import APPLICATION_ID, SCHEMA_VERSION, SQLiteStorage
from eventlog.storage.sqlite_schema import PAGE_SIZE


async def test_events_and_offsets_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "e.db"
    async with EventLog.open(path) as log:
        await log.append("s", {"a": 1}, type="t", id="x")
        await log.consumer("c", "s").commit(1)
    async with EventLog.open(path) as log:
        (event,) = await log.read("s")
        assert (event.id, event.json()) == ("x", {"a": 1})
        assert await log.consumer("c", "s").poll(1) == []
        assert await log.append("s", 2, type="t") == 1


async def test_new_file_is_wal_full_sync_and_versioned(tmp_path: Path) -> None:
    path = tmp_path / "e.db"
    async with EventLog.open(path) as log:
        await log.append("s", 1, type="t")
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert conn.execute("PRAGMA page_size").fetchone()[0] == PAGE_SIZE
    conn.close()


async def test_a_file_made_with_another_page_size_keeps_it_and_its_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "e.db"
    monkeypatch.setattr(sqlite_schema, "PAGE_SIZE", 4096)  # as files made before 16 KiB pages
    async with EventLog.open(path) as log:
        await log.append("s", 1, type="t")
    monkeypatch.undo()
    async with EventLog.open(path) as log:
        await log.append("s", 2, type="t")
        assert [e.json() for e in await log.read("s")] == [1, 2]
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA page_size").fetchone()[0] == 4096
    conn.close()


async def refused_untouched(path: Path, match: str) -> None:
    """Opening ``path`` raises :class:`CorruptDatabase` and leaves the file as it was."""
    before = path.read_bytes()
    with pytest.raises(CorruptDatabase, match=match):
        async with EventLog.open(path):
            pass
    assert path.read_bytes() == before


async def test_file_that_is_not_a_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    content = b"these are my notes, not a database\n" * 200
    path.write_bytes(content)
    await refused_untouched(path, "not a usable eventlog database")


async def test_foreign_sqlite_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO users (name) VALUES ('ada')")
    conn.commit()
    conn.close()
    await refused_untouched(path, "something else")


async def test_database_from_a_newer_eventlog_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "e.db"
    async with EventLog.open(path) as log:
        await log.append("s", 1, type="t")
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaTooNew, match="upgrade eventlog"):
        async with EventLog.open(path):
            pass


async def test_truncated_database_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "e.db"
    async with EventLog.open(path) as log:
        await log.append_batch(
            "s", [__import__("eventlog").NewEvent(type="t", data="x" * 500) for _ in range(200)]
        )
    data = path.read_bytes()
    path.write_bytes(b"garbage!" * 16 + data[128:4096])
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    with pytest.raises(CorruptDatabase):
        async with EventLog.open(path) as log:
            await log.read("s")


async def test_closed_log_refuses_work(tmp_path: Path) -> None:
    log = await EventLog.open(tmp_path / "e.db")
    await log.close()
    await log.close()  # idempotent
    with pytest.raises(LogClosed):
        await log.append("s", 1, type="t")
    with pytest.raises(LogClosed):
        await log.read("s")


async def test_unknown_synchronous_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        EventLog.open(tmp_path / "e.db", synchronous="sometimes")


async def test_component_migrations_apply_in_order_once(tmp_path: Path) -> None:
    from eventlog.storage.sqlite import SQLiteStorage

    path = tmp_path / "e.db"
    v1 = [["CREATE TABLE things (id INTEGER PRIMARY KEY)"]]
    v2 = [*v1, ["ALTER TABLE things ADD COLUMN name TEXT"]]
    async with EventLog.open(path) as log:
        storage = log.storage
        assert isinstance(storage, SQLiteStorage)
        await storage.ensure_schema("things", v1)
        await storage.ensure_schema("things", v1)  # already there: nothing to do
        await storage.ensure_schema("things", v2)  # only the new step runs
        await storage.transact(lambda c: c.execute("INSERT INTO things (name) VALUES ('x')"))
        with pytest.raises(SchemaTooNew):
            await storage.ensure_schema("things", v1)


async def test_a_second_process_append_wakes_a_waiting_consumer(tmp_path: Path) -> None:
    """Two logs on one file (as two processes would be): the re-check finds the append."""
    import asyncio

    from tests.support import scaled, wait_until

    path = tmp_path / "shared.db"
    async with (
        EventLog.open(path, recheck_interval=0.05) as reader,
        EventLog.open(path) as writer,
    ):
        consumer = reader.consumer("c", "s")
        task = asyncio.create_task(consumer.poll(10, timeout=scaled(10)))
        # Parked on the head it read: only the re-check can find the append.
        await wait_until(lambda: reader.heads.parked("s") > 0, what="the poll parked")
        await writer.append("s", "from elsewhere", type="t")
        events = await asyncio.wait_for(task, scaled(5))
        assert [e.json() for e in events] == ["from elsewhere"]


async def test_two_logs_on_one_file_appending_at_once_keep_offsets_gapless(
    tmp_path: Path,
) -> None:
    """Two writers on one file (as two processes would be), each with bursts
    large enough to pipeline its transactions: no offset is lost or given twice."""
    import asyncio

    path = tmp_path / "shared.db"
    async with EventLog.open(path) as one, EventLog.open(path) as two:

        async def burst(log: EventLog, name: str) -> list[int]:
            return await asyncio.gather(
                *(log.append("s", f"{name}{i}", type="t") for i in range(300))
            )

        offsets = await asyncio.gather(burst(one, "a"), burst(two, "b"), burst(one, "c"))
        flat = [o for part in offsets for o in part]
        assert sorted(flat) == list(range(900))
        events = await one.read("s", 0, 1000)
        by_offset = {e.offset: e.json() for e in events}
        for name, part in zip("abc", offsets, strict=True):
            assert [by_offset[o] for o in part] == [f"{name}{i}" for i in range(300)]


def test_a_database_url_of_another_kind_is_refused_not_made_a_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidInput, match=r"unsupported database URL 'mysql://\.\.\.'"):
        EventLog.open("mysql://db.example/events")
    assert list(tmp_path.iterdir()) == []


async def test_a_reader_looping_over_small_reads_lets_other_tasks_run(tmp_path: Path) -> None:
    # Small reads run on the loop's own connection: each still yields to the loop.
    async with EventLog.open(tmp_path / "e.db") as log:
        await log.append_batch("s", [{"type": "t", "data": i} for i in range(10)])
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        for i in range(200):
            assert [e.offset for e in await log.read("s", i % 10, 1)] == [i % 10]
        task.cancel()
        assert ticks >= 150


async def test_a_log_used_from_another_thread_than_it_opened_on_still_reads(
    tmp_path: Path,
) -> None:
    storage = SQLiteStorage(tmp_path / "e.db")
    await storage.open()
    try:
        await asyncio.to_thread(asyncio.run, _append_and_read(storage))
    finally:
        await storage.close()


async def _append_and_read(storage: SQLiteStorage) -> None:
    async with EventLog(storage) as log:
        await log.append("s", 1, type="t")
        assert [e.json() for e in await log.read("s")] == [1]
