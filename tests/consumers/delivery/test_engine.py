"""The delivery engine against a real loopback receiver, on a real SQLite log."""

from __future__ import annotations

import asyncio
import email.utils
import json
import time

import msgspec
from aiohttp import web
from standardwebhooks import Webhook

from consumers.delivery.engine import DeliveryEngine
from consumers.delivery.kinds import OutgoingRequest, TargetKind
from consumers.delivery.ledger import ConsumerAdvance
from consumers.delivery.model import Endpoint, NewDelivery, new_delivery_id
from consumers.delivery.retry import RetryPolicy
from consumers.delivery.stores import ledger_for
from consumers.webhook import WEBHOOK, EndpointSpec, build_endpoint, rotate_secret
from eventlog import Event, EventLog
from tests.consumers.delivery.calls import claim, enqueue
from tests.consumers.delivery.conftest import add_endpoint, all_deliveries, statuses
from tests.consumers.delivery.receiver import Received, Receiver
from tests.support import scaled, wait_until


async def test_matching_events_arrive_signed_with_the_event_json_as_body(
    log: EventLog, engine: DeliveryEngine, receiver: Receiver
) -> None:
    ep = await add_endpoint(engine, receiver.url(), types=["order.*"])
    await log.append("events", {"n": 1}, type="order.created", headers={"x-correlation-id": "c-1"})
    await log.append("events", {"n": 2}, type="user.created")
    await log.append("events", {"n": 3}, type="order.paid", key="k")
    await receiver.wait_for(2, scaled(10))
    await asyncio.sleep(0.2)
    assert len(receiver.requests) == 2
    verifier = Webhook(ep.secrets[0].secret)  # the reference implementation, not ours
    events = await log.read("events", 0, 10)
    for request, event in zip(receiver.requests, [events[0], events[2]], strict=True):
        assert verifier.verify(request.body, request.headers) == json.loads(
            msgspec.json.encode(event)
        )
        assert request.body == msgspec.json.encode(event)
        assert request.headers["content-type"] == "application/json"
    assert receiver.requests[0].headers["x-correlation-id"] == "c-1"
    await wait_until(lambda: _all(engine, ep.id, "delivered"))


async def _all(engine: DeliveryEngine, endpoint_id: str, status: str) -> bool:
    got = await statuses(engine, endpoint_id)
    return bool(got) and all(s == status for s in got)


async def test_retries_keep_the_webhook_id_and_sign_with_a_fresh_timestamp(
    log: EventLog, engine: DeliveryEngine, receiver: Receiver
) -> None:
    async def flaky(request: web.Request, received: Received) -> web.StreamResponse:
        return web.Response(status=500 if len(receiver.requests) < 3 else 200)

    receiver.behaviour = flaky
    ep = await add_endpoint(engine, receiver.url())
    await log.append("events", {"n": 1}, type="t")
    await receiver.wait_for(3, scaled(15))
    ids = {r.headers["webhook-id"] for r in receiver.requests}
    assert len(ids) == 1
    stamps = [int(r.headers["webhook-timestamp"]) for r in receiver.requests]
    assert stamps[-1] - stamps[0] >= 2  # retried after 1 s then 2 s
    for r in receiver.requests:
        Webhook(ep.secrets[0].secret).verify(r.body, r.headers)
    await wait_until(lambda: _all(engine, ep.id, "delivered"))
    (delivery,) = await all_deliveries(engine, ep.id)
    assert delivery.id in ids
    got = await engine.store.delivery(ep.id, delivery.id)
    assert got is not None
    assert [(a.number, a.status, a.verdict) for a in got[1]] == [
        (1, 500, "retry"),
        (2, 500, "retry"),
        (3, 200, "delivered"),
    ]


async def test_rotated_secret_signs_twice_and_both_verify(
    log: EventLog, engine: DeliveryEngine, receiver: Receiver
) -> None:
    ep = await add_endpoint(engine, receiver.url())
    rotated, new_secret = rotate_secret(ep, now=time.time(), grace=3600)
    await engine.put_endpoint(rotated)
    await log.append("events", {"n": 1}, type="t")
    await receiver.wait_for(1, scaled(10))
    (request,) = receiver.requests
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    Webhook(new_secret).verify(request.body, request.headers)
    Webhook(ep.secrets[0].secret).verify(request.body, request.headers)


