"""The statements behind each SQLite storage call, run on a connection's worker thread.

Each function takes a plain :class:`sqlite3.Connection` and does one call's
whole work, so :class:`~eventlog.storage.sqlite.SQLiteStorage` pays one
thread hop per call. Write functions expect to run inside a transaction the
caller opened, except :func:`append` which owns its transaction.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Mapping, Sequence

import msgspec

from eventlog.errors import CorruptDatabase, StorageError
from eventlog.model import ConsumerInfo, Event, Retention, StreamInfo
from eventlog.repair import lenient_event
from eventlog.storage.base import AppendOutcome, AppendRequest, PendingEvent
from eventlog.storage.planner import given_ids, plan_appends
from eventlog.storage.rows import STREAM_COLUMNS, events_from_rows, from_us, stream_info, to_us
from eventlog.storage.sqlite_packed import Packed

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

_UPSERT_HEAD = (
    "INSERT INTO streams (name, next_offset, bytes, last_time_us) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (name) DO UPDATE SET next_offset = excluded.next_offset, "
    "bytes = bytes + excluded.bytes, last_time_us = excluded.last_time_us"
)
_ID_CHUNK = 500
_CHUNK_ROWS = 256  # rows per INSERT statement at most (x 8 parameters)
_encode = msgspec.json.encode


def translate(exc: sqlite3.Error) -> StorageError:
    """Map a sqlite3 exception to the eventlog error tree."""
    message = str(exc)
    if "not a database" in message or "malformed" in message:
        return CorruptDatabase(f"not a usable eventlog database: {message}")
    return StorageError(f"sqlite: {message}")


def append(
    conn: sqlite3.Connection, requests: Sequence[AppendRequest], now_us: int
) -> list[AppendOutcome]:
    """One group-committed transaction: look up heads and ids, plan, insert, commit."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        return _append(conn, requests, now_us)
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


#: Advances a stream's head only if it is where this connection last left it.
_ADVANCE_HEAD = (
    "UPDATE streams SET next_offset = ?, bytes = bytes + ?, last_time_us = ? "
    "WHERE name = ? AND next_offset = ?"
)
#: Streams whose heads a connection remembers at most (then it forgets them all).
KNOWN_HEADS = 10_000


#: SQLITE_BUSY and SQLITE_LOCKED: another connection holds the database.
_BUSY = (5, 6)


class _StaleHead(Exception):
    """A remembered head was not the stored one: another writer moved the stream."""


def append_generated(
    conn: sqlite3.Connection,
    streams: Mapping[str, Sequence[PendingEvent]],
    now_us: int,
    packed: Mapping[str, Packed] | None = None,
    known: dict[str, tuple[int, int]] | None = None,
) -> dict[str, int]:
    """One group-committed transaction of events with generated ids: nothing to
    look up but each stream's head; returns the first offset each stream got.

    With ``packed`` (each stream's events already :func:`~eventlog.storage.sqlite_packed.pack`-ed),
    each stream's rows go in with one GIL-light INSERT.

    ``known`` remembers each stream's ``(next_offset, last_time_us)`` as this
    connection's commits left them, so that a transaction skips the head's
    SELECT: every statement is a GIL release and re-take on the writer thread,
    and under load each re-take waits for the event loop's turn. A remembered
    head is checked where it is used: the head moves only ``WHERE next_offset``
    is the remembered one, and events inserted at a stale offset collide with
    the stored ones; either way (another process or connection appended,
    the stream was deleted) the transaction is rolled back and written again
    from the stored heads.
    """
    if packed is not None and known and len(streams) == 1 and not conn.in_transaction:
        alone = _append_alone(conn, streams, now_us, packed, known)
        if alone is not None:
            return alone
    conn.execute("BEGIN IMMEDIATE")
    try:
        try:
            firsts, heads = _append_generated(conn, streams, now_us, packed, known)
        except (_StaleHead, sqlite3.IntegrityError):
            if not known:
                raise
            conn.execute("ROLLBACK")
            known.clear()
            conn.execute("BEGIN IMMEDIATE")
            firsts, heads = _append_generated(conn, streams, now_us, packed, known)
        conn.execute("COMMIT")
    except BaseException:
        if known is not None:
            known.clear()
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    if known is not None:
        if len(known) > KNOWN_HEADS:
            known.clear()
        known.update(heads)
    return firsts


def _append_alone(
    conn: sqlite3.Connection,
    streams: Mapping[str, Sequence[PendingEvent]],
    now_us: int,
    packed: Mapping[str, Packed],
    known: dict[str, tuple[int, int]],
) -> dict[str, int] | None:
    """One stream whose head this connection remembers: the whole transaction is
    one statement (:meth:`~eventlog.storage.sqlite_packed.Packed.insert_alone`),
    so the writer thread takes the GIL back once instead of after each of four
    statements, where the event loop keeps it while it settles the last batch's
    producers. None when the general path has to do it: the head moved (the
    guard or the offsets' uniqueness refused it) or another connection held the
    database.
    """
    [(stream, events)] = streams.items()
    if (cached := known.get(stream)) is None:
        return None
    head, time_us = cached[0], max(now_us, cached[1])
    try:
        conn.execute(*packed[stream].insert_alone(stream, head, time_us))
    except sqlite3.Error as exc:
        known.clear()
        code = getattr(exc, "sqlite_errorcode", None) or 0  # None for driver-side errors
        if isinstance(exc, sqlite3.IntegrityError) or code & 0xFF in _BUSY:
            return None
        raise
    known[stream] = (head + len(events), time_us)
    return {stream: head}


