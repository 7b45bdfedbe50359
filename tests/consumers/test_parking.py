"""Failure policy: poison events are parked after max_attempts, stop halts, replay re-handles."""

from __future__ import annotations

import json
import sqlite3
from functools import partial
from pathlib import Path

import pytest

from consumers import Backoff, ConsumerManager
from consumers.failure import FailurePolicy
from consumers.parking import original_event, parked_stream
from eventlog import Event, EventLog, InvalidInput, NewEvent
from tests.support import wait_until as support_wait_until

FAST = Backoff(base=0.001, cap=0.005)


wait_until = partial(support_wait_until, timeout=20.0)


class Poisoned:
    """A handler that refuses any batch holding a poison event until fixed."""

    def __init__(self) -> None:
        self.fixed = False
        self.handled: list[int] = []
        self.calls_with_poison = 0

    async def __call__(self, events: list[Event]) -> None:
        if any(json.loads(bytes(e.data))["poison"] for e in events):
            self.calls_with_poison += 1
            if not self.fixed:
                raise ValueError("cannot digest this")
        self.handled.extend(e.offset for e in events)


async def test_poison_event_in_10000_is_parked_and_replays_once_fixed(
    durable_log: EventLog,
) -> None:
    log, poison = durable_log, 6_173
    for start in range(0, 10_000, 1_000):
        batch = [
            NewEvent(type="n", data={"poison": i == poison}) for i in range(start, start + 1000)
        ]
        await log.append_batch(
            "s",
            batch,
        )
    handler = Poisoned()
    manager = ConsumerManager(log, backoff=FAST, poll_timeout=0.1)
    manager.add("c", "s", handler, batch_size=100, max_attempts=5)
    async with manager:
        await wait_until(lambda: manager.status()[0].committed == 10_000)
        status = manager.status()[0]
        assert handler.handled == [i for i in range(10_000) if i != poison]
        assert (status.state, status.parked) == ("running", 1)
        assert status.last_error == "ValueError: cannot digest this"
        # 5 calls with the whole batch, one per slice that held it, 4 more alone.
        assert handler.calls_with_poison == 5 + 7 + 4

        (parked,) = await log.read("c.parked", 0, 10)
        assert parked.headers == {
            "parked-stream": "s",
            "parked-offset": str(poison),
            "parked-id": parked.headers["parked-id"],
            "parked-time": parked.headers["parked-time"],
            "parked-consumer": "c",
            "parked-error-type": "ValueError",
            "parked-error": "cannot digest this",
            "parked-attempts": "5",
        }
        (original,) = await log.read("s", poison, 1)
        assert original_event(parked) == original

        refused = await manager.replay_parked("c")
        assert (refused.replayed, refused.remaining) == (0, 1)
        assert refused.error == "ValueError: cannot digest this"

        handler.fixed = True
        result = await manager.replay_parked("c")
        assert (result.replayed, result.remaining, result.error) == (1, 0, None)
        assert handler.handled[-1] == poison
        assert (await manager.replay_parked("c")).replayed == 0  # nothing twice
    assert handler.handled.count(poison) == 1


async def test_stop_policy_halts_the_consumer_with_a_visible_reason(sqlite_log: EventLog) -> None:
    await sqlite_log.append_batch(
        "s", [NewEvent(type="n", data={"poison": i == 2}) for i in range(5)]
    )
    handler = Poisoned()
    manager = ConsumerManager(sqlite_log, backoff=FAST, poll_timeout=0.1)
    manager.add("c", "s", handler, batch_size=1, max_attempts=3, on_failure="stop")
    async with manager:
        await wait_until(lambda: manager.status()[0].state == "stopped")
        status = manager.status()[0]
        assert status.committed == 2
        assert status.failures == 3
        assert status.reason == (
            "stopped after 3 failed attempts at offset 2: ValueError: cannot digest this"
        )
        assert handler.handled == [0, 1]
    assert await sqlite_log.streams() == [await sqlite_log.stream_info("s")]  # nothing parked


