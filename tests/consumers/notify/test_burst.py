"""Must-show: bursts of 200 events to a local fake Discord and fake Slack that enforce the
services' limits and answer 429 as they document."""

from __future__ import annotations

import re
from typing import Any

from consumers.delivery.engine import DeliveryEngine
from consumers.delivery.model import Delivery
from eventlog import EventLog
from eventlog.model import NewEvent
from tests.consumers.notify.conftest import add_target, deliveries
from tests.consumers.notify.fakes import FakeDiscord, FakeSlack
from tests.support import scaled, wait_until

BURST = 200


async def burst(log: EventLog, stream: str) -> None:
    events = [
        NewEvent(
            type="order.created",
            key=f"k{i % 7}",
            data={"order": {"id": i, "tag": "<!channel>", "note": "x" * i * 30}},
        )
        for i in range(BURST)
    ]
    await log.append_batch(stream, events)


async def settled(engine: DeliveryEngine, endpoint_id: str) -> list[Delivery]:
    """The ledger once every delivery is finished (the last answer may still be recording)."""

    async def done() -> bool:
        rows = await deliveries(engine, endpoint_id)
        return len(rows) == BURST and all(r.status in ("delivered", "failed") for r in rows)

    await wait_until(done, timeout=20)
    return await deliveries(engine, endpoint_id)


async def burst_to(
    log: EventLog,
    engine: DeliveryEngine,
    fake: FakeDiscord | FakeSlack,
    kind: str,
    options: dict[str, Any],
) -> list[Delivery]:
    """A burst to ``fake`` through a new ``kind`` target with ``options``; once all
    BURST messages arrived, the settled ledger. The fake is stopped after."""
    try:
        ep = await add_target(
            engine, kind=kind, url=fake.url(), stream="orders", start="beginning", options=options
        )
        await burst(log, "orders")
        await wait_until(lambda: len(fake.messages) >= BURST, timeout=60)
        return await settled(engine, ep.id)
    finally:
        await fake.stop()


def offsets_in(texts: list[str]) -> list[int]:
    return [int(m.group(1)) for t in texts if (m := re.search(r"#(\d+) ", t))]


async def test_discord_burst_is_delivered_completely_in_order_without_early_requests(
    log: EventLog, engine: DeliveryEngine
) -> None:
    # Buckets of 5 per 0.05 s: the engine paces itself by the headers, so the 429s
    # are the shared-limit ones (every 37th request).
    fake = await FakeDiscord(limit=5, window=0.05, shared_every=37).start()
    rows = await burst_to(
        log,
        engine,
        fake,
        "discord",
        {"template": "#{offset} {type} order {data.order.id}: {data.order.note}"},
    )
    assert offsets_in([m["content"] for m in fake.messages]) == list(range(BURST))
    assert fake.early == 0, "a request arrived before an announced retry_after expired"
    assert fake.rate_limited > 0, "the fake never answered 429: the test proved nothing"
    # Honoured exactly: the next request follows the end of each wait closely.
    assert fake.overshoot
    assert sorted(fake.overshoot)[len(fake.overshoot) // 2] < scaled(0.1)
    assert fake.without_wait == 0
    assert all(len(m["content"]) <= 2000 for m in fake.messages)
    # Offset 199's note is 5970 characters: cut visibly, deterministically.
    assert fake.messages[-1]["content"].endswith(" chars]")
    assert [r.status for r in rows] == ["delivered"] * BURST
    # A 429 is a wait, not a used-up attempt.
    assert {r.attempts for r in rows} == {1}
    assert sum(r.rate_limited for r in rows) > 0


async def test_discord_without_bucket_headers_429s_are_honoured_exactly(
    log: EventLog, engine: DeliveryEngine
) -> None:
    fake = await FakeDiscord(limit=5, window=0.1, send_headers=False).start()
    rows = await burst_to(log, engine, fake, "discord", {"template": "#{offset} {type}"})
    assert offsets_in([m["content"] for m in fake.messages]) == list(range(BURST))
    # How many buckets run dry depends on how fast this machine sends (a loaded one
    # refills some windows before they empty); what must hold is that there were 429s
    # and that each one was waited out.
    assert fake.rate_limited > 0, "the fake never answered 429: the test proved nothing"
    assert fake.early == 0
    assert sorted(fake.overshoot)[len(fake.overshoot) // 2] < scaled(0.1)
    assert {r.attempts for r in rows} == {1}


async def test_slack_burst_is_delivered_completely_in_order_without_early_requests(
    log: EventLog, engine: DeliveryEngine
) -> None:
    fake = await FakeSlack(burst=40, rate=40).start()
    rows = await burst_to(
        log,
        engine,
        fake,
        "slack",
        {
            "template": "#{offset} {type} {data.order.tag}",
            "title": "Order {data.order.id}",
        },
    )
    assert offsets_in([m["text"] for m in fake.messages]) == list(range(BURST))
    assert fake.early == 0, "a request arrived before Retry-After expired"
    assert fake.rate_limited > 0
    assert max(fake.overshoot) < scaled(0.5)
    assert [r.status for r in rows] == ["delivered"] * BURST
    assert {r.attempts for r in rows} == {1}
    # Values from events are escaped; the header block carries the title.
    assert fake.messages[0]["text"] == "#0 order.created &lt;!channel&gt;"
    assert fake.messages[0]["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Order 0"},
    }


async def test_per_key_ordering_keeps_each_keys_order(
    log: EventLog, engine: DeliveryEngine
) -> None:
    discord = await FakeDiscord(limit=5, window=0.05).start()
    try:
        await add_target(
            engine,
            kind="discord",
            url=discord.url(),
            stream="orders",
            start="beginning",
            ordering="per-key",
            options={"template": "#{offset} {key}"},
        )
        await burst(log, "orders")
        await wait_until(lambda: len(discord.messages) >= BURST, timeout=60)
    finally:
        await discord.stop()
    assert discord.early == 0
    seen: dict[str, list[int]] = {}
    for m in discord.messages:
        offset, key = m["content"][1:].split(" ")
        seen.setdefault(key, []).append(int(offset))
    assert sorted(o for v in seen.values() for o in v) == list(range(BURST))
    assert all(v == sorted(v) for v in seen.values())
