"""The SQLite writer remembers stream heads, and never trusts a stale one."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec

from eventlog import EventLog
from eventlog.storage import sqlite_ops as ops
from eventlog.storage.base import PendingEvent
from eventlog.storage.sqlite_packed import pack
from eventlog.storage.sqlite_schema import prepare_writer


def events(n: int, tag: str) -> list[PendingEvent]:
    return [
        PendingEvent(id=f"{tag}-{i}", id_given=False, type="t", key=None, headers={}, data=b"[1]")
        for i in range(n)
    ]


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    prepare_writer(conn, path, "off")
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


def test_a_remembered_head_skips_the_select(tmp_path: Path) -> None:
    conn = connect(tmp_path / "log.db")
    known: dict[str, tuple[int, int]] = {}
    assert append(conn, known, 3, "a", 1_000) == 0
    assert known == {"s": (3, 1_000)}
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    assert append(conn, known, 2, "b", 2_000) == 3
    conn.set_trace_callback(None)
    assert [s.split()[0] for s in statements] == ["BEGIN", "INSERT", "UPDATE", "COMMIT"]
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
