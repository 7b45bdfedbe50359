"""Stored events that are not UTF-8, repaired for serving (pure functions)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import msgspec
import pytest

from eventlog.model import Event
from eventlog.repair import REPAIRED_HEADER, lenient_event, repair, repair_counts, repair_page
from eventlog.storage.rows import to_us

TIME = datetime(2026, 12, 6, 18, 0, tzinfo=UTC)


def event(data: bytes, offset: int = 2, **fields: object) -> Event:
    base: dict[str, object] = {"stream": "s", "offset": offset, "id": "i", "type": "t"}
    return Event(**{**base, **fields}, time=TIME, data=msgspec.Raw(data))  # type: ignore[arg-type]


def test_bad_bytes_inside_json_strings_become_u_fffd_and_the_event_is_flagged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = repair_counts().get("test", 0)
    with caplog.at_level(logging.WARNING, logger="eventlog"):
        fixed = repair(event(b'{"a": "caf\xe9", "b": [1, "\xff\xfe"]}', headers={"h": "v"}), "test")
    assert json.loads(bytes(fixed.data).decode("utf-8")) == {
        "a": "caf\ufffd",
        "b": [1, "\ufffd\ufffd"],
    }
    assert fixed.headers == {"h": "v", REPAIRED_HEADER: "utf-8"}
    assert (fixed.offset, fixed.type, fixed.time) == (2, "t", TIME)
    assert repair_counts()["test"] == before + 1
    assert "test: event s/2 is not UTF-8 in storage; sent repaired" in caplog.text


def test_data_still_not_json_after_repair_is_sent_as_a_json_string() -> None:
    fixed = repair(event(b"not json \xff"), "test")
    assert json.loads(bytes(fixed.data)) == "not json \ufffd"


def test_a_page_has_only_its_bad_events_repaired() -> None:
    good = event(b'{"n": 1}', offset=1)
    page = repair_page([good, event(b'"\xff"', offset=2), event('"é"'.encode(), offset=3)], "t")
    assert page[0] is good
    assert bytes(page[1].data) == '"\ufffd"'.encode()
    assert REPAIRED_HEADER not in page[2].headers
    assert bytes(page[2].data) == '"é"'.encode()


def test_a_row_with_text_and_headers_not_utf8_is_read_repaired_and_flagged() -> None:
    row = (3, b"id-\xff", b"bad\xff", None, to_us(TIME), b'{"h": "\xfe"}', b'{"n": 3}')
    e = lenient_event("s", row)
    assert (e.offset, e.id, e.type, e.key, e.time) == (3, "id-\ufffd", "bad\ufffd", None, TIME)
    assert e.headers == {"h": "\ufffd", REPAIRED_HEADER: "utf-8"}
    assert bytes(e.data) == b'{"n": 3}'


def test_a_good_row_read_on_the_slow_path_is_not_flagged() -> None:
    row = (1, b"id", "t", b"k\xc3\xa9", to_us(TIME), b'{"h": "v"}', b"1")
    e = lenient_event("s", row)
    assert (e.id, e.type, e.key, e.headers) == ("id", "t", "k\u00e9", {"h": "v"})