def _append_generated(
    conn: sqlite3.Connection,
    streams: Mapping[str, Sequence[PendingEvent]],
    now_us: int,
    packed: Mapping[str, Packed] | None,
    known: Mapping[str, tuple[int, int]] | None,
) -> tuple[dict[str, int], dict[str, tuple[int, int]]]:
    """Insert the events and move the heads (no commit); the first offsets and the new heads."""
    firsts: dict[str, int] = {}
    heads: dict[str, tuple[int, int]] = {}
    params: list[object] = []
    read: list[tuple[str, int, int, int]] = []
    remembered: list[tuple[int, int, int, str, int]] = []
    for stream, events in streams.items():
        if known is None or (cached := known.get(stream)) is None:
            cached = None
            head, time_us = _head(conn, stream, now_us)
        else:
            # Time never goes backwards within a stream, even if the clock does.
            head, time_us = cached[0], max(now_us, cached[1])
        firsts[stream] = head
        if packed is None:
            nbytes = _add_params(params, stream, head, time_us, events)
        else:
            rows = packed[stream]
            conn.execute(*rows.insert(stream, head, time_us))
            nbytes = rows.nbytes
        end = head + len(events)
        heads[stream] = (end, time_us)
        if cached is None:
            read.append((stream, end, nbytes, time_us))
        else:
            remembered.append((end, nbytes, time_us, stream, head))
    if params:
        _insert_events(conn, params)
    if read:
        conn.executemany(_UPSERT_HEAD, read)
    if remembered and conn.executemany(_ADVANCE_HEAD, remembered).rowcount != len(remembered):
        raise _StaleHead
    return firsts, heads


def _head(conn: sqlite3.Connection, stream: str, now_us: int) -> tuple[int, int]:
    """A stream's next offset and the time its next events get."""
    row = conn.execute(
        "SELECT next_offset, last_time_us FROM streams WHERE name = ?", (stream,)
    ).fetchone()
    if row is None:
        return 0, now_us
    # Time never goes backwards within a stream, even if the clock does.
    return row[0], max(now_us, row[1] or 0)


def _add_params(
    params: list[object], stream: str, first: int, time_us: int, events: Sequence[PendingEvent]
) -> int:
    """Add the INSERT parameters of one stream's events (eight per row); their payload bytes."""
    add = params.extend
    encode = _encode
    nbytes = 0
    for offset, e in enumerate(events, first):
        add(
            (
                stream,
                offset,
                e.id,
                e.type,
                e.key,
                time_us,
                encode(e.headers) if e.headers else None,
                e.data,
            )
        )
        nbytes += len(e.data)
    return nbytes


def _append(
    conn: sqlite3.Connection, requests: Sequence[AppendRequest], now_us: int
) -> list[AppendOutcome]:
    outcomes, wrote = append_in(conn, requests, now_us)
    conn.execute("COMMIT" if wrote else "ROLLBACK")
    return outcomes


def append_in(
    conn: sqlite3.Connection, requests: Sequence[AppendRequest], now_us: int
) -> tuple[list[AppendOutcome], bool]:
    """Append inside a write transaction the caller holds (and commits); the
    outcomes, and whether anything was written."""
    heads: dict[str, int] = {}
    times: dict[str, int] = {}
    for stream in {r.stream for r in requests}:
        heads[stream], times[stream] = _head(conn, stream, now_us)
    existing: dict[tuple[str, str], int] = {}
    for stream, id_set in given_ids(requests).items():
        ids = list(id_set)
        for i in range(0, len(ids), _ID_CHUNK):
            chunk = ids[i : i + _ID_CHUNK]
            marks = ",".join("?" * len(chunk))
            for event_id, offset in conn.execute(
                f"SELECT id, offset FROM events WHERE stream = ? AND id IN ({marks})",
                (stream, *chunk),
            ):
                existing[(stream, event_id)] = offset
    plan = plan_appends(requests, heads, existing)
    if not plan.rows:
        return plan.outcomes, False
    by_stream: dict[str, tuple[int, list[PendingEvent]]] = {}
    for row in plan.rows:  # a stream's rows have consecutive offsets: its head on
        if (entry := by_stream.get(row.stream)) is None:
            entry = by_stream[row.stream] = (row.offset, [])
        entry[1].append(row.event)
    params: list[object] = []
    for stream, (first, events) in by_stream.items():
        _add_params(params, stream, first, times[stream], events)
    _insert_events(conn, params)
    conn.executemany(
        _UPSERT_HEAD,
        [(s, h, plan.added_bytes.get(s, 0), times[s]) for s, h in plan.heads.items()],
    )
    return plan.outcomes, True


@functools.cache
def _insert_sql(rows: int) -> str:
    return (
        "INSERT INTO events (stream, offset, id, type, key, time_us, headers, data) VALUES "
        + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * rows)
    )


def _insert_events(conn: sqlite3.Connection, params: list[object]) -> None:
    """Insert rows (``params``, eight per row) with at most a few multi-row INSERTs.

    One statement per chunk instead of ``executemany``'s one step per row:
    each step releases and re-takes the GIL, and under load re-taking it waits
    for the event loop thread (measured ~20% more group-commit throughput).
    Chunks are multiples of 16 rows up to 256, then the remainder below 16, so
    any batch of up to 256 rows takes at most two statements, and the distinct
    statements (32) stay in sqlite3's statement cache.
    """
    i, n = 0, len(params) // 8
    while i < n:
        left = n - i
        size = _CHUNK_ROWS if left >= _CHUNK_ROWS else (left & ~15 or left)
        conn.execute(_insert_sql(size), params if size == n else params[8 * i : 8 * (i + size)])
        i += size


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
