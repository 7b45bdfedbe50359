"""Events packed into one blob and one JSON index store exactly what a plain INSERT does."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec

from eventlog.storage import sqlite_ops as ops
from eventlog.storage.base import PendingEvent
from eventlog.storage.sqlite_packed import json_available, pack
from eventlog.storage.sqlite_schema import prepare_writer

EVENTS = [
    PendingEvent(
        id="01a2-first", id_given=False, type="order.created", key=None, headers={}, data=b"{}"
    ),
    PendingEvent(
        id="second",
        id_given=False,
        type='tip\u00e9 \u2603 "quoted" \\ \n',
        key="tenant-7:call-42 \U0001f600",
        headers={"trace": "abc", "\u00e9": "\t"},
        data=b'{ "spaced" : [1, 2.50, "\\u00e9"] }',
    ),
    PendingEvent(id="third", id_given=False, type="t", key="", headers={}, data=b"[1,2,3]"),
]


def test_pack_lays_out_data_then_headers_and_indexes_them() -> None:
    packed = pack(EVENTS)
    assert packed.count == 3
    assert packed.nbytes == sum(len(e.data) for e in EVENTS)
    index = msgspec.json.decode(packed.index)
    headers = msgspec.json.encode(EVENTS[1].headers)
    assert index[0] == ["01a2-first", "order.created", None, 1, 2, 0]
    assert index[1][3:] == [3, len(EVENTS[1].data), len(headers)]
    start = index[1][3] - 1
    assert packed.blob[start : start + index[1][4]] == EVENTS[1].data
    assert packed.blob[start + index[1][4] :].startswith(headers)


def rows(path: Path, packed: bool) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path, isolation_level=None)
    prepare_writer(conn, path, "off")
    assert json_available(conn)
    with_packing = {"s": pack(EVENTS)} if packed else None
    assert ops.append_generated(conn, {"s": EVENTS}, 1_000, with_packing) == {"s": 0}
    more = PendingEvent(id="fourth", id_given=False, type="t", key=None, headers={}, data=b"4")
    assert ops.append_generated(conn, {"s": [more]}, 2_000, None) == {"s": 3}
    found = conn.execute(
        "SELECT stream, offset, id, type, key, time_us, headers, data, typeof(headers), "
        "typeof(data), typeof(id) FROM events ORDER BY offset"
    ).fetchall()
    conn.close()
    return found


def test_packed_insert_stores_the_rows_a_plain_insert_stores(tmp_path: Path) -> None:
    plain = rows(tmp_path / "plain.db", packed=False)
    packed = rows(tmp_path / "packed.db", packed=True)
    assert packed == plain
    assert packed[1][4] == "tenant-7:call-42 \U0001f600"
    assert packed[1][6] == msgspec.json.encode(EVENTS[1].headers)
    assert packed[0][6] is None
    assert packed[1][8:] == ("blob", "blob", "text")
