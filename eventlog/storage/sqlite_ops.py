"""The statements behind each SQLite storage call, run on a connection's worker thread.

Each function takes a plain :class:`sqlite3.Connection` and does one call's
whole work, so :class:`~eventlog.storage.sqlite.SQLiteStorage` pays one
thread hop per call. Write functions expect to run inside a transaction the
caller opened. The appends live in :mod:`eventlog.storage.sqlite_append`
(re-exported here).
"""

from __future__ import annotations

import sqlite3

import msgspec

from eventlog.errors import CorruptDatabase, StorageError
from eventlog.model import ConsumerInfo, Event, Retention, StreamInfo
from eventlog.repair import lenient_event
from eventlog.storage.rows import STREAM_COLUMNS, events_from_rows, from_us, stream_info, to_us
from eventlog.storage.sqlite_append import append, append_generated, append_in

__all__ = [
    "append",
    "append_generated",
    "append_in",
    "consumers",
    "delete_stream",
    "from_us",
    "get_offset",
    "offset_at_time",
    "offset_for_bytes",
    "read_events",
    "set_offset",
    "set_retention",
    "stream_infos",
    "to_us",
    "translate",
    "trim",
]


def translate(exc: sqlite3.Error) -> StorageError:
    """Map a sqlite3 exception to the eventlog error tree."""
    message = str(exc)
    if "not a database" in message or "malformed" in message:
        return CorruptDatabase(f"not a usable eventlog database: {message}")
    return StorageError(f"sqlite: {message}")


def set_retention(conn: sqlite3.Connection, stream: str, retention: Retention) -> None:
    """Store a stream's retention policy, creating the stream row if needed."""
    conn.execute(
        "INSERT INTO streams (name, next_offset, max_age, max_count, max_bytes, protect, "
        "max_hold) VALUES (?, 0, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
        "max_age = excluded.max_age, max_count = excluded.max_count, "
        "max_bytes = excluded.max_bytes, protect = excluded.protect, "
        "max_hold = excluded.max_hold",
        (
            stream,
            retention.max_age,
            retention.max_count,
            retention.max_bytes,
            int(retention.protect),
            retention.max_hold,
        ),
    )


def trim(conn: sqlite3.Connection, stream: str, before: int) -> int:
    """Delete events below ``before``, move the low watermark; how many went."""
    row = conn.execute(
        "SELECT first_offset, next_offset FROM streams WHERE name = ?", (stream,)
    ).fetchone()
    if row is None or before <= row[0]:
        return 0
    upto = min(before, row[1])
    count, nbytes = conn.execute(
        "SELECT count(*), coalesce(sum(length(data)), 0) FROM events "
        "WHERE stream = ? AND offset < ?",
        (stream, upto),
    ).fetchone()
    conn.execute("DELETE FROM events WHERE stream = ? AND offset < ?", (stream, upto))
    conn.execute(
        "UPDATE streams SET first_offset = ?, bytes = bytes - ? WHERE name = ?",
        (upto, nbytes, stream),
    )
    return int(count)


def delete_stream(conn: sqlite3.Connection, stream: str) -> bool:
    """Delete a stream with its events and consumer offsets; False if it did not exist."""
    conn.execute("DELETE FROM events WHERE stream = ?", (stream,))
    conn.execute("DELETE FROM consumer_offsets WHERE stream = ?", (stream,))
    return conn.execute("DELETE FROM streams WHERE name = ?", (stream,)).rowcount > 0


def set_offset(
    conn: sqlite3.Connection, consumer: str, stream: str, offset: int, now_us: int
) -> None:
    """Store a consumer offset inside a transaction opened by :meth:`SQLiteStorage.transact`."""
    conn.execute(
        "INSERT INTO consumer_offsets (name, stream, offset, updated_us) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (name, stream) DO UPDATE SET offset = excluded.offset, "
        "updated_us = excluded.updated_us",
        (consumer, stream, offset, now_us),
    )


