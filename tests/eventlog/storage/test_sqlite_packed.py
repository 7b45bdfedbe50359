"""Events packed into one blob and one JSON index store exactly what a plain INSERT does."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec
import pytest

from eventlog.storage import sqlite_ops as ops
from eventlog.storage.base import PendingEvent
from eventlog.storage.sqlite_packed import json_available, pack
from eventlog.storage.sqlite_schema import prepare_writer


def ev(
    n: int, type: str = "t", key: str | None = None, headers: dict[str, str] | None = None
) -> PendingEvent:
    data = b'{ "spaced" : [1, 2.50, "\\u00e9"] }' if n % 2 else b"[%d]" % n
    return PendingEvent(
        id=f"id-{n}", id_given=False, type=type, key=key, headers=headers or {}, data=data
    )


TRICKY_TYPE = 'tip\u00e9 \u2603 "quoted" \\ \n'
SHAPES = {
    "one type, no keys or headers": [ev(0), ev(1), ev(2)],
    "types differ": [ev(0, "a"), ev(1, TRICKY_TYPE), ev(2, "a")],
    "one type, a key and headers": [
        ev(0),
        ev(1, key="tenant-7:call-42 \U0001f600"),
        ev(2, headers={"trace": "abc", "\u00e9": "\t"}),
        ev(3, key=""),
    ],
    "everything differs": [
        ev(0, "a", key="k"),
        ev(1, TRICKY_TYPE, headers={"h": "1"}),
        ev(2, "c"),
    ],
}


@pytest.mark.parametrize("events", SHAPES.values(), ids=SHAPES.keys())
def test_packed_insert_stores_the_rows_a_plain_insert_stores(
    tmp_path: Path, events: list[PendingEvent]
) -> None:
    def rows(name: str, packed: bool) -> list[tuple[object, ...]]:
        path = tmp_path / name
        conn = sqlite3.connect(path, isolation_level=None)
        prepare_writer(conn, path, "off")
        assert json_available(conn)
        with_packing = {"s": pack(events)} if packed else None
        assert ops.append_generated(conn, {"s": events}, 1_000, with_packing) == {"s": 0}
        found = conn.execute(
            "SELECT stream, offset, id, type, key, time_us, headers, data, typeof(headers), "
            "typeof(data), typeof(id), typeof(key) FROM events ORDER BY offset"
        ).fetchall()
        info = conn.execute("SELECT next_offset, bytes FROM streams").fetchall()
        conn.close()
        return [*found, *info]

    assert rows("packed.db", True) == rows("plain.db", False)


def test_pack_keeps_shared_fields_out_of_the_index() -> None:
    plain = pack(SHAPES["one type, no keys or headers"])
    assert (plain.type, plain.extras, plain.count) == ("t", False, 3)
    assert msgspec.json.decode(plain.index) == [["id-0", 1, 3], ["id-1", 4, 34], ["id-2", 38, 3]]
    assert plain.blob == b"".join(e.data for e in SHAPES["one type, no keys or headers"])
    full = pack(SHAPES["everything differs"])
    assert (full.type, full.extras) == (None, True)
    assert msgspec.json.decode(full.index)[1] == ["id-1", TRICKY_TYPE, None, 4, 34, 9]  # {"h":"1"}
    assert full.nbytes == 3 + 34 + 3
