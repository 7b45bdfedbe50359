"""Chaos: a flaky, restarted receiver and a server SIGKILLed twice while it delivers.

At the end every matching event was delivered at least once, exactly once
after de-duplicating by ``webhook-id``, nothing is left ``in_flight``, and the
ledger agrees with what the receiver acknowledged.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from standardwebhooks import Webhook

from tests.consumers.delivery.receiver import Received, Receiver
from tests.serverproc import ServerProcess
from tests.support import scaled

EVENTS = 400  # half of them match the endpoint's type filter


async def unfinished(api: httpx.AsyncClient) -> int:
    """Deliveries pending or in flight right now."""
    shown = (await api.get("/api/webhooks/chaos")).json()
    return int(shown["pending"]) + int(shown["in_flight"])


@pytest.mark.slow
async def test_delivery_survives_a_flaky_receiver_and_two_server_crashes(tmp_path: Path) -> None:
    rng = random.Random(20261122)
    acked: list[Received] = []

    async def flaky(request: web.Request, received: Received) -> web.StreamResponse:
        await asyncio.sleep(0.05)  # slow enough that the crashes hit deliveries in flight
        if rng.random() < 0.3:
            return web.Response(status=500)
        acked.append(received)
        return web.Response(status=200)

    receiver = await Receiver(behaviour=flaky).start()
    cfg = tmp_path / "eventlog.toml"
    cfg.write_text("[webhooks]\nallow_private_targets = true\n")
    server = await asyncio.to_thread(
        ServerProcess.start, db=tmp_path / "events.db", extra_args=["--config", str(cfg)]
    )
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=scaled(5)) as api:
            r = await api.post(
                "/api/webhooks",
                json={
                    "id": "chaos",
                    "url": receiver.url(),
                    "types": ["match.*"],
                    # The short preset's shape (doubling, no jitter) a tenth as long:
                    # a delivery failing several times in a row is still retried
                    # across both crashes, without waiting seconds between tries.
                    "retry": {"schedule": [0.1, 0.2, 0.4], "jitter": 0},
                    "max_attempts": 15,
                    "max_in_flight": 4,
                    "timeout": 2,
                },
            )
            assert r.status_code == 201, r.text
            secret = r.json()["secret"]

            async def produce() -> None:
                for start in range(0, EVENTS, 8):
                    batch = [
                        {
                            "id": f"ev-{n}",
                            "type": "match.created" if n % 2 == 0 else "other.created",
                            "data": {"n": n},
                        }
                        for n in range(start, start + 8)
                    ]
                    while True:  # retried across crashes; ids make it idempotent
                        try:
                            r = await api.post("/api/streams/events/events", json=batch)
                            if r.status_code == 201:
                                break
                        except httpx.HTTPError:
                            pass
                        await asyncio.sleep(0.05)
                    await asyncio.sleep(0.03)

            producer = asyncio.create_task(produce())
            await asyncio.sleep(1.5)
            assert await unfinished(api) > 0
            assert server.kill() == -9
            await asyncio.to_thread(server.restart)
            await asyncio.sleep(1.0)
            await receiver.stop()  # the receiver goes away and comes back
            await asyncio.sleep(0.5)
            await receiver.start()
            await asyncio.sleep(1.0)
            assert await unfinished(api) > 0
            assert server.kill() == -9
            await asyncio.to_thread(server.restart)
            await asyncio.wait_for(producer, scaled(60))

            log_events = (
                await api.get("/api/streams/events/events", params={"from": 0, "limit": 1000})
            ).json()
            events = log_events["events"] if isinstance(log_events, dict) else log_events
            assert len(events) == EVENTS  # no event lost or duplicated by the crashes
            matching = {e["offset"]: e for e in events if e["type"].startswith("match.")}

            deliveries: list[dict[str, object]] = []
            async with asyncio.timeout(scaled(40)):
                while True:
                    r = await api.get("/api/webhooks/chaos/deliveries", params={"limit": 1000})
                    deliveries = r.json()["deliveries"]
                    if len(deliveries) == len(matching) and all(
                        d["status"] == "delivered" for d in deliveries
                    ):
                        break
                    await asyncio.sleep(0.2)
    finally:
        await asyncio.to_thread(server.close)
        await receiver.stop()

    # The ledger: one delivery per matching event, all delivered, none in flight.
    assert sorted(d["offset"] for d in deliveries) == sorted(matching)  # type: ignore[type-var]
    ledger_ids = {str(d["id"]): d["offset"] for d in deliveries}

    # The receiver: every acknowledged request is signed and carries its event.
    verifier = Webhook(secret)
    seen: dict[str, int] = {}
    for request in acked:
        body = verifier.verify(request.body, request.headers)
        webhook_id = request.headers["webhook-id"]
        assert seen.setdefault(webhook_id, body["offset"]) == body["offset"]
        assert body == matching[body["offset"]]
    # Exactly once after de-duplication by webhook-id, and the ledger agrees.
    assert seen == ledger_ids
    assert len(seen) == len(matching)
    duplicates = len(acked) - len(seen)
    print(f"chaos: {len(acked)} acknowledged requests, {duplicates} duplicates after crashes")
