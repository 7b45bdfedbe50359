"""Shared consumers in Python, on every backend (memory, SQLite, PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable

import pytest

from consumers.shared import (
    AlreadyAcked,
    ClaimExpired,
    ClaimNotHeld,
    ConsumerConflict,
    ConsumerNotShared,
    SharedConsumers,
    SharedSpec,
)
from eventlog import EventLog, Retention
from eventlog.errors import ConsumerNotFound, InvalidField, InvalidInput
from eventlog.holds import HoldPolicy
from tests.support import scaled, wait_until


class Clock:
    """A clock the test moves (claims expire without sleeping)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def shared(any_log: EventLog, clock: Clock) -> AsyncIterator[SharedConsumers]:
    consumers = SharedConsumers(any_log, clock=clock, poll=0.05)
    await consumers.open()
    yield consumers
    consumers.close()


async def append(log: EventLog, n: int, key: str | None = None, stream: str = "orders") -> None:
    for i in range(n):
        await log.append(stream, {"i": i}, type="order.created", key=key)


async def test_workers_share_the_events_and_the_committed_offset_is_the_ack_floor(
    any_log: EventLog, shared: SharedConsumers
) -> None:
    await append(any_log, 5)
    mailer = await shared.declare("mailer", SharedSpec(stream="orders"))
    first = await mailer.claim("w1", max=2)
    second = await mailer.claim("w2", max=10)
    assert [c.offset for c in first] == [0, 1]
    assert [c.offset for c in second] == [2, 3, 4]
    assert [bytes(c.event.data) for c in first] == [b'{"i":0}', b'{"i":1}']
    assert await mailer.claim("w3") == []
    assert await mailer.ack("w2", [c.id for c in second]) == 3
    assert await any_log.committed_offset("mailer", "orders") == 0  # 0 and 1 still unacked
    assert await mailer.ack("w1", [first[1].id]) == 1
    assert await any_log.committed_offset("mailer", "orders") == 0
    assert await mailer.ack("w1", [first[0].id]) == 1
    assert await any_log.committed_offset("mailer", "orders") == 5
    info = await mailer.info()
    assert (info.ack_floor, info.head, info.pending, info.claimed, info.parked) == (5, 5, 0, 0, 0)
    assert info.oldest_unacked_age is None


async def test_an_expired_claim_goes_to_another_worker_and_the_first_cannot_ack_it(
    any_log: EventLog, shared: SharedConsumers, clock: Clock
) -> None:
    await append(any_log, 1)
    c = await shared.declare("c", SharedSpec(stream="orders", ack_wait=10))
    (mine,) = await c.claim("w1")
    clock.now += 5
    expires = await c.in_progress("w1", [mine.id])
    assert expires.timestamp() == clock.now + 10
    clock.now += 9
    assert await c.claim("w2") == []  # extended: not expired yet
    clock.now += 2
    (theirs,) = await c.claim("w2")
    assert (theirs.offset, theirs.attempt) == (0, 2)
    with pytest.raises(ClaimExpired):
        await c.ack("w1", [mine.id])
    with pytest.raises(ClaimNotHeld):
        await c.ack("w1", [theirs.id])
    assert await c.ack("w2", [theirs.id]) == 1
    with pytest.raises(AlreadyAcked):
        await c.ack("w2", [theirs.id])


async def test_nack_hands_the_event_out_again_after_its_delay(
    any_log: EventLog, shared: SharedConsumers, clock: Clock
) -> None:
    await append(any_log, 2)
    c = await shared.declare("c", SharedSpec(stream="orders"))
    claims = await c.claim("w1")
    assert await c.nack("w1", [claims[0].id], delay=30) == 1
    assert await c.nack("w1", [claims[1].id]) == 1
    (one,) = await c.claim("w2")
    assert one.offset == 1
    await c.ack("w2", [one.id])
    clock.now += 30
    again = await c.claim("w2")
    assert [(x.offset, x.attempt) for x in again] == [(0, 2)]


