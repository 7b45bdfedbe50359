"""EventLog behaviour over every backend: the same bodies behind the storage fixture."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from eventlog import (
    BEGINNING,
    END,
    EventLog,
    EventTooLarge,
    ExpectedOffsetMismatch,
    HoldPolicy,
    InvalidEvent,
    InvalidPosition,
    InvalidStreamName,
    NewEvent,
    Offset,
    OffsetOutOfRange,
    Retention,
    StreamNotFound,
    Time,
)
from eventlog.storage.transactions import OffsetTransaction
from tests.support import scaled, wait_until


async def test_append_returns_offsets_and_read_returns_the_events(log: EventLog) -> None:
    assert await log.append("orders", {"n": 1}, type="order.created", key="k") == 0
    assert await log.append("orders", {"n": 2}, type="order.paid") == 1
    events = await log.read("orders", 0, 10)
    assert [(e.offset, e.type, e.json()) for e in events] == [
        (0, "order.created", {"n": 1}),
        (1, "order.paid", {"n": 2}),
    ]
    assert events[0].key == "k"
    assert len(events[0].id) == 36  # a generated UUIDv7


async def test_concurrent_appends_get_gapless_unique_offsets(log: EventLog) -> None:
    offsets = await asyncio.gather(*(log.append("s", i, type="t") for i in range(300)))
    assert sorted(offsets) == list(range(300))
    data = [e.json() async for e in log.scan("s")]
    assert sorted(data) == list(range(300))  # type: ignore[type-var]


async def test_one_transaction_settles_every_kind_of_append(log: EventLog) -> None:
    await log.append("s", "first", type="t", id="k1")
    # Queued in one turn of the loop, these share one transaction.
    results = await asyncio.gather(
        log.append("s", "a", type="t"),
        log.append("s", "retry", type="t", id="k1"),
        log.append("s", "b", type="t", expected_offset=0),
        log.append_batch("s", [NewEvent(type="t", data="c"), NewEvent(type="t", data="d")]),
        log.append("other", "e", type="t"),
        log.append("s", "f", type="t", id="k2"),
        return_exceptions=True,
    )
    assert list(results[:2]) == [1, 0]
    assert isinstance(results[2], ExpectedOffsetMismatch)
    assert list(results[3:]) == [[2, 3], 0, 4]
    assert [e.json() for e in await log.read("s")] == ["first", "a", "c", "d", "f"]


async def test_append_batch_is_atomic_and_consecutive(log: EventLog) -> None:
    await log.append("s", 0, type="t")
    batch = [NewEvent(type="t", data=i) for i in range(5)]
    assert await log.append_batch("s", batch) == [1, 2, 3, 4, 5]


async def test_batch_with_one_bad_event_writes_nothing(log: EventLog) -> None:
    batch = [NewEvent(type="t", data=1), NewEvent(type="t", data=object())]
    with pytest.raises(InvalidEvent, match="JSON"):
        await log.append_batch("s", batch)
    assert await log.read("s", 0, 10) == []


async def test_empty_batch_is_refused(log: EventLog) -> None:
    with pytest.raises(InvalidEvent, match="at least one"):
        await log.append_batch("s", [])


async def test_batch_over_the_limit_is_refused(log: EventLog) -> None:
    too_many = [NewEvent(type="t") for _ in range(log.config.max_batch_events + 1)]
    with pytest.raises(InvalidEvent, match="at most"):
        await log.append_batch("s", too_many)


async def test_retried_append_with_same_id_returns_original_offset(log: EventLog) -> None:
    first = await log.append("s", {"v": 1}, type="t", id="payment-9")
    await log.append("s", {"v": 2}, type="t")
    again = await log.append("s", {"v": 3}, type="t", id="payment-9")
    assert first == again == 0
    assert [e.json() for e in await log.read("s")] == [{"v": 1}, {"v": 2}]


async def test_expected_offset_mismatch_names_both_offsets(log: EventLog) -> None:
    await log.append("s", 1, type="t", expected_offset=0)
    with pytest.raises(ExpectedOffsetMismatch) as caught:
        await log.append("s", 2, type="t", expected_offset=0)
    assert (caught.value.expected, caught.value.actual) == (0, 1)
    assert await log.append("s", 2, type="t", expected_offset=1) == 1


@pytest.mark.parametrize(
    "name", ["", "-leading-dash", "has space", "é", "a" * 129, "a/b", ".hidden"]
)
async def test_invalid_stream_names_are_refused(log: EventLog, name: str) -> None:
    with pytest.raises(InvalidStreamName):
        await log.append(name, 1, type="t")


async def test_longest_valid_stream_name_is_accepted(log: EventLog) -> None:
    name = "A" + "b.-_9" * 25 + "xx"
    assert len(name) == 128
    assert await log.append(name, 1, type="t") == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"type": ""}, "type must not be empty"),
        ({"type": 5}, "type must be a string"),
        ({"type": "t", "key": 5}, "key must be a string"),
        ({"type": "t", "id": ""}, "id must not be empty"),
        ({"type": "t", "headers": {"a": 1}}, "headers"),
        ({"type": "t\x00"}, "NUL"),
    ],
)
async def test_bad_event_fields_are_refused(
    log: EventLog, kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(InvalidEvent, match=match):
        await log.append("s", 1, **kwargs)  # type: ignore[call-overload]
    assert await log.read("s") == []


async def test_non_json_data_is_refused(log: EventLog) -> None:
    with pytest.raises(InvalidEvent, match="not JSON-serialisable"):
        await log.append("s", object(), type="t")


async def test_oversized_event_is_refused(log: EventLog) -> None:
    with pytest.raises(EventTooLarge) as caught:
        await log.append("s", "x" * (log.config.max_event_bytes + 1), type="t")
    assert caught.value.limit == log.config.max_event_bytes
    assert await log.read("s") == []


async def test_raw_json_data_is_stored_unchanged(log: EventLog) -> None:
    raw = msgspec.Raw(b'{"b":1,  "a":2}')
    await log.append("s", raw, type="t")
    (event,) = await log.read("s")
    assert bytes(event.data) == b'{"b":1,  "a":2}'


async def test_read_rejects_negative_offsets_and_limits(log: EventLog) -> None:
    with pytest.raises(InvalidPosition):
        await log.read("s", -1)
    with pytest.raises(InvalidPosition):
        await log.read("s", 0, 0)


async def test_scan_pages_through_a_range(log: EventLog) -> None:
    await log.append_batch("s", [NewEvent(type="t", data=i) for i in range(2500)])
    assert [e.offset async for e in log.scan("s", 1200, 1205)] == [1200, 1201, 1202, 1203, 1204]
    assert sum([1 async for _ in log.scan("s")]) == 2500


async def test_wait_wakes_on_append_without_polling(log: EventLog) -> None:
    waiter = asyncio.create_task(log.wait("s", 0, timeout=scaled(10)))
    await wait_until(lambda: log.heads.parked("s") == 1, what="the waiter parked")
    assert not waiter.done()
    await log.append("s", 1, type="t")
    assert await asyncio.wait_for(waiter, scaled(2)) is True
    assert log.heads.parked("s") == 0
    assert await log.wait("s", 5, timeout=0.05) is False


async def test_stream_info_and_missing_stream(log: EventLog) -> None:
    await log.append_batch("s", [NewEvent(type="t", data=i) for i in range(3)])
    info = await log.stream_info("s")
    assert (info.next_offset, info.first_offset, info.count) == (3, 0, 3)
    with pytest.raises(StreamNotFound):
        await log.stream_info("nope")


async def test_bounds_are_the_retained_offsets_and_zero_for_a_missing_stream(
    log: EventLog,
) -> None:
    assert await log.bounds("s") == (0, 0)
    await log.append_batch("s", [NewEvent(type="t", data=i) for i in range(5)])
    await log.set_retention("s", Retention(max_count=2))
    await log.enforce_retention()
    assert await log.bounds("s") == (3, 5)
    assert log.known_head("s") == 5
    with pytest.raises(InvalidStreamName):
        await log.bounds("../s")


async def test_committed_offsets_are_stored_per_consumer_and_stream(log: EventLog) -> None:
    assert await log.committed_offset("c", "s") is None
    await log.append_batch("s", [NewEvent(type="t", data=i) for i in range(7)])
    await log.commit_offset("c", "s", 7)
    await log.commit_offset("d", "s", 2)
    assert await log.committed_offset("c", "s") == 7
    assert [(c.name, c.offset) for c in await log.consumers()] == [("c", 7), ("d", 2)]


async def test_a_commit_past_the_head_is_refused_and_the_head_itself_is_caught_up(
    log: EventLog,
) -> None:
    with pytest.raises(InvalidPosition, match=r"^offset 3 is beyond the head of 'nowhere' \(0\)$"):
        await log.consumer("c", "nowhere").commit(3)
    assert await log.committed_offset("c", "nowhere") is None
    at_end = log.consumer("c", "nowhere", start=END)  # created at the end of an empty stream
    await at_end.commit()
    assert (at_end.committed, await log.committed_offset("c", "nowhere")) == (0, 0)
    await log.append_batch("s", [NewEvent(type="t", data=i) for i in range(3)])
    with pytest.raises(InvalidPosition, match=r"^offset 4 is beyond the head of 's' \(3\)$"):
        await log.commit_offset("c", "s", 4)
    assert await log.committed_offset("c", "s") is None
    consumer = log.consumer("c", "s")
    assert len(await consumer.poll(10)) == 3
    await consumer.commit()  # caught up: the head itself
    assert await log.committed_offset("c", "s") == 3
    with pytest.raises(InvalidPosition):
        await consumer.commit(5)
    assert consumer.committed == 3


async def test_a_transactional_commit_past_the_head_is_refused_before_the_body_runs(
    log: EventLog,
) -> None:
    if not log.can_transact:
        pytest.skip("the memory backend has no database to share")
    ran: list[OffsetTransaction] = []

    async def body(tx: OffsetTransaction) -> None:
        ran.append(tx)

    with pytest.raises(InvalidPosition, match="beyond the head"):
        await log.consumer("c", "s").transact(body, offset=1)
    assert (ran, await log.committed_offset("c", "s")) == ([], None)
    await log.consumer("c", "s").transact(body, offset=0)
    assert (len(ran), await log.committed_offset("c", "s")) == (1, 0)


async def test_leases_are_exclusive_until_released(log: EventLog) -> None:
    lease = await log.leases.acquire_lease("job")
    assert lease is not None
    assert await log.leases.acquire_lease("job") is None
    await lease.release()
    again = await log.leases.acquire_lease("job")
    assert again is not None
    await again.release()


async def test_delete_stream_then_missing(log: EventLog) -> None:
    await log.append("s", 1, type="t")
    await log.delete_stream("s")
    with pytest.raises(StreamNotFound):
        await log.delete_stream("s")
    assert await log.read("s") == []


async def test_retention_by_count_trims_oldest_and_reports_out_of_range(log: EventLog) -> None:
    await log.append_batch("s", [NewEvent(type="t", data=i) for i in range(10)])
    await log.set_retention("s", Retention(max_count=3))
    assert await log.enforce_retention() == 7
    assert [e.offset for e in await log.read("s", 7)] == [7, 8, 9]
    with pytest.raises(OffsetOutOfRange) as caught:
        await log.read("s", 2)
    assert caught.value.first == 7


async def test_retention_by_age_uses_append_time(log: EventLog) -> None:
    await log.append_batch("s", [NewEvent(type="t", data=i) for i in range(4)])
    await log.set_retention("s", Retention(max_age=60))
    assert await log.enforce_retention() == 0
    later = datetime.now(UTC) + timedelta(minutes=5)
    assert await log.enforce_retention(now=later) == 4
    assert (await log.stream_info("s")).count == 0


async def test_retention_by_bytes_keeps_the_newest(log: EventLog) -> None:
    await log.append_batch("s", [NewEvent(type="t", data="x" * 8) for _ in range(10)])  # 10 B each
    await log.set_retention("s", Retention(max_bytes=35))
    assert await log.enforce_retention() == 7
    assert (await log.stream_info("s")).first_offset == 7


async def test_consumer_resumes_from_committed_offset_after_reopen(log: EventLog) -> None:
    await log.append_batch("s", [NewEvent(type="t", data=i) for i in range(10)])
    consumer = log.consumer("billing", "s")
    assert [e.offset for e in await consumer.poll(4)] == [0, 1, 2, 3]
    await consumer.commit()
    assert [e.offset for e in await consumer.poll(2)] == [4, 5]  # polled, not committed
    again = log.consumer("billing", "s")
    assert [e.offset for e in await again.poll(3)] == [4, 5, 6]
    assert await again.lag() == 6


async def test_consumer_seek_positions(log: EventLog) -> None:
    for i in range(3):
        await log.append("s", i, type="t")
    consumer = log.consumer("c", "s")
    assert await consumer.seek(END) == 3
    assert await consumer.seek(Offset(1)) == 1
    assert await consumer.seek(BEGINNING) == 0
    first = (await log.read("s", 0, 1))[0].time
    assert await consumer.seek(Time(first + timedelta(hours=1))) == 3
    assert await consumer.seek(Time(first - timedelta(hours=1))) == 0


async def test_consumer_poll_long_polls_until_append(log: EventLog) -> None:
    consumer = log.consumer("c", "s", start=END)
    task = asyncio.create_task(consumer.poll(10, timeout=scaled(10)))
    await wait_until(lambda: log.heads.parked("s") == 1, what="the poll parked")
    await log.append("s", "hello", type="t")
    events = await asyncio.wait_for(task, scaled(2))
    assert [e.json() for e in events] == ["hello"]
    assert await consumer.poll(10, timeout=0.05) == []


async def test_consumer_behind_retention_resets_per_policy(log: EventLog) -> None:
    await log.append_batch("s", [NewEvent(type="t", data=i) for i in range(10)])
    for name in ("early", "late", "strict"):
        await log.consumer(name, "s").commit(2)
        log.set_hold_policy(name, HoldPolicy(protect=False))  # let retention pass them
    await log.set_retention("s", Retention(max_count=5))
    await log.enforce_retention()
    assert (await log.consumer("early", "s").poll(1))[0].offset == 5
    assert await log.consumer("late", "s", reset="latest").poll(1) == []
    with pytest.raises(OffsetOutOfRange):
        await log.consumer("strict", "s", reset="error").poll(1)


async def test_consumer_async_iteration_commits_each_finished_page(log: EventLog) -> None:
    await log.append_batch("s", [NewEvent(type="t", data=i) for i in range(5)])
    seen = []
    consumer = log.consumer("it", "s")
    async for event in consumer:
        seen.append(event.offset)
        if event.offset == 4:
            break
    assert seen == [0, 1, 2, 3, 4]
    # The page was not finished when the loop broke out: nothing committed yet.
    assert consumer.committed is None
    await log.append("s", 5, type="t")
    more = [e.offset async for e in _take(consumer, 1)]
    assert more == [5]
    assert consumer.committed == 5


async def _take(consumer: object, n: int):  # type: ignore[no-untyped-def]
    count = 0
    async for event in consumer:  # type: ignore[attr-defined]
        yield event
        count += 1
        if count == n:
            return


async def test_append_event_is_fire_and_forget(log: EventLog) -> None:
    assert log.append_event("s", {"a": 1}, type="t") is None  # type: ignore[func-returns-value]
    log.append_event("bad name", 1, type="t")  # logged, never raised
    log.append_event("s", object(), type="t")  # logged, never raised
    assert await log.wait("s", 0, timeout=scaled(5))
    assert [e.json() for e in await log.read("s")] == [{"a": 1}]
