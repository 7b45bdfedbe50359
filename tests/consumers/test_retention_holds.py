"""Retention keeps what named consumers have not read; max_hold ends that, loudly."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import msgspec
import pytest

from eventlog import (
    ConsumerInfo,
    EventLog,
    HoldPolicy,
    NewEvent,
    Retention,
    StreamInfo,
    Truncation,
)
from eventlog.holds import plan_holds
from tests.serverproc import ServerProcess

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def info(first: int, head: int, nbytes: int = 0) -> StreamInfo:
    return StreamInfo(
        name="s", next_offset=head, first_offset=first, count=head - first, bytes=nbytes
    )


def at(name: str, offset: int, stream: str = "s", ago: float = 0) -> ConsumerInfo:
    return ConsumerInfo(
        name=name, stream=stream, offset=offset, updated=T0 - timedelta(seconds=ago)
    )


def test_lowest_protecting_consumer_sets_the_cutoff() -> None:
    consumers = [at("slow", 3), at("fast", 9), at("other", 0, stream="t")]
    plan = plan_holds(info(0, 10, 1000), 6, consumers, lambda n: HoldPolicy(), T0)
    assert plan.cutoff == 3
    assert [(h.consumer, h.offset, h.events, h.bytes) for h in plan.holds] == [("slow", 3, 3, 300)]
    assert plan.released == []


def test_unprotected_consumers_do_not_hold() -> None:
    policy = {"slow": HoldPolicy(protect=False)}
    plan = plan_holds(info(0, 10), 6, [at("slow", 3)], lambda n: policy.get(n, HoldPolicy()), T0)
    assert (plan.cutoff, plan.holds) == (6, [])


def test_an_expired_hold_is_released_once() -> None:
    expire = lambda n: HoldPolicy(max_hold=60)  # noqa: E731
    consumers = [at("gone", 3, ago=61), at("alive", 5, ago=59)]
    plan = plan_holds(info(0, 10), 8, consumers, expire, T0)
    assert plan.cutoff == 5
    assert [(h.consumer, h.expired) for h in plan.holds] == [("gone", True), ("alive", False)]
    assert [h.consumer for h in plan.released] == ["gone"]
    # Next pass: its unread events are gone already; nothing to warn about twice.
    again = plan_holds(info(5, 10), 8, consumers, expire, T0)
    assert again.released == []
    assert again.cutoff == 5


def test_cutoff_never_goes_below_the_retained_range() -> None:
    plan = plan_holds(info(4, 10), 6, [at("behind", 1)], lambda n: HoldPolicy(), T0)
    assert plan.cutoff == 4


async def test_lagging_consumer_keeps_its_events_until_max_hold_then_learns_what_it_lost(
    durable_log: EventLog, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = durable_log
    await log.append_batch("s", [NewEvent(type="t", data=i) for i in range(10)])
    await log.consumer("lagger", "s").commit(2)
    await log.consumer("reader", "s").commit(9)
    await log.set_retention("s", Retention(max_count=4))

    assert await log.enforce_retention() == 2  # up to the lagger, not to the policy's 6
    assert (await log.stream_info("s")).first_offset == 2
    (hold,) = (await log.retention_holds("s")).holds
    assert (hold.consumer, hold.offset, hold.events, hold.expired) == ("lagger", 2, 4, False)

    log.set_hold_policy("lagger", HoldPolicy(max_hold=60))
    system_when_trimmed: list[list[str]] = []
    trim = log.storage.trim

    async def observed_trim(stream: str, before: int) -> int:
        system_when_trimmed.append([e.type for e in await log.read("system")])
        return await trim(stream, before)

    monkeypatch.setattr(log.storage, "trim", observed_trim)
    later = datetime.now(UTC) + timedelta(seconds=120)
    with caplog.at_level(logging.WARNING, logger="eventlog"):
        assert await log.enforce_retention(now=later) == 4
    assert system_when_trimmed == [["retention.hold_expired"]]  # said before the trim
    assert "consumer lagger has not committed on s" in caplog.text
    (notice,) = await log.read("system")
    assert msgspec.json.decode(bytes(notice.data))["events_lost"] == 4

    consumer = log.consumer("lagger", "s")
    assert [e.offset for e in await consumer.poll(10)] == [6, 7, 8, 9]
    assert consumer.truncation == Truncation(
        stream="s", offset=2, first_offset=6, skipped=4, resumed_at=6, consumer="lagger"
    )
    assert await log.wait("system", 1, timeout=5)  # the consumer.truncated notice
    told = await log.read("system", 1)
    assert [e.type for e in told] == ["consumer.truncated"]
    assert msgspec.json.decode(bytes(told[0].data))["skipped"] == 4


def test_stream_detail_and_metrics_show_who_holds_retention(tmp_path: Path) -> None:
    import asyncio

    db = tmp_path / "e.db"

    async def prepare() -> None:
        async with EventLog.open(db) as log:
            await log.append_batch("s", [NewEvent(type="t", data="x" * 8) for _ in range(10)])
            await log.consumer("lagger", "s").commit(1)
            await log.set_retention("s", Retention(max_count=3))

    asyncio.run(prepare())
    with ServerProcess.start(db=db) as server:
        body = httpx.get(f"{server.url}/api/streams/s").json()
        (hold,) = body["holds"]
        assert (hold["consumer"], hold["offset"], hold["events"]) == ("lagger", 1, 6)
        assert hold["bytes"] == 6 * 10  # ten bytes a payload: "xxxxxxxx" with its quotes
        assert hold["expired"] is False
        metrics = httpx.get(f"{server.url}/metrics").text
        assert 'eventlog_retention_held_events{consumer="lagger",stream="s"} 6.0' in metrics
        assert 'eventlog_retention_held_bytes{consumer="lagger",stream="s"} 60.0' in metrics


async def test_runtime_consumer_reports_truncation_per_its_reset_policy(
    sqlite_log: EventLog,
) -> None:
    import asyncio

    from consumers import ConsumerManager
    from eventlog import Event

    log = sqlite_log
    await log.append_batch("s", [NewEvent(type="t", data=i) for i in range(10)])
    for name in ("goes-on", "strict"):
        await log.consumer(name, "s").commit(1)
        log.set_hold_policy(name, HoldPolicy(protect=False))
    await log.set_retention("s", Retention(max_count=4))
    assert await log.enforce_retention() == 6
    got: list[int] = []

    async def handle(events: list[Event]) -> None:
        got.extend(e.offset for e in events)

    manager = ConsumerManager(log, poll_timeout=0.1)
    manager.add("goes-on", "s", handle)
    manager.consumer("strict", "s", reset="error")(handle)  # the decorator form
    async with manager:
        for _ in range(500):
            statuses = {s.name: s for s in manager.status()}
            if statuses["goes-on"].committed == 10 and statuses["strict"].state == "stopped":
                break
            await asyncio.sleep(0.01)
    assert got == [6, 7, 8, 9]
    assert statuses["goes-on"].truncation == (
        "consumer goes-on lost offsets 1-5 of 's' to retention "
        "(5 events skipped; first retained 6, resuming at 6)"
    )
    assert statuses["strict"].reason == (
        "OffsetOutOfRange: stream 's': offset 1 is before the first retained offset 6 "
        "(5 events removed by retention)"
    )
    assert await log.wait("system", 0, timeout=5)
    assert [e.type for e in await log.read("system")] == ["consumer.truncated"]


def test_a_stream_that_does_not_protect_is_held_by_nobody() -> None:
    stream = info(0, 10).__replace__(retention=Retention(max_count=4, protect=False))
    plan = plan_holds(stream, 6, [at("slow", 3)], lambda n: HoldPolicy(), T0)
    assert (plan.cutoff, plan.holds) == (6, [])


def test_the_smaller_of_the_stream_and_consumer_max_hold_wins() -> None:
    stream = info(0, 10).__replace__(retention=Retention(max_count=4, max_hold=100))
    consumers = [at("a", 2, ago=50), at("b", 3, ago=150)]
    own = {"a": HoldPolicy(max_hold=10)}
    plan = plan_holds(stream, 6, consumers, lambda n: own.get(n, HoldPolicy()), T0)
    assert [(h.consumer, h.expired) for h in plan.holds] == [("a", True), ("b", True)]
    assert plan.cutoff == 6


async def test_stream_hold_settings_are_stored_with_its_retention(durable_log: EventLog) -> None:
    policy = Retention(max_count=4, protect=False, max_hold=3600.0)
    await durable_log.set_retention("s", policy)
    assert (await durable_log.stream_info("s")).retention == policy
    await durable_log.set_retention("s", Retention(max_count=4))
    assert (await durable_log.stream_info("s")).retention.protect is True


def test_a_version_1_sqlite_file_gets_the_hold_columns(tmp_path: Path) -> None:
    import asyncio
    import sqlite3

    from eventlog.storage.sqlite_schema import APPLICATION_ID, MIGRATIONS

    db = tmp_path / "v1.db"
    conn = sqlite3.connect(db)
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("INSERT INTO streams (name, next_offset, max_count) VALUES ('old', 0, 5)")
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()

    async def read() -> Retention:
        async with EventLog.open(db) as log:
            return (await log.stream_info("old")).retention

    assert asyncio.run(read()) == Retention(max_count=5, protect=True, max_hold=None)