async def test_an_event_handed_out_max_deliver_times_is_parked_and_the_floor_passes_it(
    any_log: EventLog, shared: SharedConsumers, clock: Clock
) -> None:
    await append(any_log, 2)
    c = await shared.declare("c", SharedSpec(stream="orders", max_deliver=2, ack_wait=1))
    (_, y) = await c.claim("w1")
    await c.ack("w1", [y.id])
    clock.now += 2
    (again,) = await c.claim("w1")
    assert (again.offset, again.attempt) == (0, 2)
    clock.now += 2
    assert await c.claim("w1") == []
    parked = await any_log.read("c.parked", 0)
    assert [(e.headers["parked-offset"], e.headers["parked-attempts"]) for e in parked] == [
        ("0", "2")
    ]
    assert parked[0].headers["parked-error-type"] == "Undelivered"
    assert await any_log.committed_offset("c", "orders") == 2
    assert (await c.info()).parked == 1


async def test_per_key_order_holds_back_later_events_of_a_claimed_key(
    any_log: EventLog, shared: SharedConsumers
) -> None:
    for key in ["a", "a", "b", "a", "b"]:
        await any_log.append("orders", {}, type="t", key=key)
    c = await shared.declare("c", SharedSpec(stream="orders", ordered_by_key=True))
    first = await c.claim("w1", max=10)
    assert [x.offset for x in first] == [0, 2]
    assert await c.claim("w2") == []
    await c.ack("w1", [first[1].id])
    assert [x.offset for x in await c.claim("w2")] == [4]
    await c.ack("w1", [first[0].id])
    assert [x.offset for x in await c.claim("w2")] == [1]


async def test_a_long_poll_claim_wakes_on_append(
    any_log: EventLog, shared: SharedConsumers
) -> None:
    c = await shared.declare("c", SharedSpec(stream="orders", start="end"))
    waiting = asyncio.create_task(c.claim("w1", wait=10))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    await append(any_log, 1)
    claims = await asyncio.wait_for(waiting, 5)
    assert [x.offset for x in claims] == [0]


async def test_two_claims_at_once_both_return_at_once_when_events_are_ready(
    sqlite_log: EventLog,
) -> None:
    # A long poll so that a claim left waiting for the next look would show.
    shared = SharedConsumers(sqlite_log, poll=10)
    await shared.open()
    c = await shared.declare("c", SharedSpec(stream="orders"))
    await append(sqlite_log, 6)
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def timed(worker: str) -> tuple[float, list[int]]:
        claims = await c.claim(worker, max=3, wait=20)
        return loop.time() - started, [x.offset for x in claims]

    (t1, first), (t2, second) = await asyncio.gather(timed("w1"), timed("w2"))
    assert sorted(first + second) == [0, 1, 2, 3, 4, 5]
    # The one that lost the race to feed the ledger claims what the other fed.
    assert abs(t2 - t1) < scaled(1.0), (t1, t2)


async def test_filters_skip_events_and_the_floor_moves_past_them(
    any_log: EventLog, shared: SharedConsumers
) -> None:
    await any_log.append("orders", {}, type="order.created")
    await any_log.append("orders", {}, type="order.paid")
    c = await shared.declare("c", SharedSpec(stream="orders", types=["order.paid"]))
    (only,) = await c.claim("w1")
    assert only.offset == 1
    await c.ack("w1", [only.id])
    assert await any_log.committed_offset("c", "orders") == 2


async def test_declare_is_idempotent_keeps_its_stream_and_names_are_checked(
    any_log: EventLog, shared: SharedConsumers
) -> None:
    spec = SharedSpec(stream="orders", ack_wait=5)
    a = await shared.declare("c", spec)
    assert await shared.declare("c", spec) is a
    await shared.declare("c", SharedSpec(stream="orders", ack_wait=9))
    assert a.spec.ack_wait == 9
    with pytest.raises(ConsumerConflict):
        await shared.declare("c", SharedSpec(stream="payments"))
    with pytest.raises(InvalidInput):
        await shared.declare("bad name", spec)
    for ack_wait in (0, 1e-300, 0.09, 86_401):
        with pytest.raises(InvalidField, match=r"ack_wait must be 0\.1 to 86400 seconds"):
            await shared.declare("c2", SharedSpec(stream="orders", ack_wait=ack_wait))
    short = await shared.declare("c3", SharedSpec(stream="orders", ack_wait=0.1))
    assert short.spec.ack_wait == 0.1
    await shared.delete("c3")
    assert await shared.names() == ["c"]


