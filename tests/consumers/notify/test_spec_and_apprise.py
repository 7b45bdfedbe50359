"""Notification specs become engine endpoints; Apprise URLs deliver through the same engine."""

from __future__ import annotations

import sys
import time
from typing import Any

import msgspec
import pytest
from aiohttp import web

from consumers.delivery.engine import DeliveryEngine
from consumers.notify import (
    NotificationsConfig,
    NotifySpec,
    SlackSpec,
    public_notify_view,
)
from consumers.webhook import SpecError, build_endpoint, declared_endpoint
from eventlog import EventLog
from tests.consumers.delivery.receiver import Received, Receiver
from tests.consumers.notify.conftest import add_target, deliveries
from tests.support import wait_until

DISCORD_URL = "https://discord.com/api/webhooks/123456/SeCrEtToKeN"


def build(**spec: Any) -> Any:
    return build_endpoint(msgspec.convert(spec, NotifySpec), now=time.time(), head=5, first=0)


def test_a_discord_spec_becomes_an_ordered_serialised_unsigned_endpoint() -> None:
    ep = build(kind="discord", url=DISCORD_URL, stream="orders", types=["order.*"])
    assert (ep.kind, ep.ordering, ep.max_in_flight, ep.secrets) == ("discord", "ordered", 1, [])
    assert ep.start_offset == 5
    assert ep.consumer_name == f"webhook.{ep.id}"


def test_the_public_view_hides_the_webhook_token_and_apprise_urls() -> None:
    view = public_notify_view(build(kind="discord", url=DISCORD_URL))
    assert view["url"] == "https://discord.com/api/webhooks/…"
    assert "SeCrEtToKeN" not in msgspec.json.encode(view).decode()
    apprise = build(kind="apprise", url="tgram://123456:ABCdef/98765")
    assert apprise.url == "apprise://tgram"
    assert "ABCdef" not in msgspec.json.encode(public_notify_view(apprise)).decode()


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ({"kind": "discord", "url": "ftp://x"}, "url"),
        ({"kind": "slack", "url": DISCORD_URL, "options": {"template": "{x"}}, "options.template"),
        ({"kind": "slack", "url": DISCORD_URL, "options": {"colour": 1}}, "options"),
        ({"kind": "discord", "url": DISCORD_URL, "types": ["bad pattern"]}, "types[0]"),
        ({"kind": "apprise", "url": "nosuchservice://x"}, "options.url"),
    ],
)
def test_bad_specs_name_the_field(spec: dict[str, Any], path: str) -> None:
    with pytest.raises(SpecError) as exc:
        build(**spec)
    assert exc.value.path == path
    assert "x" not in path or "nosuchservice://x" not in str(exc.value)


def test_apprise_targets_without_the_extra_name_the_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "apprise", None)  # `import apprise` fails as if not installed
    with pytest.raises(SpecError) as exc:
        build(kind="apprise", url="json://hooks.example.com/x")
    assert (exc.value.path, str(exc.value)) == (
        "kind",
        "kind: apprise targets need the apprise extra: pip install 'eventlog[apprise]'",
    )


def test_an_unknown_kind_is_refused_by_the_spec() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"kind": "teams", "url": DISCORD_URL}, NotifySpec)


async def test_apprise_url_is_notified_through_the_engine(
    log: EventLog, engine: DeliveryEngine
) -> None:
    receiver = await Receiver().start()
    try:
        url = f"json://127.0.0.1:{receiver.port}/apprise"
        ep = await add_target(
            engine,
            kind="apprise",
            url=url,
            stream="s",
            options={"title": "{type}", "template": "order {data.id} is {data.state}"},
        )
        await log.append("s", {"id": 9, "state": "paid"}, type="order.paid")
        await receiver.wait_for(1, 20)
        await wait_until(lambda: _delivered(engine, ep.id))
    finally:
        await receiver.stop()
    body = msgspec.json.decode(receiver.requests[0].body)
    assert (body["title"], body["message"]) == ("order.paid", "order 9 is paid")


async def test_apprise_failure_is_retried_by_the_engine(
    log: EventLog, engine: DeliveryEngine
) -> None:
    calls = 0

    async def flaky(request: web.Request, received: Received) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        return web.Response(status=500 if calls == 1 else 200)

    receiver = await Receiver(behaviour=flaky).start()
    try:
        ep = await add_target(
            engine, kind="apprise", url=f"json://127.0.0.1:{receiver.port}/", stream="s"
        )
        await log.append("s", {}, type="ping")
        await wait_until(lambda: _delivered(engine, ep.id))
    finally:
        await receiver.stop()
    (row,) = await deliveries(engine, ep.id)
    assert row.attempts == 2
    found = await engine.store.delivery(ep.id, row.id)
    assert found is not None
    assert "did not accept" in (found[1][0].error or "")
    assert f"{receiver.port}" not in (found[1][0].error or "")


async def _delivered(engine: DeliveryEngine, endpoint_id: str) -> bool:
    return [d.status for d in await deliveries(engine, endpoint_id)] == ["delivered"]


def test_config_declared_target_keeps_its_runtime_state_across_restarts() -> None:
    spec = SlackSpec(id="ops", url="https://hooks.slack.com/services/T/B/x")
    first = declared_endpoint(spec, None, now=1.0, head=10)
    assert (first.origin, first.start_offset) == ("config", 10)
    gone = msgspec.structs.replace(first, enabled=False, disabled_reason="Slack answered 404")
    again = declared_endpoint(spec, gone, now=2.0, head=99)
    assert (again.start_offset, again.enabled, again.disabled_reason) == (
        10,
        False,
        "Slack answered 404",
    )


def test_notifications_config_table_needs_unique_ids() -> None:
    raw = {"targets": [{"kind": "slack", "url": "https://hooks.slack.com/services/T/B/x"}]}
    with pytest.raises(msgspec.ValidationError, match="need an id"):
        msgspec.convert(raw, NotificationsConfig)
    target = {"id": "a", "kind": "slack", "url": "https://hooks.slack.com/services/T/B/x"}
    with pytest.raises(msgspec.ValidationError, match="unique"):
        msgspec.convert({"targets": [target, target]}, NotificationsConfig)
    assert len(msgspec.convert({"targets": [target]}, NotificationsConfig).targets) == 1
