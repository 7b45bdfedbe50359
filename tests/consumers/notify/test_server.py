"""Notification targets in a real ``eventlog serve`` subprocess: created through
``/api/notifications``, declared in the config file, and managed with the CLI, each
delivering to the local fake Discord/Slack; the URL's token never shows."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from tests.consumers.delivery.receiver import Receiver
from tests.consumers.notify.fakes import FakeDiscord, FakeSlack
from tests.serverproc import ServerFailed, ServerProcess
from tests.serverproc import run_cli as cli
from tests.serverthread import ServerThread
from tests.support import scaled, wait_until

TOKEN = "tok-9f8e7d6c5b4a3210"  # the secret part of a Discord webhook URL
SLACK_TOKEN = "slk-0a1b2c3d4e5f6789"
ALLOW_PRIVATE = "[webhooks]\nallow_private_targets = true\n"


async def start_server(tmp_path: Path, config: str) -> ServerThread:
    """A server with ``config`` (started off the event loop: the fakes live on it)."""
    path = tmp_path / "eventlog.toml"
    path.write_text(config)
    return await asyncio.to_thread(ServerThread.start, db=tmp_path / "events.db", config=path)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerThread]:
    """A server that may deliver to loopback fakes."""
    proc = await start_server(tmp_path, ALLOW_PRIVATE)
    yield proc
    await asyncio.to_thread(proc.close)


@pytest.fixture
async def api(server: ServerThread) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=scaled(10)) as client:
        yield client


async def append(
    api: httpx.AsyncClient, stream: str, count: int, type_: str = "order.created"
) -> None:
    events = [{"type": type_, "data": {"order": {"id": f"o-{i}"}}} for i in range(count)]
    r = await api.post(f"/api/streams/{stream}/events", json=events)
    assert r.status_code == 201, r.text


async def delivered(api: httpx.AsyncClient, target: str, count: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    async def done() -> bool:
        nonlocal rows
        r = await api.get(f"/api/notifications/{target}/deliveries", params={"limit": 1000})
        assert r.status_code == 200, r.text
        rows = [d for d in r.json()["deliveries"] if d["status"] == "delivered"]
        return len(rows) >= count

    await wait_until(done)
    return rows


async def test_api_target_delivers_in_order_and_never_shows_its_token(
    api: httpx.AsyncClient, discord: FakeDiscord, server: ServerThread
) -> None:
    body = {
        "id": "orders-discord",
        "kind": "discord",
        "url": discord.url(token=TOKEN),
        "stream": "orders",
        "types": ["order.*"],
        "options": {"template": "New order **{data.order.id}**"},
    }
    r = await api.post("/api/notifications", json=body)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["kind"] == "discord"
    assert created["url"] == f"http://127.0.0.1:{discord.port}/api/webhooks/…"
    assert created["options"] == {"template": "New order **{data.order.id}**"}
    assert "secrets" not in created

    await append(api, "orders", 30)
    rows = await delivered(api, "orders-discord", 30)
    assert [d["offset"] for d in rows] == list(range(30))
    assert [m["content"] for m in discord.messages] == [f"New order **o-{i}**" for i in range(30)]
    assert discord.early == 0

    # the same engine and ledger, but not a webhook endpoint
    r = await api.get("/api/webhooks/orders-discord")
    assert r.status_code == 404
    r = await api.get("/api/webhooks")
    assert r.json()["webhooks"] == []
    r = await api.post("/api/webhooks", json={"id": "orders-discord", "url": discord.url()})
    assert r.status_code == 409

    # PATCH changes the template; enable/disable and replay are the webhook ones
    r = await api.patch(
        "/api/notifications/orders-discord", json={"options": {"template": "#{offset}"}}
    )
    assert r.status_code == 200, r.text
    assert r.json()["options"] == {"template": "#{offset}"}
    r = await api.post("/api/notifications/orders-discord/replay", json={"from_offset": 28})
    assert r.status_code == 202, r.text
    assert r.json()["scheduled"] == 2
    await wait_until(lambda: len(discord.messages) >= 32)
    assert [m["content"] for m in discord.messages[30:]] == ["#28", "#29"]

    answers = []
    for path in ("/api/notifications", "/api/notifications/orders-discord"):
        r = await api.get(path)
        assert r.status_code == 200
        answers.append(r.text)
    r = await api.get("/api/notifications/orders-discord/deliveries/" + rows[0]["id"])
    assert r.status_code == 200
    assert r.json()["attempt_log"][0]["status"] == 200
    answers.append(r.text)
    for text in [*answers, r.text, server.output()]:
        assert TOKEN not in text
    assert "1234567890" not in created["url"]  # the webhook id is not shown either


async def test_bad_bodies_are_clear_4xx(api: httpx.AsyncClient, discord: FakeDiscord) -> None:
    url = discord.url(token=TOKEN)
    cases: list[tuple[Any, int, str, str | None]] = [
        ({"kind": "teams", "url": url}, 422, "validation_error", "$.kind"),
        ({"kind": "discord"}, 422, "validation_error", None),
        ({"kind": "discord", "url": url, "secret": "x"}, 422, "validation_error", None),
        (
            {"kind": "discord", "url": url, "options": {"template": "{oops"}},
            422, "invalid_endpoint", "$.options.template",
        ),
        ({"kind": "slack", "url": url, "options": {"colour": 1}}, 422, "invalid_endpoint", None),
        ({"kind": "discord", "url": "ftp://x/y/z"}, 422, "invalid_endpoint", "$.url"),
        ({"kind": "discord", "url": url, "stream": "a b"}, 422, "invalid_endpoint", "$.stream"),
        ([1, 2], 422, "validation_error", None),
    ]  # fmt: skip
    for body, status, code, path in cases:
        r = await api.post("/api/notifications", json=body)
        assert r.status_code == status, (body, r.text)
        error = r.json()["error"]
        assert error["code"] == code, (body, error)
        if path is not None:
            assert error.get("path") == path, (body, error)
        assert TOKEN not in r.text
    r = await api.post("/api/notifications", content=b"{not json")
    assert r.status_code == 400
    r = await api.patch("/api/notifications/nobody", json={"enabled": False})
    assert (r.status_code, r.json()["error"]["code"]) == (404, "unknown_target")
    r = await api.get("/api/notifications/nobody/deliveries")
    assert r.status_code == 404
    r = await api.post("/api/notifications", json={"id": "t", "kind": "discord", "url": url})
    assert r.status_code == 201
    r = await api.post("/api/notifications", json={"id": "t", "kind": "slack", "url": url})
    assert r.status_code == 409
    r = await api.patch("/api/notifications/t", json={"kind": "slack"})
    assert r.status_code == 422
    r = await api.patch("/api/notifications/t", json={"options": {"template": "{x"}})
    assert (r.status_code, r.json()["error"]["path"]) == (422, "$.options.template")
    r = await api.get("/api/notifications/t/deliveries", params={"status": "lost"})
    assert r.status_code == 400


async def test_a_404_from_discord_disables_the_target_with_the_reason(
    api: httpx.AsyncClient, discord: FakeDiscord, server: ServerThread
) -> None:
    body = {"id": "gone", "kind": "discord", "url": discord.url(token=TOKEN), "retry": "short"}
    r = await api.post("/api/notifications", json=body)
    assert r.status_code == 201, r.text
    discord.fail_with = (404, b'{"message": "Unknown Webhook", "code": 10015}', "application/json")
    await append(api, "events", 1)

    await wait_until(lambda: _disabled(api, "gone"))
    r = await api.get("/api/notifications/gone")
    view = r.json()
    assert "404" in view["disabled_reason"]
    assert "Unknown Webhook" in view["disabled_reason"]
    r = await api.get("/api/notifications/gone/deliveries")
    [row] = r.json()["deliveries"]
    assert (row["status"], row["attempts"], row["last_status"]) == ("failed", 1, 404)
    r = await api.get("/api/streams/system/events")
    [event] = r.json()["events"]
    assert event["type"] == "delivery.endpoint.disabled"
    assert event["data"]["endpoint"] == "gone"
    for text in (r.text, view["url"], server.output()):
        assert TOKEN not in text
    assert "endpoint gone" in server.output()  # the log says so, without the URL's path

    discord.fail_with = None
    r = await api.post("/api/notifications/gone/enable")
    assert (r.status_code, r.json()["enabled"], r.json()["disabled_reason"]) == (200, True, None)
    r = await api.post(f"/api/notifications/gone/deliveries/{row['id']}/retry")
    assert r.status_code == 202
    await wait_until(lambda: len(discord.messages) == 1)


async def test_targets_declared_in_the_config_file(
    tmp_path: Path, discord: FakeDiscord, slack: FakeSlack
) -> None:
    slack_url = slack.url().rsplit("/", 1)[0] + "/" + SLACK_TOKEN
    config = (
        ALLOW_PRIVATE
        + f"""