_READ = "SELECT offset, {} FROM events WHERE stream = ? AND offset >= ? ORDER BY offset LIMIT ?"
_READ_TEXT = _READ.format("id, type, key, time_us, headers, data")
_READ_BYTES = _READ.format(
    "CAST(id AS BLOB), CAST(type AS BLOB), CAST(key AS BLOB), time_us, headers, data"
)


def read_events(conn: sqlite3.Connection, stream: str, start: int, limit: int) -> list[Event]:
    """Read a page of events; one whose text or headers are not UTF-8 comes back repaired."""
    try:
        return _read_events(conn, stream, start, limit)
    except (sqlite3.OperationalError, msgspec.DecodeError) as exc:
        if isinstance(exc, sqlite3.OperationalError) and "decode" not in str(exc):
            raise
    # A row written by an older version, or by hand: its text read as bytes, repaired.
    rows = conn.execute(_READ_BYTES, (stream, start, limit)).fetchall()
    return [lenient_event(stream, row) for row in rows]


def _read_events(conn: sqlite3.Connection, stream: str, start: int, limit: int) -> list[Event]:
    rows = conn.execute(_READ_TEXT, (stream, start, limit)).fetchall()
    return events_from_rows(stream, rows)


_STREAM_SELECT = f"SELECT {STREAM_COLUMNS} FROM streams"


def stream_infos(conn: sqlite3.Connection, stream: str | None = None) -> list[StreamInfo]:
    """One stream's info (a list of at most one), or every stream's, by name."""
    if stream is not None:
        rows = conn.execute(_STREAM_SELECT + " WHERE name = ?", (stream,))
    else:
        rows = conn.execute(_STREAM_SELECT + " ORDER BY name")
    return [stream_info(row) for row in rows]


def offset_at_time(conn: sqlite3.Connection, stream: str, target_us: int) -> int:
    """The first offset appended at or after ``target_us`` (the head if none)."""
    row = conn.execute(
        "SELECT first_offset, next_offset FROM streams WHERE name = ?", (stream,)
    ).fetchone()
    if row is None:
        return 0
    lo, hi = row
    # Time is monotonic within a stream, so binary search by offset.
    while lo < hi:
        mid = (lo + hi) // 2
        t = conn.execute(
            "SELECT time_us FROM events WHERE stream = ? AND offset = ?", (stream, mid)
        ).fetchone()
        if t is None or t[0] < target_us:
            lo = mid + 1
        else:
            hi = mid
    return int(lo)


def offset_for_bytes(conn: sqlite3.Connection, stream: str, max_bytes: int) -> int:
    """The smallest offset from which the newest events hold at most ``max_bytes``."""
    row = conn.execute("SELECT first_offset FROM streams WHERE name = ?", (stream,)).fetchone()
    if row is None:
        return 0
    total = 0
    cursor = conn.execute(
        "SELECT offset, length(data) FROM events WHERE stream = ? ORDER BY offset DESC",
        (stream,),
    )
    for offset, size in cursor:
        total += size
        if total > max_bytes:
            return int(offset) + 1
    return int(row[0])


def get_offset(conn: sqlite3.Connection, consumer: str, stream: str) -> int | None:
    """A consumer's committed offset on a stream, or None."""
    row = conn.execute(
        "SELECT offset FROM consumer_offsets WHERE name = ? AND stream = ?",
        (consumer, stream),
    ).fetchone()
    return None if row is None else int(row[0])


def consumers(conn: sqlite3.Connection) -> list[ConsumerInfo]:
    """Every committed consumer position, by name then stream."""
    return [
        ConsumerInfo(name=n, stream=s, offset=o, updated=from_us(u))
        for n, s, o, u in conn.execute(
            "SELECT name, stream, offset, updated_us FROM consumer_offsets ORDER BY name, stream"
        )
    ]
