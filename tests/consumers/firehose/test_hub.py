"""The firehose hub and subscriptions against a real log on an SQLite file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest

from consumers.firehose import (
    EventFilter,
    Firehose,
    FirehoseFull,
    Frame,
    Limits,
    Phase,
    Subscription,
    SubscriptionEnded,
)
from eventlog import EventLog, NewEvent, OffsetOutOfRange, Retention
from tests.support import scaled, wait_until


async def collect(sub: Subscription, count: int, *, max_frames: int = 500) -> list[int]:
    """Receive ``count`` events' offsets (checking each frame is the event's JSON)."""
    got: list[int] = []
    async with asyncio.timeout(scaled(20)):
        while len(got) < count:
            for frame in await sub.frames(max_frames):
                event = msgspec.json.decode(frame.text)
                assert event["offset"] == frame.offset
                got.append(frame.offset)
                sub.sent(1)
    return got


async def append_n(log: EventLog, stream: str, n: int, batch: int = 500) -> None:
    for i in range(0, n, batch):
        size = min(batch, n - i)
        await log.append_batch(
            stream, [NewEvent(type="t.even" if (i + j) % 2 == 0 else "t.odd") for j in range(size)]
        )


async def test_live_subscriber_receives_events_appended_after_it_joined(
    sqlite_log: EventLog,
) -> None:
    await sqlite_log.append("s", {"old": True}, type="t")
    firehose = Firehose(sqlite_log)
    async with await firehose.subscribe("s", start=1) as sub:
        await sqlite_log.append("s", {"n": 1}, type="t", key="k")
        await sqlite_log.append("s", {"n": 2}, type="t")
        frames: list[Frame] = []
        async with asyncio.timeout(scaled(10)):
            while len(frames) < 2:
                frames += await sub.frames(10)
        assert [f.offset for f in frames] == [1, 2]
        assert msgspec.json.decode(frames[0].text)["data"] == {"n": 1}
        assert frames[0].key == "k"


async def test_catch_up_joins_live_without_gap_or_duplicate_while_appends_continue(
    sqlite_log: EventLog,
) -> None:
    await append_n(sqlite_log, "s", 3000)
    firehose = Firehose(sqlite_log, Limits(page=250, backlog_events=300))
    async with await firehose.subscribe("s", start=100) as late:
        writer = asyncio.create_task(append_n(sqlite_log, "s", 3000, batch=50))
        got = await collect(late, 5900)
        await writer
    assert got == list(range(100, 6000))
    assert not firehose.hubs  # the last subscriber left: the hub stopped


async def test_many_subscribers_share_one_hub_and_each_gets_everything(
    sqlite_log: EventLog,
) -> None:
    firehose = Firehose(sqlite_log)
    subs = [await firehose.subscribe("s", start=0) for _ in range(5)]
    assert len(firehose.hubs) == 1
    assert firehose.hubs["s"].members == 5
    await append_n(sqlite_log, "s", 1000)
    results = await asyncio.gather(*(collect(s, 1000) for s in subs))
    assert all(r == list(range(1000)) for r in results)
    for s in subs:
        s.close()
    assert not firehose.hubs


async def test_type_and_key_filters_apply_during_catch_up_and_live(sqlite_log: EventLog) -> None:
    await append_n(sqlite_log, "s", 100)
    firehose = Firehose(sqlite_log)
    async with await firehose.subscribe("s", 0, EventFilter(("t.even",))) as sub:
        await append_n(sqlite_log, "s", 100)
        got = await collect(sub, 100)
    assert got == list(range(0, 200, 2))
    await sqlite_log.append("s", None, type="t.odd", key="only-me")
    async with await firehose.subscribe("s", 0, EventFilter((), key="only-me")) as sub:
        assert await collect(sub, 1) == [200]


async def test_slow_subscriber_is_dropped_with_its_resume_offset_and_others_get_everything(
    sqlite_log: EventLog,
) -> None:
    firehose = Firehose(sqlite_log, Limits(queue_events=200, page=100))
    fast = await firehose.subscribe("s", 0)
    slow = await firehose.subscribe("s", 0)
    ended = asyncio.Event()
    slow.on_end = ended.set
    first = await asyncio.gather(append_n(sqlite_log, "s", 50), collect(slow, 50))
    assert first[1] == list(range(50))
    appended = asyncio.create_task(append_n(sqlite_log, "s", 2000, batch=100))
    got = await collect(fast, 2050)
    await appended
    assert got == list(range(2050))
    async with asyncio.timeout(scaled(5)):
        await ended.wait()
    with pytest.raises(SubscriptionEnded) as info:
        await slow.frames(10)
    assert info.value.slow
    assert info.value.resume_offset == 50
    assert slow.subscriber.phase is Phase.OVERFLOWED
    assert firehose.hubs["s"].slow_disconnects == 1
    fast.close()
    slow.close()


async def test_start_beyond_the_head_waits_for_that_offset(sqlite_log: EventLog) -> None:
    firehose = Firehose(sqlite_log)
    async with await firehose.subscribe("s", start=5) as sub:
        waiting = asyncio.create_task(sub.frames(10))
        await append_n(sqlite_log, "s", 5)
        # The hub has published offsets 0-4 and waits for more: a frame sent
        # early would have woken the subscriber by now.
        hub = firehose.hubs["s"]
        await wait_until(lambda: hub.core is not None and hub.core.next_offset == 5)
        await wait_until(lambda: sqlite_log.heads.parked("s") > 0, what="the hub parked")
        await asyncio.sleep(0)
        assert not waiting.done()
        await append_n(sqlite_log, "s", 2)
        async with asyncio.timeout(scaled(10)):
            frames = await waiting
        assert [f.offset for f in frames] == [5, 6]


async def test_retention_removing_unread_events_ends_catch_up_with_offset_out_of_range(
    sqlite_log: EventLog,
) -> None:
    await append_n(sqlite_log, "s", 3000)
    firehose = Firehose(sqlite_log, Limits(page=100, backlog_events=10))
    async with await firehose.subscribe("s", start=0) as sub:
        assert len(await sub.frames(100)) == 100
        sub.sent(100)
        await sqlite_log.set_retention("s", Retention(max_count=10))
        await sqlite_log.enforce_retention()

        async def drain_all() -> None:
            async with asyncio.timeout(scaled(10)):
                while True:
                    sub.sent(len(await sub.frames(100)))

        with pytest.raises(OffsetOutOfRange) as info:
            await drain_all()
        assert info.value.first == 2990


async def test_idle_timeout_returns_no_frames_for_a_keepalive(sqlite_log: EventLog) -> None:
    firehose = Firehose(sqlite_log)
    async with await firehose.subscribe("s", start=0) as sub:
        assert await sub.frames(10, idle_timeout=0.05) == []


async def test_client_limit_is_enforced(sqlite_log: EventLog) -> None:
    firehose = Firehose(sqlite_log, max_clients=2)
    firehose.admit()
    firehose.admit()
    with pytest.raises(FirehoseFull, match="limit 2"):
        firehose.admit()
    firehose.leave()
    firehose.admit()


async def test_closing_the_log_ends_subscriptions(tmp_path: Path) -> None:
    log = await EventLog.open(f"{tmp_path}/e.db")
    firehose = Firehose(log)
    sub = await firehose.subscribe("s", start=0)
    waiting = asyncio.create_task(sub.frames(10))
    await wait_until(lambda: log.heads.parked("s") > 0, what="the hub parked")
    await log.close()
    with pytest.raises(SubscriptionEnded) as info:
        async with asyncio.timeout(scaled(10)):
            await waiting
    assert not info.value.slow
    assert info.value.reason == "server shutting down"
    sub.close()


async def test_deleting_the_stream_ends_its_subscribers_and_a_new_hub_serves_it_again(
    sqlite_log: EventLog,
) -> None:
    await append_n(sqlite_log, "s", 3)
    firehose = Firehose(sqlite_log)
    sub = await firehose.subscribe("s", start=3)
    waiting = asyncio.create_task(sub.frames(10))
    await wait_until(lambda: sqlite_log.heads.parked("s") > 0, what="the hub parked")
    await sqlite_log.delete_stream("s")
    with pytest.raises(SubscriptionEnded) as info:
        async with asyncio.timeout(scaled(10)):
            await waiting
    assert info.value.reason == "stream 's' was deleted"
    assert info.value.resume_offset == 0  # a stream made again starts over
    assert "s" not in firehose.hubs
    sub.close()
    async with await firehose.subscribe("s", start=0) as again:
        await append_n(sqlite_log, "s", 2)
        assert await collect(again, 2) == [0, 1]
