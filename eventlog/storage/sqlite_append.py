"""The SQLite appends, run on the writer connection's thread.

:func:`append` (any requests: given ids looked up, expected offsets checked)
and :func:`append_generated` (ids the log made: nothing to look up but the
heads) each own their transaction; :func:`append_in` appends inside one the
caller holds. Re-exported by :mod:`eventlog.storage.sqlite_ops`.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Mapping, Sequence

import msgspec

from eventlog.storage.base import AppendOutcome, AppendRequest, PendingEvent
from eventlog.storage.planner import given_ids, plan_appends
from eventlog.storage.sqlite_packed import Packed

__all__ = ["KNOWN_HEADS", "append", "append_generated", "append_in"]

_UPSERT_HEAD = (
    "INSERT INTO streams (name, next_offset, bytes, last_time_us) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (name) DO UPDATE SET next_offset = excluded.next_offset, "
    "bytes = bytes + excluded.bytes, last_time_us = excluded.last_time_us"
)
_ID_CHUNK = 500
_CHUNK_ROWS = 256  # rows per INSERT statement at most (x 8 parameters)
_encode = msgspec.json.encode


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
    from the stored heads. One stream with a remembered head is the common
    case and takes one statement (:func:`_append_alone`).
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
