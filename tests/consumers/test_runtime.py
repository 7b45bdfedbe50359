"""ConsumerManager: poll, handle, commit; retry with backoff; graceful shutdown."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from consumers import Backoff, ConsumerManager, matches
from eventlog import END, Event, EventLog, NewEvent
from tests.support import scaled, stored_event, wait_until

FAST = Backoff(base=0.01, cap=0.05)


async def test_handler_gets_batches_and_offsets_are_committed(sqlite_log: EventLog) -> None:
    await sqlite_log.append_batch("s", [NewEvent(type="t", data=i) for i in range(25)])
    seen: list[int] = []

    async def handle(events: list[Event]) -> None:
        seen.extend(e.offset for e in events)

    manager = ConsumerManager(sqlite_log, poll_timeout=0.1)
    manager.add("c", "s", handle, batch_size=10)
    async with manager:
        await wait_until(lambda: len(seen) == 25)
        await sqlite_log.append("s", 25, type="t")
        await wait_until(lambda: len(seen) == 26)
    assert seen == list(range(26))
    assert await sqlite_log.storage.get_offset("c", "s") == 26
    (status,) = manager.status()
    assert (status.state, status.handled, status.committed) == ("stopped", 26, 26)


async def test_failing_handler_is_retried_without_advancing_the_offset(
    sqlite_log: EventLog,
) -> None:
    await sqlite_log.append_batch("s", [NewEvent(type="t", data=i) for i in range(3)])
    calls: list[list[int]] = []

    async def flaky(events: list[Event]) -> None:
        calls.append([e.offset for e in events])
        if len(calls) < 3:
            assert await sqlite_log.storage.get_offset("c", "s") is None
            raise RuntimeError("receiver down")

    manager = ConsumerManager(sqlite_log, backoff=FAST, poll_timeout=0.1)
    manager.add("c", "s", flaky)
    async with manager:
        await wait_until(lambda: len(calls) == 3)
        await wait_until(lambda: manager.status()[0].committed == 3)
    assert calls == [[0, 1, 2]] * 3
    status = manager.status()[0]
    assert status.failures == 2
    assert status.last_error == "RuntimeError: receiver down"


async def test_filters_pass_matching_types_and_key_but_commit_everything(
    sqlite_log: EventLog,
) -> None:
    await sqlite_log.append("s", 1, type="order.created", key="a")
    await sqlite_log.append("s", 2, type="order.paid", key="b")
    await sqlite_log.append("s", 3, type="user.created", key="a")
    await sqlite_log.append("s", 4, type="order.paid", key="a")
    got: list[int] = []

    async def handle(events: list[Event]) -> None:
        got.extend(e.offset for e in events)

    manager = ConsumerManager(sqlite_log, poll_timeout=0.1)
    manager.add("c", "s", handle, types=["order.*"], key="a")
    async with manager:
        await wait_until(lambda: manager.status()[0].committed == 4)
    assert got == [0, 3]


async def test_shutdown_finishes_the_batch_in_hand_and_commits(sqlite_log: EventLog) -> None:
    await sqlite_log.append_batch("s", [NewEvent(type="t", data=i) for i in range(5)])
    started = asyncio.Event()
    finished: list[int] = []

    async def slow(events: list[Event]) -> None:
        started.set()
        await asyncio.sleep(0.3)
        finished.extend(e.offset for e in events)

    manager = ConsumerManager(sqlite_log)
    manager.add("c", "s", slow)
    await manager.start()
    await asyncio.wait_for(started.wait(), scaled(5))
    await manager.shutdown()
    await asyncio.wait_for(manager.wait_for_shutdown(), scaled(1))
    assert finished == [0, 1, 2, 3, 4]
    assert await sqlite_log.storage.get_offset("c", "s") == 5


async def test_shutdown_interrupts_an_idle_consumer_promptly(sqlite_log: EventLog) -> None:
    async def never(events: list[Event]) -> None:
        raise AssertionError("no events were appended")

    manager = ConsumerManager(sqlite_log, poll_timeout=60)
    manager.add("c", "s", never, start=END)
    await manager.start()
    await wait_until(lambda: sqlite_log.heads.parked("s") > 0, what="the consumer parked")
    await asyncio.wait_for(manager.shutdown(), scaled(2))
    assert manager.status()[0].state == "stopped"


async def test_consumer_resumes_after_restart_from_committed_offset(tmp_path: Path) -> None:
    path = tmp_path / "e.db"
    got: list[int] = []

    async def handle(events: list[Event]) -> None:
        got.extend(e.offset for e in events)

    async with EventLog.open(path) as log:
        await log.append_batch("s", [NewEvent(type="t", data=i) for i in range(3)])
        async with ConsumerManager(log, poll_timeout=0.1) as manager:
            manager.add("c", "s", handle)
            await wait_until(lambda: len(got) == 3)
    async with EventLog.open(path) as log:
        await log.append_batch("s", [NewEvent(type="t", data=i) for i in range(2)])
        async with ConsumerManager(log, poll_timeout=0.1) as manager:
            manager.add("c", "s", handle)
            await wait_until(lambda: len(got) == 5)
    assert got == [0, 1, 2, 3, 4]


def test_duplicate_names_and_bad_batch_sizes_are_refused(memory_log: EventLog) -> None:
    async def handle(events: list[Event]) -> None: ...

    manager = ConsumerManager(memory_log)
    manager.add("c", "s", handle)
    with pytest.raises(ValueError, match="already registered"):
        manager.add("c", "s", handle)
    with pytest.raises(ValueError, match="batch_size"):
        manager.add("d", "s", handle, batch_size=0)


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    policy = Backoff(base=1.0, cap=8.0)
    assert [policy.delay(n, rand=lambda: 1.0) for n in range(1, 7)] == [1, 2, 4, 8, 8, 8]
    assert policy.delay(3, rand=lambda: 0.5) == 2.0


def test_matches_uses_globs_and_exact_keys() -> None:
    from datetime import UTC, datetime

    event = stored_event(b"1", id="i", type="order.created", key="k", time=datetime.now(UTC))
    assert matches(event, [], None)
    assert matches(event, ["order.*"], "k")
    assert not matches(event, ["user.*"], None)
    assert not matches(event, ["order.*"], "other")


async def test_a_named_consumer_runs_in_one_manager_at_a_time(sqlite_log: EventLog) -> None:
    got: dict[str, list[int]] = {"a": [], "b": []}

    def handler(who: str):  # type: ignore[no-untyped-def]
        async def handle(events: list[Event]) -> None:
            got[who].extend(e.offset for e in events)

        return handle

    first = ConsumerManager(sqlite_log, poll_timeout=0.1, lease_retry=0.05)
    second = ConsumerManager(sqlite_log, poll_timeout=0.1, lease_retry=0.05)
    first.add("shared", "s", handler("a"))
    second.add("shared", "s", handler("b"))
    await first.start()
    await wait_until(lambda: first.status()[0].state == "running")
    await second.start()
    await sqlite_log.append("s", 0, type="t")
    await wait_until(lambda: got["a"] == [0])
    assert second.status()[0].state == "waiting"
    await first.shutdown()  # releases the lease: the second takes over
    await sqlite_log.append("s", 1, type="t")
    await wait_until(lambda: got["b"] == [1])
    await second.shutdown()
    assert got == {"a": [0], "b": [1]}