async def test_ordered_mode_holds_later_events_behind_a_failing_head(
    log: EventLog, engine: DeliveryEngine, receiver: Receiver
) -> None:
    async def first_fails_twice(request: web.Request, received: Received) -> web.StreamResponse:
        body = json.loads(received.body)
        failures = sum(1 for r in receiver.requests if json.loads(r.body)["offset"] == 0)
        return web.Response(status=503 if body["offset"] == 0 and failures <= 2 else 200)

    receiver.behaviour = first_fails_twice
    fast = RetryPolicy(schedule=(0.2, 0.4), jitter=0.0)  # time enough for later events to pass
    ep = await add_endpoint(engine, receiver.url(), ordering="ordered", retry=fast)
    for n in range(5):
        await log.append("events", {"n": n}, type="t")
    await receiver.wait_for(7, scaled(15))
    offsets = [json.loads(r.body)["offset"] for r in receiver.requests]
    assert offsets == [0, 0, 0, 1, 2, 3, 4]
    await wait_until(lambda: _all(engine, ep.id, "delivered"))


async def test_per_key_mode_orders_each_key_but_not_across_keys(
    log: EventLog, engine: DeliveryEngine, receiver: Receiver
) -> None:
    async def slow_a(request: web.Request, received: Received) -> web.StreamResponse:
        if json.loads(received.body)["key"] == "a":
            await asyncio.sleep(0.05)
        return web.Response(status=200)

    receiver.behaviour = slow_a
    ep = await add_endpoint(engine, receiver.url(), ordering="per-key", max_in_flight=10)
    for n in range(6):
        await log.append("events", {"n": n}, type="t", key="a")
        await log.append("events", {"n": n}, type="t", key="b")
    await receiver.wait_for(12, scaled(15))
    by_key: dict[str, list[int]] = {"a": [], "b": []}
    for r in receiver.requests:
        body = json.loads(r.body)
        by_key[body["key"]].append(body["data"]["n"])
    assert by_key == {"a": list(range(6)), "b": list(range(6))}
    keys = [json.loads(r.body)["key"] for r in receiver.requests]
    assert keys.index("b", 0) < 6  # b did not wait for all of a
    await wait_until(lambda: _all(engine, ep.id, "delivered"))


async def test_429_retry_after_is_honoured_without_using_an_attempt(
    log: EventLog, engine: DeliveryEngine, receiver: Receiver
) -> None:
    async def limited(request: web.Request, received: Received) -> web.StreamResponse:
        if len(receiver.requests) <= 3:
            return web.Response(status=429, headers={"Retry-After": "0"})
        return web.Response(status=200)

    receiver.behaviour = limited
    ep = await add_endpoint(engine, receiver.url(), max_attempts=1)
    await log.append("events", {"n": 1}, type="t")
    await wait_until(lambda: _all(engine, ep.id, "delivered"))
    (delivery,) = await all_deliveries(engine, ep.id)
    assert (delivery.attempts, delivery.rate_limited) == (1, 3)


async def test_a_retry_after_already_past_waits_by_the_schedule_not_at_once(
    log: EventLog, engine: DeliveryEngine, receiver: Receiver
) -> None:
    # A receiver that keeps answering 429 with a Retry-After date that has passed
    # (its clock behind, or a window end it never moves) got 104 requests within
    # a second: 100 free waits of 0 s, then the 4 attempts, and the delivery
    # failed without the schedule ever being used.
    async def stale(request: web.Request, received: Received) -> web.StreamResponse:
        past = email.utils.formatdate(time.time() - 30, usegmt=True)
        return web.Response(status=429, headers={"Retry-After": past})

    receiver.behaviour = stale
    ep = await add_endpoint(engine, receiver.url())  # short: 1 s, 2 s, 4 s
    await log.append("events", {"n": 1}, type="t")
    await receiver.wait_for(1, scaled(5))
    await asyncio.sleep(1.5)
    assert 2 <= len(receiver.requests) <= 3  # the first, then one a second
    (delivery,) = await all_deliveries(engine, ep.id)
    assert delivery.status == "pending"
    assert delivery.attempts == 0


async def test_410_disables_the_endpoint_and_tells_the_system_stream(
    log: EventLog, engine: DeliveryEngine, receiver: Receiver
) -> None:
    async def gone(request: web.Request, received: Received) -> web.StreamResponse:
        return web.Response(status=410)

    receiver.behaviour = gone
    ep = await add_endpoint(engine, receiver.url())
    await log.append("events", {"n": 1}, type="t")
    await log.append("events", {"n": 2}, type="t")
    await wait_until(lambda: _system_events(log))
    await asyncio.sleep(0.2)
    stored = await engine.store.get_endpoint(ep.id)
    assert stored is not None
    assert not stored.enabled
    assert stored.disabled_reason is not None
    assert "410" in stored.disabled_reason
    (event,) = await log.read("system", 0, 10)
    assert event.type == "delivery.endpoint.disabled"
    assert event.json() == {
        "endpoint": ep.id,
        "kind": "webhook",
        "target": f"http://127.0.0.1:{receiver.port}",
        "reason": stored.disabled_reason,
    }


async def _system_events(log: EventLog) -> bool:
    return bool(await log.read("system", 0, 10))