async def test_retry_policy_keeps_retrying_past_max_attempts(sqlite_log: EventLog) -> None:
    await sqlite_log.append("s", {"poison": True}, type="n")
    handler = Poisoned()
    manager = ConsumerManager(sqlite_log, backoff=FAST, poll_timeout=0.1)
    manager.add("c", "s", handler, max_attempts=2, on_failure="retry")
    async with manager:
        await wait_until(lambda: handler.calls_with_poison >= 6)
        assert manager.status()[0].committed is None
        handler.fixed = True
        await wait_until(lambda: manager.status()[0].committed == 1)
    assert manager.status()[0].parked == 0


async def test_every_poison_event_of_a_batch_is_parked_and_the_rest_handled_in_order(
    sqlite_log: EventLog,
) -> None:
    poisons = {0, 7, 8, 31}
    events = [NewEvent(type="n", data={"poison": i in poisons}) for i in range(32)]
    await sqlite_log.append_batch("s", events)
    handler = Poisoned()
    manager = ConsumerManager(sqlite_log, backoff=FAST, poll_timeout=0.1)
    manager.add("c", "s", handler, batch_size=32, max_attempts=1)
    async with manager:
        await wait_until(lambda: manager.status()[0].committed == 32)
    assert handler.handled == [i for i in range(32) if i not in poisons]
    parked = await sqlite_log.read("c.parked", 0, 10)
    assert [int(e.headers["parked-offset"]) for e in parked] == sorted(poisons)
    assert {e.headers["parked-attempts"] for e in parked} == {"1"}


async def test_replay_of_an_unknown_consumer_is_refused(memory_log: EventLog) -> None:
    from eventlog import ConsumerNotFound

    with pytest.raises(ConsumerNotFound):
        await ConsumerManager(memory_log).replay_parked("nobody")


def test_policies_and_names_are_checked() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        FailurePolicy(max_attempts=0)
    with pytest.raises(ValueError, match="on_failure"):
        FailurePolicy(on_failure="ignore")  # type: ignore[arg-type]
    assert parked_stream("orders-mailer") == "orders-mailer.parked"
    with pytest.raises(InvalidInput, match="too long for its parked stream"):
        parked_stream("c" * 125)


async def test_an_event_an_older_version_stored_not_utf8_is_parked_repaired_and_later_ones_flow(
    tmp_path: Path,
) -> None:
    """The log refuses such data now, so parking it as it was would fail for ever."""
    db = tmp_path / "events.db"
    async with EventLog.open(db) as log:
        await log.append("s", {"poison": False}, type="n")
    with sqlite3.connect(db) as conn:  # as an older version stored it
        conn.execute(
            "INSERT INTO events (stream, offset, id, type, time_us, data) "
            "VALUES ('s', 1, 'old-1', 'n', 0, ?)",
            (b'{"poison": "caf\xe9"}',),
        )
        conn.execute("UPDATE streams SET next_offset = 2 WHERE name = 's'")
    conn.close()
    async with EventLog.open(db) as log:
        await log.append("s", {"poison": False}, type="n")
        handled: list[int] = []

        async def handler(events: list[Event]) -> None:
            for e in events:
                e.json()  # raises on the stored bytes that are not UTF-8
                handled.append(e.offset)

        manager = ConsumerManager(log, backoff=FAST, poll_timeout=0.1)
        manager.add("c", "s", handler, batch_size=10, max_attempts=2)
        async with manager:
            await wait_until(lambda: manager.status()[0].committed == 3)
            assert sorted(set(handled)) == [0, 2]  # batches are retried whole
            assert manager.status()[0].parked == 1
        (parked,) = await log.read("c.parked", 0, 10)
        assert parked.json() == {"poison": "caf\ufffd"}
        assert parked.headers["eventlog-repaired"] == "utf-8"
        assert parked.headers["parked-offset"] == "1"