async def test_unknown_and_plain_consumers_are_not_shared(
    any_log: EventLog, shared: SharedConsumers
) -> None:
    with pytest.raises(ConsumerNotFound):
        await shared.get("nobody")
    await any_log.commit_offset("plain", "orders", 0)
    with pytest.raises(ConsumerNotShared):
        await shared.get("plain")
    await shared.declare("gone", SharedSpec(stream="orders"))
    assert await shared.delete("gone")
    with pytest.raises(ConsumerNotFound):  # deleted: the name is free again
        await shared.get("gone")
    assert not await shared.delete("gone")
    with pytest.raises(ConsumerConflict):  # a plain consumer's position is never taken over
        await shared.declare("plain", SharedSpec(stream="orders"))
    assert await any_log.committed_offset("plain", "orders") == 0
    assert (await shared.declare("gone", SharedSpec(stream="orders"))).name == "gone"


async def test_the_claims_iterator_settles_through_the_held_claim(
    any_log: EventLog, shared: SharedConsumers
) -> None:
    await append(any_log, 3)
    c = await shared.declare("c", SharedSpec(stream="orders"))
    seen = []
    async for claim in c.claims("w1", max=2, wait=0.1):
        seen.append(claim.offset)
        assert (claim.stream, claim.attempt, claim.id) == ("orders", 1, claim.claim.id)
        await claim.ack()
        if len(seen) == 3:
            break
    assert seen == [0, 1, 2]
    assert await any_log.committed_offset("c", "orders") == 3


async def test_events_retention_removed_before_any_claim_are_skipped_and_said(
    sqlite_log: EventLog,
) -> None:
    shared = SharedConsumers(sqlite_log)
    await shared.open()
    c = await shared.declare("c", SharedSpec(stream="orders"))
    for name in ("c", "c.feed"):
        sqlite_log.set_hold_policy(name, HoldPolicy(protect=False))
    await append(sqlite_log, 5)
    await sqlite_log.set_retention("orders", Retention(max_count=2, protect=False))
    assert await sqlite_log.enforce_retention() == 3
    assert [x.offset for x in await c.claim("w1")] == [3, 4]
    notices = [e for e in await sqlite_log.read("system", 0) if e.type == "consumer.truncated"]
    assert len(notices) == 1
    assert b'"consumer":"c"' in bytes(notices[0].data)


async def test_pruning_acked_rows_keeps_the_ack_floor_the_counts_and_the_claims(
    any_log: EventLog, shared: SharedConsumers, clock: Clock
) -> None:
    await append(any_log, 6)
    mailer = await shared.declare("mailer", SharedSpec(stream="orders"))
    first = await mailer.claim("w1", max=3)
    assert await mailer.ack("w1", [c.id for c in first[1:]]) == 2  # 0 stays claimed
    (third,) = await mailer.claim("w2", max=1)
    assert await mailer.ack("w2", [third.id]) == 1
    before = await mailer.info()
    assert (before.ack_floor, before.claimed) == (0, 1)
    clock.now += 1
    assert await shared.ledger.prune(clock.now, 100) == 3  # the acked rows: 1, 2, 3
    clock.now -= 1
    assert await mailer.info() == before
    assert await mailer.ack("w1", [first[0].id]) == 1
    assert (await mailer.info()).ack_floor == 4
    assert await any_log.committed_offset("mailer", "orders") == 4
    assert [c.offset for c in await mailer.claim("w3", max=10)] == [4, 5]  # none again


async def test_on_a_ledger_of_their_own_acked_rows_go_after_keep_history(
    any_log: EventLog,
) -> None:
    """Without a webhook engine to share a ledger with (``[webhooks] enabled = false``,
    or embedded on their own), shared consumers prune their finished rows themselves."""
    shared = SharedConsumers(any_log, poll=0.05, keep_history=0.3)
    await shared.open()
    try:
        await append(any_log, 3)
        mailer = await shared.declare("mailer", SharedSpec(stream="orders"))
        claims = await mailer.claim("w1", max=3)
        assert await mailer.ack("w1", [c.id for c in claims[1:]]) == 2

        async def left() -> list[tuple[int, str]]:
            rows = await shared.ledger.deliveries("shared:mailer")
            return [(d.offset, d.status) for d in rows]

        await wait_until(lambda: _is(left(), [(0, "in_flight")]), what="the acked rows pruned")
        assert (await mailer.info()).claimed == 1
        assert await mailer.ack("w1", [claims[0].id]) == 1
        assert await any_log.committed_offset("mailer", "orders") == 3
    finally:
        shared.close()


async def _is(value: Awaitable[object], expected: object) -> bool:
    return await value == expected