async def _disabled(engine: DeliveryEngine, endpoint_id: str) -> bool:
    ep = await engine.store.get_endpoint(endpoint_id)
    return ep is not None and not ep.enabled


async def test_continuous_failure_disables_the_endpoint(
    log: EventLog, engine: DeliveryEngine, receiver: Receiver
) -> None:
    async def broken(request: web.Request, received: Received) -> web.StreamResponse:
        return web.Response(status=500)

    receiver.behaviour = broken
    # Retries 0.2, 0.6 and 1.4 s after the first attempt: the third fails over a second on.
    fast = RetryPolicy(schedule=(0.2, 0.4, 0.8, 1.6), jitter=0.0)
    ep = await add_endpoint(engine, receiver.url(), disable_after=1, retry=fast)
    await log.append("events", {"n": 1}, type="t")
    # The system event is appended before the endpoint is stored disabled: wait for the store.
    await wait_until(lambda: _disabled(engine, ep.id), timeout=15, what="endpoint disabled")
    stored = await engine.store.get_endpoint(ep.id)
    assert stored is not None
    assert stored.disabled_reason is not None
    assert "failing continuously" in stored.disabled_reason
    assert "HTTP 500" in stored.disabled_reason
    events = await log.read("system", 0, 10)
    assert [e.type for e in events] == ["delivery.endpoint.disabled"]


async def test_in_flight_rows_left_by_a_crash_are_delivered_after_restart(
    log: EventLog, receiver: Receiver
) -> None:
    # What a crash leaves behind: a claimed delivery that was never recorded.
    store = ledger_for(log)
    await store.open()
    ep = build_endpoint(EndpointSpec(url=receiver.url(), retry="short"), now=time.time(), head=0)
    await store.put_endpoint(ep)
    await log.append("events", {"n": 1}, type="t")
    (event,) = await log.read("events", 0, 1)
    row = NewDelivery(
        id=new_delivery_id(),
        stream="events",
        offset=0,
        event_id=event.id,
        event_type="t",
        key=None,
        next_attempt_at=time.time(),
    )
    advance = ConsumerAdvance(ep.consumer_name, "events", 1)
    await enqueue(store, ep.id, [row], consumer=advance, now=time.time())
    await claim(store, ep.id, "concurrent", time.time(), 10)
    assert [d.status for d in await store.deliveries(ep.id)] == ["in_flight"]
    engine = DeliveryEngine(log, ledger_for(log), kinds={"webhook": WEBHOOK}, allow_private=True)
    await engine.start()
    try:
        await wait_until(lambda: _all(engine, ep.id, "delivered"))
        (request,) = receiver.requests
        assert request.headers["webhook-id"] == row.id
    finally:
        await engine.close()


async def _hang(request: web.Request, received: Received) -> web.StreamResponse:
    await asyncio.sleep(3600)
    raise AssertionError("unreachable")


async def _ok(request: web.Request, received: Received) -> web.StreamResponse:
    return web.Response(status=200)


async def test_replay_backfills_events_the_endpoint_never_saw(
    log: EventLog, engine: DeliveryEngine, receiver: Receiver
) -> None:
    for n in range(5):
        await log.append("events", {"n": n}, type="a" if n % 2 else "b")
    ep = await add_endpoint(engine, receiver.url(), types=["b"])
    head = (await log.bounds("events"))[1]
    assert ep.start_offset == 0  # built with head=0 in the helper; consumer starts at 0
    await receiver.wait_for(3, scaled(10))
    dry = await engine.replay(ep, from_offset=1, to_offset=head, dry_run=True)
    assert (dry.scanned, dry.matched, dry.dry_run) == (4, 2, True)
    await asyncio.sleep(0.2)
    assert len(receiver.requests) == 3
    done = await engine.replay(ep, from_offset=1)
    assert done.matched == 2
    await receiver.wait_for(5, scaled(10))
    replayed = [json.loads(r.body)["offset"] for r in receiver.requests[3:]]
    assert sorted(replayed) == [2, 4]
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 5


async def test_a_delivery_whose_event_was_trimmed_fails_with_a_clear_error(
    log: EventLog, engine: DeliveryEngine, receiver: Receiver
) -> None:
    for n in range(3):
        await log.append("events", {"n": n}, type="t")
    spec = EndpointSpec(url=receiver.url(), retry="short", enabled=False)
    ep = build_endpoint(spec, now=time.time(), head=3)  # only new events, plus the replay
    await engine.put_endpoint(ep)
    result = await engine.replay(ep, from_offset=0)
    assert result.matched == 3
    await log.storage.trim("events", 2)  # retention removes offsets 0 and 1
    enabled = msgspec.structs.replace(ep, enabled=True)
    await engine.put_endpoint(enabled)
    await receiver.wait_for(1, scaled(10))
    await wait_until(lambda: _finished(engine, ep.id, 3))
    rows = await all_deliveries(engine, ep.id)
    assert [d.status for d in rows] == ["failed", "failed", "delivered"]
    assert rows[0].last_error is not None
    assert "no longer in the log" in rows[0].last_error
    assert [json.loads(r.body)["offset"] for r in receiver.requests] == [2]


