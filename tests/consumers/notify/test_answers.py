"""What Discord's and Slack's error answers do to a target, through the real engine."""

from __future__ import annotations

import aiohttp
import pytest

from consumers.delivery.engine import DeliveryEngine
from consumers.delivery.model import Endpoint
from eventlog import EventLog
from tests.consumers.notify.conftest import add_target, deliveries
from tests.consumers.notify.fakes import FakeDiscord, FakeSlack
from tests.support import wait_until


async def disabled_reason(engine: DeliveryEngine, endpoint_id: str) -> str | None:
    ep = await engine.store.get_endpoint(endpoint_id)
    assert ep is not None
    return None if ep.enabled else ep.disabled_reason


async def one_event(
    log: EventLog,
    engine: DeliveryEngine,
    fake: FakeDiscord | FakeSlack,
    answer: tuple[int, bytes, str],
) -> Endpoint:
    """``fake`` answers ``answer`` from now on; a target of its kind on stream ``s``
    gets one event."""
    fake.fail_with = answer
    kind = "discord" if isinstance(fake, FakeDiscord) else "slack"
    ep = await add_target(engine, kind=kind, url=fake.url(), stream="s")
    await log.append("s", {"n": 1}, type="t")
    return ep


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (404, b'{"message": "Unknown Webhook", "code": 10015}', "Unknown Webhook (code 10015)"),
        (401, b'{"message": "Invalid Webhook Token", "code": 50027}', "Invalid Webhook Token"),
        (410, b"{}", "Discord answered 410"),
    ],
)
async def test_discord_gone_webhook_disables_the_target_with_the_reason(
    log: EventLog,
    engine: DeliveryEngine,
    discord: FakeDiscord,
    status: int,
    body: bytes,
    expected: str,
) -> None:
    ep = await one_event(log, engine, discord, (status, body, "application/json"))
    await wait_until(lambda: disabled_reason(engine, ep.id))
    reason = await disabled_reason(engine, ep.id)
    assert reason is not None
    assert expected in reason
    # The endpoint is disabled during the attempt; the ledger row is written just after.
    await wait_until(lambda: _statuses(engine, ep.id, ["failed"]))
    (row,) = await deliveries(engine, ep.id)
    assert (row.status, row.attempts) == ("failed", 1)
    # The disabling is visible in the system stream too.
    (notice,) = await log.read("system", 0, 10)
    assert notice.type == "delivery.endpoint.disabled"
    assert notice.json()["endpoint"] == ep.id  # type: ignore[index]


async def test_discord_400_is_final_and_keeps_the_target(
    log: EventLog, engine: DeliveryEngine, discord: FakeDiscord
) -> None:
    ep = await one_event(
        log,
        engine,
        discord,
        (
            400,
            b'{"message": "Invalid Form Body", "code": 50035}',
            "application/json",
        ),
    )
    await wait_until(lambda: discord.requests >= 1)
    await wait_until(lambda: deliveries(engine, ep.id), timeout=5)
    await wait_until(lambda: _statuses(engine, ep.id, ["failed"]))
    assert await disabled_reason(engine, ep.id) is None
    (row,) = await deliveries(engine, ep.id)
    assert row.attempts == 1
    found = await engine.store.delivery(ep.id, row.id)
    assert found is not None
    assert "Invalid Form Body (code 50035)" in (found[1][-1].error or "")


async def _statuses(engine: DeliveryEngine, endpoint_id: str, expected: list[str]) -> bool:
    return [d.status for d in await deliveries(engine, endpoint_id)] == expected


@pytest.mark.parametrize(
    ("status", "body"),
    [(403, "invalid_token"), (404, "channel_not_found"), (410, "channel_is_archived")],
)
async def test_slack_revoked_webhook_disables_the_target_with_the_reason(
    log: EventLog, engine: DeliveryEngine, slack: FakeSlack, status: int, body: str
) -> None:
    ep = await one_event(log, engine, slack, (status, body.encode(), "text/plain"))
    await wait_until(lambda: disabled_reason(engine, ep.id))
    assert await disabled_reason(engine, ep.id) == f"Slack answered {status} {body}"


async def test_slack_400_is_final_other_403_too(
    log: EventLog, engine: DeliveryEngine, slack: FakeSlack
) -> None:
    ep = await one_event(log, engine, slack, (400, b"invalid_payload", "text/plain"))
    await wait_until(lambda: _statuses(engine, ep.id, ["failed"]))
    assert await disabled_reason(engine, ep.id) is None
    slack.fail_with = (403, b"action_prohibited", "text/plain")
    await log.append("s", {"n": 2}, type="t")
    await wait_until(lambda: _statuses(engine, ep.id, ["failed", "failed"]))
    assert await disabled_reason(engine, ep.id) is None


async def test_slack_5xx_is_retried_then_delivered(
    log: EventLog, engine: DeliveryEngine, slack: FakeSlack
) -> None:
    ep = await one_event(log, engine, slack, (500, b"internal_error", "text/plain"))
    await wait_until(lambda: slack.requests >= 1)
    slack.fail_with = None
    await wait_until(lambda: _statuses(engine, ep.id, ["delivered"]))
    (row,) = await deliveries(engine, ep.id)
    assert row.attempts == 2
    assert slack.messages[0]["text"].startswith("*t* in `s` at offset 0")


async def test_the_fakes_notice_a_request_sent_before_retry_after() -> None:
    # The burst tests rely on `early`: show that it does count a sender that ignores 429s.
    fake = await FakeDiscord(limit=1, window=5.0).start()
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(3):
                async with session.post(fake.url() + "?wait=true", json={"content": "x"}) as r:
                    await r.read()
        assert fake.rate_limited == 2
        assert fake.early == 1
    finally:
        await fake.stop()


async def test_replay_and_operator_retry_are_the_engines_for_chat_targets_too(
    log: EventLog, engine: DeliveryEngine, discord: FakeDiscord
) -> None:
    ep = await add_target(
        engine, kind="discord", url=discord.url(), stream="s", options={"template": "#{offset}"}
    )
    for i in range(3):
        await log.append("s", {"n": i}, type="t")
    await wait_until(lambda: len(discord.messages) == 3)
    result = await engine.replay(ep, from_offset=1)
    assert (result.scanned, result.matched) == (2, 2)
    await wait_until(lambda: len(discord.messages) == 5)
    assert [m["content"] for m in discord.messages] == ["#0", "#1", "#2", "#1", "#2"]
    await wait_until(lambda: _statuses(engine, ep.id, ["delivered"] * 5))
    first = (await deliveries(engine, ep.id))[0]
    await engine.act(ep.id, first.id, "retry")
    await wait_until(lambda: len(discord.messages) == 6)
    assert discord.messages[-1]["content"] == "#0"
    assert discord.early == 0
