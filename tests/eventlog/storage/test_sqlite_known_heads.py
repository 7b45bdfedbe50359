"""The SQLite writer remembers stream heads, and never trusts a stale one."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import msgspec
import pytest

from eventlog import EventLog
from eventlog.storage import sqlite_ops as ops
from eventlog.storage.base import PendingEvent
from eventlog.storage.sqlite_packed import install_alone, pack
from eventlog.storage.sqlite_schema import prepare_writer


def events(n: int, tag: str) -> list[PendingEvent]:
    return [
        PendingEvent(id=f"{tag}-{i}", id_given=False, type="t", key=None, headers={}, data=b"[1]")
        for i in range(n)
    ]


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    prepare_writer(conn, path, "off")
    install_alone(conn)
    return conn


def append(
    conn: sqlite3.Connection, known: dict[str, tuple[int, int]], n: int, tag: str, now: int
) -> int:
    batch = events(n, tag)
    return ops.append_generated(conn, {"s": batch}, now, {"s": pack(batch)}, known)["s"]


def stored(conn: sqlite3.Connection) -> tuple[list[int], tuple[int, int, int]]:
    offsets = [r[0] for r in conn.execute("SELECT offset FROM events ORDER BY offset")]
    head = conn.execute("SELECT next_offset, bytes, last_time_us FROM streams").fetchone()
    return offsets, head


def test_a_remembered_head_makes_the_append_one_statement(tmp_path: Path) -> None:
    conn = connect(tmp_path / "log.db")
    known: dict[str, tuple[int, int]] = {}
    assert append(conn, known, 3, "a", 1_000) == 0
    assert known == {"s": (3, 1_000)}
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    assert append(conn, known, 2, "b", 2_000) == 3
    conn.set_trace_callback(None)
    # One statement, its own transaction (its trigger's steps are traced as it)
    assert {s.split(" VALUES")[0] for s in statements} == {"INSERT INTO packed_alone_10"}
    assert not conn.in_transaction
    assert stored(conn) == ([0, 1, 2, 3, 4], (5, 15, 2_000))


def test_another_writer_moving_the_stream_is_seen_and_nothing_is_lost(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    one, two = connect(path), connect(path)
    mine: dict[str, tuple[int, int]] = {}
    theirs: dict[str, tuple[int, int]] = {}
    firsts = []
    for round_ in range(6):  # each remembers a head the other has since moved
        firsts.append(append(one, mine, 2, f"one{round_}", 1_000 + round_))
        firsts.append(append(two, theirs, 3, f"two{round_}", 500))
    assert firsts == [0, 2, 5, 7, 10, 12, 15, 17, 20, 22, 25, 27]
    offsets, head = stored(one)
    assert offsets == list(range(30))
    assert head == (30, 90, 1_005)  # the other's clock ran behind: time did not go back
    times = [r[0] for r in one.execute("SELECT time_us FROM events ORDER BY offset")]
    assert times == sorted(times)


def test_a_deleted_stream_is_not_continued_from_its_remembered_head(tmp_path: Path) -> None:
    conn = connect(tmp_path / "log.db")
    known: dict[str, tuple[int, int]] = {}
    append(conn, known, 4, "a", 1_000)
    conn.execute("BEGIN IMMEDIATE")
    assert ops.delete_stream(conn, "s")
    conn.execute("COMMIT")
    assert append(conn, known, 2, "b", 2_000) == 0
    assert stored(conn) == ([0, 1], (2, 6, 2_000))
    assert known == {"s": (2, 2_000)}


async def test_two_logs_on_one_file_append_to_one_stream_without_gaps(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    async with EventLog.open(path) as first, EventLog.open(path) as second:
        got = []
        for i in range(5):
            got.append(await first.append("s", {"n": 2 * i}, type="t"))
            got.append(await second.append("s", {"n": 2 * i + 1}, type="t"))
        assert got == list(range(10))
        read = await first.read("s", 0, limit=100)
    assert [e.offset for e in read] == list(range(10))
    assert [msgspec.json.decode(e.data)["n"] for e in read] == list(range(10))


async def test_many_producers_get_every_offset_once_and_it_is_all_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    async with EventLog.open(path) as log:

        async def producer(p: int) -> list[int]:
            return [await log.append("s", {"p": p, "i": i}, type="t") for i in range(20)]

        got = await asyncio.gather(*(producer(p) for p in range(128)))
        assert log.writer_stats["transactions"] < 128 * 20  # group-committed
    assert sorted(o for offsets in got for o in offsets) == list(range(128 * 20))
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT offset, data FROM events ORDER BY offset").fetchall()
    head = conn.execute("SELECT next_offset, bytes FROM streams WHERE name = 's'").fetchone()
    conn.close()
    assert [r[0] for r in rows] == list(range(128 * 20))
    assert head == (128 * 20, sum(len(r[1]) for r in rows))
    for p, offsets in enumerate(got):  # each producer's events where it was told they are
        assert [msgspec.json.decode(rows[o][1]) for o in offsets] == [
            {"p": p, "i": i} for i in range(20)
        ]


async def test_two_logs_appending_at_once_to_one_stream_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    async with EventLog.open(path) as first, EventLog.open(path) as second:

        async def producer(log: EventLog, tag: str) -> list[int]:
            return [await log.append("s", {"t": tag, "i": i}, type="t") for i in range(25)]

        got = await asyncio.gather(
            *(producer(log, f"{n}-{p}") for n, log in enumerate((first, second)) for p in range(16))
        )
        events = await first.read("s", 0, limit=1000)
    offsets = sorted(o for producer_offsets in got for o in producer_offsets)
    assert offsets == list(range(2 * 16 * 25))  # every offset once: no gap, no overwrite
    assert [e.offset for e in events] == offsets
    seen = {(d["t"], d["i"]) for d in (msgspec.json.decode(e.data) for e in events)}
    assert len(seen) == len(events)


def test_a_busy_database_is_not_written_over_and_the_next_append_reads_the_head(
    tmp_path: Path,
) -> None:
    path = tmp_path / "log.db"
    mine, other = connect(path), connect(path)
    known: dict[str, tuple[int, int]] = {}
    append(mine, known, 2, "a", 1_000)
    mine.execute("PRAGMA busy_timeout = 0")
    other.execute("BEGIN IMMEDIATE")  # another writer holds the database
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        append(mine, known, 1, "b", 3_000)
    assert known == {}  # nothing trusted after a failure
    other.execute("ROLLBACK")
    assert ops.append_generated(other, {"s": events(3, "other")}, 2_000) == {"s": 2}
    assert append(mine, known, 1, "c", 4_000) == 5  # the head the other writer left
    assert stored(mine) == ([0, 1, 2, 3, 4, 5], (6, 18, 4_000))
