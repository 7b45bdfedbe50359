"""The Storage contract: every backend must pass these, unchanged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

from eventlog import ExpectedOffsetMismatch, Retention
from eventlog.storage import derived
from eventlog.storage.base import Appended, AppendRequest, PendingEvent, Storage

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ev(i: int, *, id: str | None = None, key: str | None = None) -> PendingEvent:
    return PendingEvent(
        id=id or f"gen-{i}",
        id_given=id is not None,
        type="t.created",
        key=key,
        headers={"h": str(i)} if i % 2 else {},
        data=msgspec.json.encode({"i": i}),
    )


def req(stream: str, *events: PendingEvent, expected: int | None = None) -> AppendRequest:
    return AppendRequest(stream=stream, events=list(events), expected_offset=expected)


async def test_append_assigns_consecutive_offsets_per_stream(storage: Storage) -> None:
    out = await storage.append([req("a", ev(0), ev(1)), req("b", ev(2)), req("a", ev(3))], T0)
    assert out == [
        Appended(offsets=[0, 1], written=2, next_offset=2),
        Appended(offsets=[0], written=1, next_offset=1),
        Appended(offsets=[2], written=1, next_offset=3),
    ]
    events = await storage.read("a", 0, 10)
    assert [e.offset for e in events] == [0, 1, 2]
    assert [msgspec.json.decode(e.data) for e in events] == [{"i": 0}, {"i": 1}, {"i": 3}]


async def test_append_generated_gives_each_stream_consecutive_offsets(storage: Storage) -> None:
    await storage.append([req("a", ev(0))], T0)
    firsts = await derived.append_generated(storage, {"a": [ev(1), ev(2)], "b": [ev(3)]}, T0)
    assert firsts == {"a": 1, "b": 0}
    assert [(e.offset, msgspec.json.decode(e.data)) for e in await storage.read("a", 0, 10)] == [
        (0, {"i": 0}),
        (1, {"i": 1}),
        (2, {"i": 2}),
    ]
    (event,) = await storage.read("b", 0, 10)
    assert (event.id, event.headers, event.time) == ("gen-3", {"h": "3"}, T0)
    info = await storage.stream_info("a")
    assert info is not None
    assert (info.next_offset, info.count, info.bytes, info.last_time) == (3, 3, 21, T0)
    out = await storage.append([req("a", ev(4))], T0)
    assert out == [Appended(offsets=[3], written=1, next_offset=4)]


async def test_append_generated_keeps_time_monotonic(storage: Storage) -> None:
    await derived.append_generated(storage, {"s": [ev(0)]}, T0)
    await derived.append_generated(storage, {"s": [ev(1)]}, T0 - timedelta(seconds=5))
    assert [e.time for e in await storage.read("s", 0, 10)] == [T0, T0]


async def test_append_generated_on_a_stream_made_by_its_retention(storage: Storage) -> None:
    await storage.set_retention("s", Retention(max_count=5))
    assert await derived.append_generated(storage, {"s": [ev(0), ev(1)]}, T0) == {"s": 0}
    info = await storage.stream_info("s")
    assert info is not None
    assert (info.next_offset, info.retention) == (2, Retention(max_count=5))


async def test_read_returns_every_field_as_appended(storage: Storage) -> None:
    await storage.append([req("s", ev(1, id="order-1", key="tenant:7"))], T0)
    (event,) = await storage.read("s", 0, 1)
    assert event.stream == "s"
    assert event.id == "order-1"
    assert event.type == "t.created"
    assert event.key == "tenant:7"
    assert event.headers == {"h": "1"}
    assert event.time == T0
    assert bytes(event.data) == b'{"i":1}'


async def test_data_bytes_are_stored_exactly_as_given(storage: Storage) -> None:
    raw = b'{ "spaced" : [1, 2.50, "\\u00e9"] }'
    await storage.append(
        [req("s", PendingEvent(id="x", id_given=True, type="t", key=None, headers={}, data=raw))],
        T0,
    )
    (event,) = await storage.read("s", 0, 1)
    assert bytes(event.data) == raw


async def test_read_pages_from_an_offset(storage: Storage) -> None:
    await storage.append([req("s", *(ev(i) for i in range(25)))], T0)
    page = await storage.read("s", 10, 5)
    assert [e.offset for e in page] == [10, 11, 12, 13, 14]
    assert await storage.read("s", 25, 5) == []
    assert await storage.read("missing", 0, 5) == []


async def test_given_id_is_idempotent_and_writes_nothing(storage: Storage) -> None:
    await storage.append([req("s", ev(0, id="k1"), ev(1, id="k2"))], T0)
    out = await storage.append([req("s", ev(5, id="k2"), ev(6, id="k1"))], T0)
    assert out == [Appended(offsets=[1, 0], written=0, next_offset=2)]
    assert (await storage.stream_info("s")).count == 2  # type: ignore[union-attr]


async def test_partially_duplicate_batch_writes_only_new_events(storage: Storage) -> None:
    await storage.append([req("s", ev(0, id="k1"))], T0)
    out = await storage.append([req("s", ev(1, id="k1"), ev(2, id="k2"))], T0)
    assert out == [Appended(offsets=[0, 1], written=1, next_offset=2)]


async def test_same_id_twice_in_one_transaction_is_written_once(storage: Storage) -> None:
    out = await storage.append([req("s", ev(0, id="k")), req("s", ev(1, id="k"))], T0)
    assert out == [
        Appended(offsets=[0], written=1, next_offset=1),
        Appended(offsets=[0], written=0, next_offset=1),
    ]


async def test_ids_are_scoped_to_their_stream(storage: Storage) -> None:
    out = await storage.append([req("a", ev(0, id="k")), req("b", ev(0, id="k"))], T0)
    assert [o.offsets for o in out if isinstance(o, Appended)] == [[0], [0]]


async def test_expected_offset_conflict_fails_only_its_request(storage: Storage) -> None:
    await storage.append([req("s", ev(0))], T0)
    out = await storage.append(
        [req("s", ev(1), expected=0), req("s", ev(2), expected=1), req("s", ev(3), expected=5)],
        T0,
    )
    assert isinstance(out[0], ExpectedOffsetMismatch)
    assert (out[0].expected, out[0].actual) == (0, 1)
    assert out[1] == Appended(offsets=[1], written=1, next_offset=2)
    assert isinstance(out[2], ExpectedOffsetMismatch)
    assert [e.offset for e in await storage.read("s", 0, 10)] == [0, 1]


async def test_expected_offset_zero_creates_a_stream_once(storage: Storage) -> None:
    out = await storage.append([req("s", ev(0), expected=0), req("s", ev(1), expected=0)], T0)
    assert isinstance(out[0], Appended)
    assert isinstance(out[1], ExpectedOffsetMismatch)


async def test_time_never_goes_backwards_within_a_stream(storage: Storage) -> None:
    await storage.append([req("s", ev(0))], T0)
    await storage.append([req("s", ev(1))], T0 - timedelta(seconds=5))
    times = [e.time for e in await storage.read("s", 0, 10)]
    assert times == [T0, T0]


async def test_stream_info_counts_bytes_and_head(storage: Storage) -> None:
    assert await storage.stream_info("s") is None
    await storage.append([req("s", ev(0), ev(1))], T0)
    info = await storage.stream_info("s")
    assert info is not None
    assert (info.name, info.next_offset, info.first_offset, info.count) == ("s", 2, 0, 2)
    assert info.bytes == len(b'{"i":0}') * 2
    assert info.last_time == T0


async def test_streams_are_listed_by_name(storage: Storage) -> None:
    await storage.append([req("b", ev(0)), req("a", ev(0))], T0)
    assert [s.name for s in await storage.streams()] == ["a", "b"]


async def test_offset_at_time_finds_first_event_at_or_after(storage: Storage) -> None:
    for i in range(5):
        await storage.append([req("s", ev(i))], T0 + timedelta(seconds=i))
    assert await derived.offset_at_time(storage, "s", T0 - timedelta(seconds=1)) == 0
    assert await derived.offset_at_time(storage, "s", T0 + timedelta(seconds=2)) == 2
    assert await derived.offset_at_time(storage, "s", T0 + timedelta(seconds=2.5)) == 3
    assert await derived.offset_at_time(storage, "s", T0 + timedelta(seconds=60)) == 5
    assert await derived.offset_at_time(storage, "missing", T0) == 0


async def test_trim_removes_a_prefix_and_moves_the_low_watermark(storage: Storage) -> None:
    await storage.append([req("s", *(ev(i, id=f"id{i}") for i in range(10)))], T0)
    assert await storage.trim("s", 4) == 4
    assert await storage.trim("s", 2) == 0
    info = await storage.stream_info("s")
    assert info is not None
    assert (info.first_offset, info.next_offset, info.count) == (4, 10, 6)
    assert info.bytes == 6 * len(b'{"i":0}')
    assert [e.offset for e in await storage.read("s", 0, 3)] == [4, 5, 6]
    # Offsets keep growing after a trim.
    out = await storage.append([req("s", ev(10))], T0)
    assert out == [Appended(offsets=[10], written=1, next_offset=11)]


async def test_offset_for_bytes_keeps_newest_within_budget(storage: Storage) -> None:
    await storage.append([req("s", *(ev(i) for i in range(10)))], T0)  # 7 bytes each
    assert await derived.offset_for_bytes(storage, "s", 21) == 7
    assert await derived.offset_for_bytes(storage, "s", 20) == 8
    assert await derived.offset_for_bytes(storage, "s", 1000) == 0


async def test_retention_policy_is_stored_with_the_stream(storage: Storage) -> None:
    policy = Retention(max_age=3600.0, max_count=100, max_bytes=None)
    await storage.set_retention("s", policy)
    info = await storage.stream_info("s")
    assert info is not None
    assert info.retention == policy
    assert info.count == 0


async def test_consumer_offsets_are_committed_and_listed(storage: Storage) -> None:
    assert await storage.get_offset("c", "s") is None
    await storage.commit_offset("c", "s", 5)
    await storage.commit_offset("c", "s", 7)
    await storage.commit_offset("b", "s", 1)
    assert await storage.get_offset("c", "s") == 7
    listed = [(c.name, c.stream, c.offset) for c in await storage.consumers()]
    assert listed == [("b", "s", 1), ("c", "s", 7)]


async def test_delete_stream_removes_events_ids_and_consumer_offsets(storage: Storage) -> None:
    await storage.append([req("s", ev(0, id="k")), req("t", ev(0))], T0)
    await storage.commit_offset("c", "s", 1)
    assert await storage.delete_stream("s") is True
    assert await storage.delete_stream("s") is False
    assert await storage.stream_info("s") is None
    assert await storage.get_offset("c", "s") is None
    out = await storage.append([req("s", ev(0, id="k"))], T0)
    assert out == [Appended(offsets=[0], written=1, next_offset=1)]
    assert (await storage.stream_info("t")) is not None
