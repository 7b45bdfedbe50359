"""Scheduled appends behind every backend (memory, SQLite, PostgreSQL): the same bodies."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from eventlog import (
    EventLog,
    InvalidInput,
    InvalidSchedule,
    NewEvent,
    ScheduleNotFound,
)
from tests.support import scaled


async def _wait_for(log: EventLog, stream: str, count: int) -> None:
    async with asyncio.timeout(scaled(10)):
        while not await log.wait(stream, count - 1, 0.5):
            pass


async def _until_empty(log: EventLog) -> None:
    """Until every due row has been dispatched."""
    async with asyncio.timeout(scaled(5)):
        while (await log.schedules.page()).schedules:  # noqa: ASYNC110 - polls storage
            await asyncio.sleep(0.02)


async def test_scheduled_event_is_appended_at_its_time_with_its_id(log: EventLog) -> None:
    due = datetime.now(UTC) + timedelta(seconds=0.3)
    scheduled = await log.append("r", {"n": 1}, type="t", key="k", id="e-1", at=due)
    assert (scheduled.new, scheduled.id, scheduled.stream) == (True, "e-1", "r")
    assert await log.read("r") == []
    await _wait_for(log, "r", 1)
    [event] = await log.read("r")
    assert (event.id, event.type, event.key) == ("e-1", "t", "k")
    assert event.data == msgspec.Raw(b'{"n":1}')
    assert event.time >= due
    await _until_empty(log)


async def test_scheduling_the_same_id_twice_keeps_the_first(log: EventLog) -> None:
    first = await log.append("r", 1, type="t", id="x", at=timedelta(hours=1))
    again = await log.append("r", 2, type="t", id="x", at=timedelta(hours=2))
    assert (first.new, again.new) == (True, False)
    assert again.deliver_at == first.deliver_at
    [waiting] = (await log.schedules.page()).schedules
    assert waiting.data == msgspec.Raw(b"1")


async def test_cancelled_event_is_never_appended(log: EventLog) -> None:
    await log.append("r", 1, type="t", id="gone", at=timedelta(seconds=0.2))
    await log.append("r", 2, type="t", id="kept", at=timedelta(seconds=0.3))
    await log.schedules.cancel("r", "gone")
    with pytest.raises(ScheduleNotFound):
        await log.schedules.cancel("r", "gone")
    await _wait_for(log, "r", 1)
    await asyncio.sleep(0.2)
    assert [e.id for e in await log.read("r")] == ["kept"]


async def test_past_due_time_appends_at_once(log: EventLog) -> None:
    scheduled = await log.append("r", 1, type="t", at=datetime(2001, 1, 1, tzinfo=UTC))
    assert scheduled.deliver_at > datetime(2026, 1, 1, tzinfo=UTC)
    await _wait_for(log, "r", 1)
    assert (await log.read("r"))[0].id == scheduled.id


async def test_bad_due_times_are_refused(log: EventLog) -> None:
    with pytest.raises(InvalidSchedule, match="horizon"):
        await log.append("r", 1, type="t", at=timedelta(days=400))
    with pytest.raises(InvalidSchedule, match="timezone"):
        await log.append("r", 1, type="t", at=datetime(2030, 1, 1))
    with pytest.raises(InvalidInput, match="expected_offset"):
        await log.append_batch(  # type: ignore[call-overload]
            "r", [NewEvent(type="t")], expected_offset=0, at=timedelta(0)
        )
    assert (await log.schedules.page()).schedules == []


async def test_batch_is_scheduled_and_appended_in_order(log: EventLog) -> None:
    events = [NewEvent(type="t", data=i, id=f"b{i}") for i in range(5)]
    got = await log.append_batch("r", events, at=timedelta(seconds=0.2))
    assert [s.id for s in got] == [f"b{i}" for i in range(5)]
    await _wait_for(log, "r", 5)
    assert [e.id for e in await log.read("r")] == [f"b{i}" for i in range(5)]


async def test_due_order_across_schedules(log: EventLog) -> None:
    now = datetime.now(UTC)
    for i, offset_ms in enumerate([400, 200, 300, 250]):
        await log.append(
            "r", i, type="t", id=f"o{offset_ms}", at=now + timedelta(milliseconds=offset_ms)
        )
    await _wait_for(log, "r", 4)
    assert [e.id for e in await log.read("r")] == ["o200", "o250", "o300", "o400"]


async def test_listing_filters_and_pages(log: EventLog) -> None:
    now = datetime.now(UTC)
    for i in range(7):
        stream = "a" if i % 2 == 0 else "b"
        await log.append(stream, i, type=f"t{i % 3}", id=f"s{i}", at=now + timedelta(hours=i + 1))
    ids: list[str] = []
    after = None
    while True:
        page = await log.schedules.page(after=after, limit=3)
        ids += [s.id for s in page.schedules]
        if page.next is None:
            break
        after = page.next
    assert ids == [f"s{i}" for i in range(7)]
    only_a = await log.schedules.page(stream="a")
    assert [s.id for s in only_a.schedules] == ["s0", "s2", "s4", "s6"]
    t0 = await log.schedules.page(type="t0")
    assert [s.id for s in t0.schedules] == ["s0", "s3", "s6"]
    soon = await log.schedules.page(until=now + timedelta(hours=2, minutes=1))
    assert [s.id for s in soon.schedules] == ["s0", "s1"]
    one = await log.schedules.get("b", "s3")
    assert abs((one.deliver_at - (now + timedelta(hours=4))).total_seconds()) < 1e-3
    with pytest.raises(InvalidInput):
        await log.schedules.page(after="not-a-cursor")
    with pytest.raises(ScheduleNotFound):
        await log.schedules.get("b", "s0")


async def test_a_cancel_either_wins_or_finds_the_event_appended(log: EventLog) -> None:
    """Cancels racing the dispatch: a cancelled event is never appended, and an
    event whose cancel found nothing is in the stream."""
    due = datetime.now(UTC) + timedelta(milliseconds=100)
    events = [NewEvent(type="t", data=i, id=f"r{i}") for i in range(300)]
    await log.append_batch("r", events, at=due)
    await asyncio.sleep(0.09)
    cancelled: set[str] = set()
    for event in events:
        try:
            await log.schedules.cancel("r", str(event.id))
            cancelled.add(str(event.id))
        except ScheduleNotFound:
            pass
    await _until_empty(log)
    appended = {e.id async for e in log.scan("r")}
    assert appended.isdisjoint(cancelled)
    assert appended | cancelled == {f"r{i}" for i in range(300)}