async def _finished(engine: DeliveryEngine, endpoint_id: str, count: int) -> bool:
    got = await statuses(engine, endpoint_id)
    return len(got) == count and all(s in ("delivered", "failed") for s in got)


async def test_skipping_the_blocked_head_unblocks_an_ordered_endpoint(
    log: EventLog, engine: DeliveryEngine, receiver: Receiver
) -> None:
    async def first_fails(request: web.Request, received: Received) -> web.StreamResponse:
        return web.Response(status=500 if json.loads(received.body)["offset"] == 0 else 200)

    receiver.behaviour = first_fails
    ep = await add_endpoint(
        engine, receiver.url(), ordering="ordered", retry=RetryPolicy(schedule=(3600.0,))
    )
    for n in range(3):
        await log.append("events", {"n": n}, type="t")
    await receiver.wait_for(1, scaled(10))
    await asyncio.sleep(0.3)
    assert len(receiver.requests) == 1  # the head waits an hour; nothing passes it
    head = (await all_deliveries(engine, ep.id))[0]
    await wait_until(lambda: _status_of(engine, ep.id, head.id, "pending"))
    skipped = await engine.act(ep.id, head.id, "skip")
    assert skipped is not None
    assert skipped.status == "failed"
    await receiver.wait_for(3, scaled(10))
    assert [json.loads(r.body)["offset"] for r in receiver.requests] == [0, 1, 2]


async def _status_of(engine: DeliveryEngine, endpoint_id: str, delivery_id: str, want: str) -> bool:
    got = await engine.store.delivery(endpoint_id, delivery_id)
    return got is not None and got[0].status == want


async def test_a_failing_target_kind_is_a_recorded_attempt_not_a_stuck_delivery(
    log: EventLog, receiver: Receiver
) -> None:
    def broken_format(ep: Endpoint, event: Event, delivery_id: str, now: float) -> OutgoingRequest:
        raise RuntimeError("template exploded")

    kinds = {"webhook": TargetKind("webhook", broken_format)}
    engine = DeliveryEngine(log, ledger_for(log), kinds=kinds, allow_private=True)
    await engine.start()
    try:
        ep = await add_endpoint(engine, receiver.url(), max_attempts=2)
        await log.append("events", {"n": 1}, type="t")
        await wait_until(lambda: _finished(engine, ep.id, 1), timeout=15)
        (delivery,) = await all_deliveries(engine, ep.id)
        assert delivery.status == "failed"
        assert delivery.attempts == 2
        assert delivery.last_error is not None
        assert "internal error in the 'webhook' target kind: RuntimeError" in delivery.last_error
        assert receiver.requests == []
    finally:
        await engine.close()


async def test_graceful_close_lets_attempts_in_progress_finish(
    log: EventLog, receiver: Receiver
) -> None:
    async def slow(request: web.Request, received: Received) -> web.StreamResponse:
        await asyncio.sleep(0.5)
        return web.Response(status=200)

    receiver.behaviour = slow
    engine = DeliveryEngine(log, ledger_for(log), kinds={"webhook": WEBHOOK}, allow_private=True)
    await engine.start()
    ep = await add_endpoint(engine, receiver.url())
    for n in range(3):
        await log.append("events", {"n": n}, type="t")
    await receiver.wait_for(3, scaled(10))
    await engine.close(grace=scaled(5))
    store = ledger_for(log)
    assert [d.status for d in await store.deliveries(ep.id)] == ["delivered"] * 3


async def test_changing_an_endpoint_mid_flight_leaves_nothing_in_flight(
    log: EventLog, engine: DeliveryEngine, receiver: Receiver
) -> None:
    changed = asyncio.Event()

    async def slow(request: web.Request, received: Received) -> web.StreamResponse:
        if not changed.is_set():  # slow while the endpoint changes, then quick
            await asyncio.sleep(0.3)
        return web.Response(status=200)

    receiver.behaviour = slow
    ep = await add_endpoint(engine, receiver.url(), max_in_flight=2)
    for n in range(20):
        await log.append("events", {"n": n}, type="t")
    await receiver.wait_for(2, scaled(10))
    for timeout in (5.0, 6.0, 7.0):  # each change restarts the endpoint's worker
        await engine.put_endpoint(msgspec.structs.replace(ep, timeout=timeout))
    changed.set()
    await wait_until(lambda: _all(engine, ep.id, "delivered"), timeout=30)
    delivered = {json.loads(r.body)["offset"] for r in receiver.requests}
    assert delivered == set(range(20))