[[notifications.targets]]
id = "ops-discord"
kind = "discord"
url = "{discord.url(token=TOKEN)}"
stream = "orders"
types = ["order.failed"]
options = {{ template = "Order **{{data.order.id}}** failed" }}

[[notifications.targets]]
id = "ops-slack"
kind = "slack"
url = "{slack_url}"
stream = "orders"
options = {{ template = "*{{type}}* {{data.order.id}}", title = "{{type}}" }}
"""
    )
    server = await start_server(tmp_path, config)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=scaled(10)) as api:
            await append(api, "orders", 3, "order.created")
            await append(api, "orders", 20, "order.failed")
            discord_rows = await delivered(api, "ops-discord", 20)
            slack_rows = await delivered(api, "ops-slack", 23)
            assert [d["offset"] for d in discord_rows] == list(range(3, 23))
            assert [d["offset"] for d in slack_rows] == list(range(23))
            contents = [m["content"] for m in discord.messages]
            assert contents == [f"Order **o-{i}** failed" for i in range(20)]
            assert [m["text"] for m in slack.messages] == [
                *(f"*order.created* o-{i}" for i in range(3)),
                *(f"*order.failed* o-{i}" for i in range(20)),
            ]
            r = await api.get("/api/notifications/ops-slack")
            view = r.json()
            assert view["url"].endswith("/…")
            r = await api.patch("/api/notifications/ops-slack", json={"description": "x"})
            assert (r.status_code, r.json()["error"]["code"]) == (409, "endpoint_in_config")
            r = await api.delete("/api/notifications/ops-slack")
            assert r.status_code == 409
            listing = (await api.get("/api/notifications")).text
            assert TOKEN not in listing
            assert SLACK_TOKEN not in listing

            # Slack says the channel is gone: disabled, and still so after a restart
            slack.fail_with = (404, b"channel_not_found", "text/plain")
            await append(api, "orders", 1)
            await wait_until(lambda: _disabled(api, "ops-slack"))
            output = server.output()
            await asyncio.to_thread(server.restart)
            r = await api.get("/api/notifications/ops-slack")
            assert r.json()["enabled"] is False
            assert "404" in r.json()["disabled_reason"]
            assert "channel_not_found" in r.json()["disabled_reason"]
            r = await api.get("/api/notifications/ops-discord")
            assert r.json()["enabled"] is True
        for text in (output, server.output()):
            assert TOKEN not in text
            assert SLACK_TOKEN not in text
    finally:
        await asyncio.to_thread(server.close)


async def _disabled(api: httpx.AsyncClient, target: str) -> bool:
    r = await api.get(f"/api/notifications/{target}")
    return r.json()["enabled"] is False


_TARGET = f"""
[[notifications.targets]]
id = "bad"
kind = "discord"
url = "http://127.0.0.1:9/api/webhooks/1/{TOKEN}"
"""


@pytest.mark.parametrize(
    ("declaration", "message"),
    [
        (
            _TARGET + 'options = { template = "{unclosed" }\n',
            "notification target 'bad' in the config file: options.template",
        ),
        (
            _TARGET + '[[webhooks.endpoints]]\nid = "bad"\nurl = "http://127.0.0.1:9/"\n',
            "['bad'] declared both as webhook endpoint and notification",
        ),
        (
            _TARGET.replace('id = "bad"\n', ""),
            "notification targets declared in the config file need an id",
        ),
        (  # Apprise would notify both: refused, even with private targets allowed
            _TARGET.replace('"discord"', '"apprise"').replace(
                "http://127.0.0.1:9/api/webhooks/1/", "json://127.0.0.1:9/x, json://10.0.0.1/"
            ),
            "notification target 'bad' in the config file: options.url: one Apprise URL per target",
        ),
    ],
)
async def test_a_bad_declaration_stops_the_server_with_the_reason(
    tmp_path: Path, declaration: str, message: str
) -> None:
    path = tmp_path / "eventlog.toml"
    path.write_text(ALLOW_PRIVATE + declaration)
    with pytest.raises(ServerFailed) as info:  # `eventlog serve` exits, saying why
        await asyncio.to_thread(
            ServerProcess.start, db=tmp_path / "events.db", extra_args=["--config", str(path)]
        )
    text = str(info.value)
    assert message in text
    assert TOKEN not in text


async def test_cli_manages_targets_without_printing_the_token(
    server: ServerThread, api: httpx.AsyncClient, discord: FakeDiscord
) -> None:
    code, out, err = await cli(
        server, "notifications", "create", "discord", discord.url(token=TOKEN),
        "--id", "cli-discord", "--stream", "orders", "--template", "Order {data.order.id}",
        "--option", "username=eventlog", "--retry", "short",
    )  # fmt: skip
    assert code == 0, err
    assert "cli-discord" in out
    await append(api, "orders", 10)
    rows = await delivered(api, "cli-discord", 10)
    assert [d["offset"] for d in rows] == list(range(10))
    assert [m["content"] for m in discord.messages] == [f"Order o-{i}" for i in range(10)]
    assert {m["username"] for m in discord.messages} == {"eventlog"}

    code, out, _ = await cli(server, "notifications", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[1].index("url") == lines[3].index("http://")  # aligned columns
    assert "cli-discord" in lines[3]
    code, out, _ = await cli(
        server, "notifications", "update", "cli-discord", "--template", "#{offset}"
    )
    assert code == 0
    code, out, _ = await cli(server, "notifications", "show", "cli-discord", "--json")
    shown = json.loads(out)
    assert shown["options"] == {"template": "#{offset}", "username": "eventlog"}
    code, out, _ = await cli(server, "notifications", "deliveries", "cli-discord", "--json")
    assert [d["offset"] for d in json.loads(out)["deliveries"]] == list(range(10))
    code, out, _ = await cli(server, "notifications", "replay", "cli-discord", "--from-offset", "9")
    assert (code, out.strip()) == (
        0,
        "cli-discord: offsets 9..10: 1 scanned, 1 matching, scheduled 1 deliveries",
    )
    await wait_until(lambda: len(discord.messages) == 11)
    assert discord.messages[-1]["content"] == "#9"
    code, out, _ = await cli(server, "notifications", "disable", "cli-discord")
    assert (code, out.strip()) == (0, "cli-discord: disabled")
    code, _, err = await cli(
        server, "notifications", "create", "discord", discord.url(), "--template", "{x"
    )
    assert code == 1
    assert "options.template" in err
    code, _, err = await cli(
        server, "notifications", "create", "discord", discord.url(), "--option", "x"
    )
    assert (code, "NAME=VALUE" in err) == (2, True)  # a usage error
    code, _, err = await cli(server, "notifications", "show", "nobody")
    assert (code, "(unknown_target, HTTP 404)" in err) == (1, True)
    code, out, _ = await cli(server, "notifications", "delete", "cli-discord")
    assert (code, out.strip()) == (0, "deleted cli-discord")
    for text in (out, err, server.output()):
        assert TOKEN not in text


async def test_apprise_target_through_the_api_never_shows_its_url(
    api: httpx.AsyncClient, server: ServerThread
) -> None:
    receiver = await Receiver().start()
    try:
        url = f"json://127.0.0.1:{receiver.port}/{TOKEN}"
        body = {
            "id": "ops-apprise",
            "kind": "apprise",
            "url": url,
            "options": {"title": "{type}", "template": "order {data.order.id}"},
        }
        r = await api.post("/api/notifications", json=body)
        assert r.status_code == 201, r.text
        assert r.json()["url"] == "apprise://json"
        assert "url" not in r.json()["options"]
        await append(api, "events", 2)
        await receiver.wait_for(2, scaled(20))
        await delivered(api, "ops-apprise", 2)
        r = await api.patch("/api/notifications/ops-apprise", json={"description": "ops"})
        assert r.status_code == 200, r.text
        listing = (await api.get("/api/notifications")).text
    finally:
        await receiver.stop()
    messages = [msgspec.json.decode(req.body)["message"] for req in receiver.requests]
    assert messages == ["order o-0", "order o-1"]
    for text in (listing, server.output()):
        assert TOKEN not in text
