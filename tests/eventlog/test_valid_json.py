"""Every event the embedded log takes is UTF-8 JSON: a ``msgspec.Raw`` payload is
checked (msgspec leaves the strings inside a Raw value unchecked), and the error
names the bad value's path, item included for a batch."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from eventlog import EventLog, EventTooLarge, InvalidEvent, NewEvent
from eventlog.encoding import json_problem, utf8_problem


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[EventLog]:
    async with EventLog.open(tmp_path / "events.db") as event_log:
        yield event_log


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'"\xff"', "not valid UTF-8 (byte 1)"),
        (b'{"a": "ok", "k\xc3": 1}', "not valid UTF-8 (byte 14)"),
        (b'["\xed\xa0\x80"]', "not valid UTF-8 (byte 2)"),  # a UTF-8-encoded surrogate
        (b"not json", "not valid JSON"),
        (b'{"a": 1', "not valid JSON"),
        (b"1 2", "not valid JSON"),
        (b"", "not valid JSON"),
    ],
)
async def test_raw_data_that_is_not_utf8_json_is_refused_naming_data(
    log: EventLog, raw: bytes, reason: str
) -> None:
    with pytest.raises(InvalidEvent) as caught:
        await log.append("s", msgspec.Raw(raw), type="t")
    assert caught.value.path == "$.data"
    assert reason in str(caught.value)
    assert str(caught.value).endswith("- at `$.data`")
    with pytest.raises(InvalidEvent):
        await log.append_batch("s", [NewEvent(type="t", data=msgspec.Raw(raw))])
    assert await log.read("s") == []


async def test_a_batch_names_the_item_whose_data_is_bad_and_writes_nothing(
    log: EventLog,
) -> None:
    batch = [NewEvent(type="t", data=msgspec.Raw(b'{"n": 1}')) for _ in range(5)]
    batch[3] = NewEvent(type="t", data=msgspec.Raw(b'{"n": "\xff"}'))
    with pytest.raises(InvalidEvent) as caught:
        await log.append_batch("s", batch)
    assert caught.value.path == "$[3].data"
    assert "not valid UTF-8" in str(caught.value)
    assert await log.read("s") == []


async def test_a_batch_names_the_item_of_any_bad_field(log: EventLog) -> None:
    batch = [NewEvent(type="t"), NewEvent(type="t", key="k\x00")]
    with pytest.raises(InvalidEvent) as caught:
        await log.append_batch("s", batch)
    assert caught.value.path == "$[1].key"


async def test_fire_and_forget_append_of_bad_raw_data_is_logged_and_dropped(
    log: EventLog, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="eventlog"):
        log.append_event("s", msgspec.Raw(b'"\xff"'), type="t")
    assert "not valid UTF-8" in caplog.text
    assert await log.append("s", 1, type="t") == 0


async def test_valid_raw_data_is_stored_byte_for_byte(log: EventLog) -> None:
    raw = '{"name": "Zoë", "emoji": "🎉",  "n": 1}'.encode()
    await log.append("s", msgspec.Raw(raw), type="t")
    await log.append_batch("s", [NewEvent(type="t", data=msgspec.Raw(raw))])
    assert [bytes(e.data) for e in await log.read("s")] == [raw, raw]


async def test_bytes_data_is_stored_as_a_base64_json_string(log: EventLog) -> None:
    """Plain ``bytes`` are a value like any other (msgspec's base64 string), never raw JSON."""
    await log.append("s", b"\xff\x00", type="t")
    (event,) = await log.read("s")
    assert bytes(event.data) == b'"/wA="'
    assert event.json() == "/wA="


def test_the_checks_accept_utf8_json_and_name_the_first_bad_byte() -> None:
    assert utf8_problem("é".encode()) is None
    assert utf8_problem(b"ab\xc3") == "not valid UTF-8 (byte 2)"
    assert json_problem('{"é": [1, 2.5, null, true]}'.encode()) is None
    problem = json_problem(b"[1,]")
    assert problem is not None
    assert problem.startswith("not valid JSON")


async def test_a_batch_of_plain_mappings_is_appended_like_new_events(log: EventLog) -> None:
    batch: list[NewEvent | dict[str, object]] = [
        {"type": "order.created", "data": {"n": 1}},
        {"type": "order.paid", "data": msgspec.Raw(b'{"n":2}'), "key": "k", "id": "pay-2"},
        NewEvent(type="order.shipped", headers={"trace": "t1"}),
    ]
    assert await log.append_batch("s", batch) == [0, 1, 2]
    events = await log.read("s")
    assert [(e.type, e.key, e.headers, e.json()) for e in events] == [
        ("order.created", None, {}, {"n": 1}),
        ("order.paid", "k", {}, {"n": 2}),
        ("order.shipped", None, {"trace": "t1"}, None),
    ]
    assert events[1].id == "pay-2"
    assert await log.append_batch("s", [{"type": "t", "id": "pay-2"}]) == [1]  # idempotent


@pytest.mark.parametrize(
    ("item", "path", "reason"),
    [
        ({"data": 1}, "$[1].type", "event type is required"),
        ({"type": 7}, "$[1].type", "event type must be a string, got int"),
        ({"type": "t", "data": object()}, "$[1].data", "not JSON-serialisable"),
        ({"type": "t", "key": 5}, "$[1].key", "event key must be a string"),
        ({"type": "t", "headers": {"a": 1}}, "$[1].headers", "map strings to strings"),
        ({"type": "t", "tpye": "x"}, "$[1].tpye", "unknown event field 'tpye'"),
        ("not an event", "$[1]", "must be a NewEvent or a mapping"),
    ],
)
async def test_a_bad_mapping_in_a_batch_is_refused_naming_its_path_and_writes_nothing(
    log: EventLog, item: object, path: str, reason: str
) -> None:
    with pytest.raises(InvalidEvent) as caught:
        await log.append_batch("s", [{"type": "t"}, item])  # type: ignore[list-item]
    assert caught.value.path == path
    assert reason in str(caught.value)
    assert await log.read("s") == []


@pytest.mark.parametrize(
    ("headers", "path", "reason"),
    [
        ({"a": 1}, "$[1].headers", "map strings to strings"),
        ({2: "b"}, "$[1].headers", "map strings to strings"),
        ("a=b", "$[1].headers", "must be a mapping"),
    ],
)
async def test_new_events_with_bad_headers_are_refused_naming_their_path(
    log: EventLog, headers: object, path: str, reason: str
) -> None:
    bad = NewEvent(type="t", headers=headers)  # type: ignore[arg-type]
    with pytest.raises(InvalidEvent) as caught:
        await log.append_batch("s", [NewEvent(type="t", headers={"ok": "1"}), bad])
    assert caught.value.path == path
    assert reason in str(caught.value)
    assert await log.read("s") == []


async def test_new_events_keep_a_copy_of_their_headers_and_count_them_in_the_size(
    tmp_path: Path,
) -> None:
    async with EventLog.open(tmp_path / "small.db", max_event_bytes=40) as small:
        headers = {"correlation-id": "c1"}
        assert await small.append_batch("s", [NewEvent(type="t", data=1, headers=headers)]) == [0]
        headers["correlation-id"] = "changed"
        assert (await small.read("s"))[0].headers == {"correlation-id": "c1"}
        too_big = NewEvent(type="t", data="x" * 20, headers={"h": "y" * 20})
        with pytest.raises(EventTooLarge):
            await small.append_batch("s", [too_big])


async def test_a_transaction_appends_a_batch_of_mappings(log: EventLog) -> None:
    async with log.transaction() as txn:
        assert await txn.append_batch("s", [{"type": "t", "data": i} for i in range(3)]) == [
            0,
            1,
            2,
        ]
    assert [e.json() for e in await log.read("s")] == [0, 1, 2]


async def test_a_mixed_batch_gets_generated_ids_in_offset_order(log: EventLog) -> None:
    """Plain items and items with a key, headers or raw data take different
    paths through validation; the ids the log makes still follow the offsets."""
    batch: list[NewEvent | dict[str, object]] = []
    for i in range(300):
        kind = i % 5
        if kind == 0:
            batch.append({"type": "t", "data": i})
        elif kind == 1:
            batch.append(NewEvent(type="t", data=i, key=f"k{i}"))
        elif kind == 2:
            batch.append(NewEvent(type="t", data=i, headers={"n": str(i)}))
        elif kind == 3:
            batch.append({"type": "t", "data": msgspec.Raw(str(i).encode()), "key": "k"})
        else:
            batch.append(NewEvent(type=f"t{i}", data=[i]))
    assert await log.append_batch("s", batch) == list(range(300))
    events = await log.read("s", 0, 300)
    ids = [e.id for e in events]
    assert ids == sorted(ids)
    assert len(set(ids)) == 300
    assert [e.json() for e in events] == [[i] if i % 5 == 4 else i for i in range(300)]
    assert [e.key for e in events[:5]] == [None, "k1", None, "k", None]
    assert events[2].headers == {"n": "2"}


async def test_a_too_large_plain_item_in_a_batch_is_refused_and_writes_nothing(
    tmp_path: Path,
) -> None:
    async with EventLog.open(tmp_path / "small.db", max_event_bytes=100) as small:
        batch = [NewEvent(type="t", data="x" * 10), NewEvent(type="t", data="x" * 200)]
        with pytest.raises(EventTooLarge) as caught:
            await small.append_batch("s", batch)
        assert (caught.value.size, caught.value.limit) == (202, 100)
        assert await small.read("s") == []
