"""One stream's new events packed into two SQL parameters (sans-I/O).

Binding eight parameters per event holds Python's GIL on the writer thread for
the whole binding, and the event loop waits for it. Packed, a stream's events
become one blob (every payload and headers, back to back) and one small JSON
array (id, type, key and where each event's bytes start), so the INSERT binds
five values and SQLite unpacks the rest in C with ``json_each`` and
``substr`` while the GIL is free. :func:`pack` runs on the event loop, before
the transaction is handed to the writer thread; the stored rows are exactly
those of a plain INSERT (the blobs byte for byte).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import msgspec

from eventlog.storage.base import PendingEvent

__all__ = ["INSERT_PACKED", "Packed", "json_available", "pack"]

_encode = msgspec.json.encode

#: ?1 stream, ?2 first offset, ?3 time, ?4 the blob, ?5 the JSON array of
#: [id, type, key, start (1-based), data length, headers length] per event.
INSERT_PACKED = (
    "INSERT INTO events (stream, offset, id, type, key, time_us, headers, data) "
    "SELECT ?1, ?2 + e.key, json_extract(e.value, '$[0]'), json_extract(e.value, '$[1]'), "
    "json_extract(e.value, '$[2]'), ?3, "
    "CASE WHEN json_extract(e.value, '$[5]') > 0 THEN substr(?4, "
    "json_extract(e.value, '$[3]') + json_extract(e.value, '$[4]'), "
    "json_extract(e.value, '$[5]')) END, "
    "substr(?4, json_extract(e.value, '$[3]'), json_extract(e.value, '$[4]')) "
    "FROM json_each(?5) AS e"
)


class Packed(msgspec.Struct, frozen=True, gc=False):
    """A stream's events as :data:`INSERT_PACKED` takes them.

    Attributes:
        blob: Every event's data then its encoded headers, back to back.
        index: JSON array, one entry per event, in order.
        count: Number of events.
        nbytes: Payload (data) bytes.
    """

    blob: bytes
    index: bytes
    count: int
    nbytes: int


def pack(events: Sequence[PendingEvent]) -> Packed:
    """Pack one stream's events, in order."""
    parts: list[bytes] = []
    index: list[tuple[str, str, str | None, int, int, int]] = []
    start = 1  # SQL's substr counts from 1
    nbytes = 0
    encode = _encode
    for e in events:
        data = e.data
        size = len(data)
        parts.append(data)
        if e.headers:
            headers = encode(e.headers)
            parts.append(headers)
            index.append((e.id, e.type, e.key, start, size, len(headers)))
            start += size + len(headers)
        else:
            index.append((e.id, e.type, e.key, start, size, 0))
            start += size
        nbytes += size
    return Packed(b"".join(parts), encode(index), len(index), nbytes)


def json_available(conn: sqlite3.Connection) -> bool:
    """Whether this SQLite has the JSON functions :data:`INSERT_PACKED` needs."""
    try:
        conn.execute("SELECT count(*) FROM json_each('[1]')").fetchone()
    except sqlite3.OperationalError:
        return False
    return True
