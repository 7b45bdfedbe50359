"""WriteBatch, the sans-I/O gathering and settling of one group commit."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from eventlog.batch import WriteBatch
from eventlog.errors import ExpectedOffsetMismatch, StorageError
from eventlog.storage.base import Appended, AppendRequest, PendingEvent


def ev(name: str = "e", *, given: bool = False, size: int = 1) -> PendingEvent:
    return PendingEvent(id=name, id_given=given, type="t", key=None, headers={}, data=b"x" * size)


def req(stream: str, *events: PendingEvent, expected: int | None = None) -> AppendRequest:
    return AppendRequest(stream=stream, events=list(events), expected_offset=expected)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def add(
    batch: WriteBatch, loop: asyncio.AbstractEventLoop, request: AppendRequest, single: bool
) -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = loop.create_future()
    batch.add(request, future, sum(len(e.data) for e in request.events), single)
    return future


def test_generated_batch_gathers_each_streams_events_in_order(
    loop: asyncio.AbstractEventLoop,
) -> None:
    batch = WriteBatch()
    add(batch, loop, req("a", ev("a0")), True)
    add(batch, loop, req("b", ev("b0"), ev("b1")), False)
    add(batch, loop, req("a", ev("a1"), ev("a2")), False)
    assert batch.generated
    assert {s: [e.id for e in evs] for s, evs in batch.streams.items()} == {
        "a": ["a0", "a1", "a2"],
        "b": ["b0", "b1"],
    }
    assert (batch.events, batch.nbytes) == (5, 5)


def test_settle_generated_gives_singles_their_offset_and_batches_theirs(
    loop: asyncio.AbstractEventLoop,
) -> None:
    batch = WriteBatch()
    one = add(batch, loop, req("a", ev()), True)
    two = add(batch, loop, req("b", ev(), ev()), False)
    three = add(batch, loop, req("a", ev(), ev()), False)
    heads = batch.settle_generated({"a": 10, "b": 0})
    assert heads == {"a": 13, "b": 2}
    assert one.result() == 10
    assert two.result() == Appended(offsets=[0, 1], written=2, next_offset=2)
    assert three.result() == Appended(offsets=[11, 12], written=2, next_offset=13)


@pytest.mark.parametrize(
    "request_",
    [
        req("s", ev("k", given=True)),
        req("s", ev(), expected=0),
        req("s", ev(), ev("k", given=True)),
    ],
    ids=["given id", "expected offset", "given id in a batch"],
)
def test_a_given_id_or_expected_offset_makes_the_batch_general(
    loop: asyncio.AbstractEventLoop, request_: AppendRequest
) -> None:
    batch = WriteBatch()
    add(batch, loop, req("s", ev()), True)
    add(batch, loop, request_, len(request_.events) == 1)
    assert not batch.generated
    assert batch.requests == [req("s", ev()), request_]


def test_settle_resolves_each_producer_from_its_outcome(loop: asyncio.AbstractEventLoop) -> None:
    batch = WriteBatch()
    single = add(batch, loop, req("s", ev()), True)
    retried = add(batch, loop, req("s", ev("k", given=True)), True)
    conflicted = add(batch, loop, req("s", ev(), expected=9), False)
    mismatch = ExpectedOffsetMismatch("s", 9, 1)
    heads, written = batch.settle(
        [
            Appended(offsets=[0], written=1, next_offset=1),
            Appended(offsets=[7], written=0, next_offset=1),
            mismatch,
        ]
    )
    assert (heads, written) == ({"s": 1}, 1)
    assert single.result() == 0
    assert retried.result() == 7
    assert conflicted.exception() is mismatch


def test_settling_skips_producers_that_gave_up(loop: asyncio.AbstractEventLoop) -> None:
    batch = WriteBatch()
    gone = add(batch, loop, req("s", ev()), True)
    kept = add(batch, loop, req("s", ev()), True)
    gone.cancel()
    assert batch.settle_generated({"s": 0}) == {"s": 2}
    assert kept.result() == 1


def test_fail_fails_every_waiting_producer(loop: asyncio.AbstractEventLoop) -> None:
    batch = WriteBatch()
    futures = [add(batch, loop, req("s", ev()), True) for _ in range(3)]
    error = StorageError("disk full")
    batch.fail(error)
    assert [f.exception() for f in futures] == [error] * 3


def test_split_keeps_queue_order_and_never_splits_a_request(
    loop: asyncio.AbstractEventLoop,
) -> None:
    batch = WriteBatch()
    futures = [add(batch, loop, req("s", ev(f"e{i}")), True) for i in range(3)]
    futures.append(add(batch, loop, req("s", ev("b0"), ev("b1")), False))
    first, second = batch.split()
    assert [e.id for e in first.streams["s"]] == ["e0", "e1"]
    assert [e.id for e in second.streams["s"]] == ["e2", "b0", "b1"]
    assert (first.events, second.events) == (2, 3)
    first.settle_generated({"s": 0})
    second.settle_generated({"s": 2})
    assert [f.result() for f in futures[:3]] == [0, 1, 2]
    assert futures[3].result() == Appended(offsets=[3, 4], written=2, next_offset=5)


def test_add_one_joins_the_generated_batch_like_a_single_request(
    loop: asyncio.AbstractEventLoop,
) -> None:
    batch = WriteBatch()
    one: asyncio.Future[Any] = loop.create_future()
    batch.add_one("a", ev("a0", size=3), one)
    two = add(batch, loop, req("a", ev("a1"), ev("a2")), False)
    assert batch.generated
    assert [e.id for e in batch.streams["a"]] == ["a0", "a1", "a2"]
    assert (batch.events, batch.nbytes) == (3, 5)
    assert batch.settle_generated({"a": 4}) == {"a": 7}
    assert one.result() == 4
    assert two.result() == Appended(offsets=[5, 6], written=2, next_offset=7)


def test_add_one_with_a_given_id_makes_the_batch_general_and_a_request_of_its_own(
    loop: asyncio.AbstractEventLoop,
) -> None:
    batch = WriteBatch()
    first: asyncio.Future[Any] = loop.create_future()
    given: asyncio.Future[Any] = loop.create_future()
    batch.add_one("s", ev("e0"), first)
    batch.add_one("s", ev("k", given=True), given)
    assert not batch.generated
    assert batch.requests == [req("s", ev("e0")), req("s", ev("k", given=True))]
    heads, written = batch.settle(
        [
            Appended(offsets=[3], written=1, next_offset=4),
            Appended(offsets=[1], written=0, next_offset=4),
        ]
    )
    assert (heads, written, first.result(), given.result()) == ({"s": 4}, 1, 3, 1)


def test_split_keeps_add_one_events_as_singles(loop: asyncio.AbstractEventLoop) -> None:
    batch = WriteBatch()
    futures: list[asyncio.Future[Any]] = [loop.create_future() for _ in range(4)]
    for i, future in enumerate(futures):
        batch.add_one("s", ev(f"e{i}"), future)
    first, second = batch.split()
    assert [e.id for e in second.streams["s"]] == ["e2", "e3"]
    first.settle_generated({"s": 0})
    second.settle_generated({"s": 2})
    assert [f.result() for f in futures] == [0, 1, 2, 3]
