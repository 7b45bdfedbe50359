"""One stream's new events packed into a few SQL parameters (sans-I/O).

Binding eight parameters per event holds Python's GIL on the writer thread for
the whole binding, and the event loop waits for it. Packed, a stream's events
become one blob (every payload and headers, back to back) and one small JSON
array (per event: its id and where its bytes are), so the INSERT binds a
handful of values and SQLite unpacks the rest in C with ``json_each`` and
``substr`` while the GIL is free. :func:`pack` runs on the event loop, before
the transaction is handed to the writer thread; the stored rows are exactly
those of a plain INSERT (the blobs byte for byte).

What every event shares stays out of the index: a type all of them have is
one parameter, and keys and headers columns are only unpacked when some event
has one. Each of the four shapes is its own statement, prepared once.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence

import msgspec

from eventlog.storage.base import PendingEvent

__all__ = ["STALE_HEAD", "Packed", "install_alone", "json_available", "pack"]

_encode = msgspec.json.encode


@functools.cache
def insert_sql(shared_type: bool, extras: bool) -> str:
    """The INSERT of a packed stream.

    Parameters: ?1 stream, ?2 first offset, ?3 time, ?4 the blob, ?5 the JSON
    index, and ?6 the type when every event has it (``shared_type``). Index
    entries: ``[id, type?, key?, start, data length, headers length?]``, the
    optional fields present when the types differ or (``extras``) some event
    has a key or headers; ``start`` counts from 1, as ``substr`` does.
    """
    fields = ["id"] + ([] if shared_type else ["type"]) + (["key"] if extras else [])
    fields += ["start", "size"] + (["headers"] if extras else [])

    def at(name: str) -> str:
        return f"json_extract(e.value, '$[{fields.index(name)}]')"

    start, size = at("start"), at("size")
    if extras:
        headers = (
            f"CASE WHEN {at('headers')} > 0 THEN substr(?4, {start} + {size}, {at('headers')}) END"
        )
    return (
        "INSERT INTO events (stream, offset, id, type, key, time_us, headers, data) "
        f"SELECT ?1, ?2 + e.key, {at('id')}, {'?6' if shared_type else at('type')}, "
        f"{at('key') if extras else 'NULL'}, ?3, {headers if extras else 'NULL'}, "
        f"substr(?4, {start}, {size}) FROM json_each(?5) AS e"
    )


#: The columns of the temporary view whose INSERT appends one packed stream alone.
_ALONE_COLUMNS = "stream, first, time_us, blob, idx, type, n, nbytes"


def _alone_view(shared_type: bool, extras: bool) -> str:
    return f"packed_alone_{int(shared_type)}{int(extras)}"


def install_alone(conn: sqlite3.Connection) -> None:
    """Create, on this connection only, what :meth:`Packed.insert_alone` inserts into.

    One temporary view per shape, whose ``INSTEAD OF INSERT`` trigger inserts
    the events (:func:`insert_sql`) and moves the stream's head, guarded by
    the head the caller expected: when no head moved, ``RAISE(ABORT)`` undoes
    the statement. Nothing is stored in the database file.
    """
    names = {"?1": "NEW.stream", "?2": "NEW.first", "?3": "NEW.time_us", "?4": "NEW.blob"}
    names |= {"?5": "NEW.idx", "?6": "NEW.type"}
    for shared_type in (False, True):
        for extras in (False, True):
            view = _alone_view(shared_type, extras)
            insert = insert_sql(shared_type, extras)
            for param, column in names.items():
                insert = insert.replace(param, column)
            conn.execute(
                f"CREATE TEMP VIEW IF NOT EXISTS {view} ({_ALONE_COLUMNS}) "
                "AS SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL WHERE 0"
            )
            conn.execute(
                f"CREATE TEMP TRIGGER IF NOT EXISTS {view}_insert INSTEAD OF INSERT ON {view} "
                f"BEGIN {insert}; "
                "UPDATE streams SET next_offset = NEW.first + NEW.n, "
                "bytes = bytes + NEW.nbytes, last_time_us = NEW.time_us "
                "WHERE name = NEW.stream AND next_offset = NEW.first; "
                f"SELECT RAISE(ABORT, '{STALE_HEAD}') WHERE changes() = 0; END"
            )


#: The error message of an :meth:`Packed.insert_alone` whose expected head was stale.
STALE_HEAD = "eventlog: the head of the stream moved"


class Packed(msgspec.Struct, frozen=True, gc=False):
    """A stream's events as :func:`insert_sql` takes them.

    Attributes:
        blob: Every event's data, then its encoded headers if any, back to back.
        index: The JSON index, one entry per event, in order.
        type: The type every event has, or None when they differ.
        extras: Whether some event has a key or headers.
        count: Number of events.
        nbytes: Payload (data) bytes.
    """

    blob: bytes
    index: bytes
    type: str | None
    extras: bool
    count: int
    nbytes: int

    def insert(self, stream: str, first: int, time_us: int) -> tuple[str, tuple[object, ...]]:
        """The statement and parameters that insert these events at ``first``."""
        sql = insert_sql(self.type is not None, self.extras)
        params = (stream, first, time_us, self.blob, self.index)
        return sql, params if self.type is None else (*params, self.type)

    def insert_alone(self, stream: str, first: int, time_us: int) -> tuple[str, tuple[object, ...]]:
        """One statement that appends these events at ``first`` and moves the head
        from ``first``, or fails with :data:`STALE_HEAD` (needs :func:`install_alone`).

        Run outside a transaction it is a whole transaction, commit included,
        in one step of SQLite: the writer thread lets go of the GIL once.
        """
        sql = f"INSERT INTO {_alone_view(self.type is not None, self.extras)} VALUES "
        params = (stream, first, time_us, self.blob, self.index, self.type, self.count)
        return sql + "(?, ?, ?, ?, ?, ?, ?, ?)", (*params, self.nbytes)


def pack(events: Sequence[PendingEvent]) -> Packed:
    """Pack one stream's events, in order."""
    first_type = events[0].type
    shared_type = all(e.type == first_type for e in events)
    extras = any(e.key is not None or e.headers for e in events)
    parts: list[bytes] = []
    index: list[tuple[object, ...]] = []
    add_part, add_entry = parts.append, index.append
    start = 1
    nbytes = 0
    if extras:
        encode = _encode
        for e in events:
            headers = encode(e.headers) if e.headers else b""
            add_part(e.data)
            add_part(headers)
            size, more = len(e.data), len(headers)
            nbytes += size
            if shared_type:
                add_entry((e.id, e.key, start, size, more))
            else:
                add_entry((e.id, e.type, e.key, start, size, more))
            start += size + more
    else:
        for e in events:
            add_part(e.data)
            size = len(e.data)
            nbytes += size
            add_entry((e.id, start, size) if shared_type else (e.id, e.type, start, size))
            start += size
    return Packed(
        b"".join(parts),
        _encode(index),
        first_type if shared_type else None,
        extras,
        len(index),
        nbytes,
    )


def json_available(conn: sqlite3.Connection) -> bool:
    """Whether this SQLite has the JSON functions the packed INSERT needs."""
    try:
        conn.execute("SELECT json_extract(value, '$[0]') FROM json_each('[[1]]')").fetchone()
    except sqlite3.OperationalError:
        return False
    return True
