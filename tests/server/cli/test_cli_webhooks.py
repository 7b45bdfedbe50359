"""``eventlog webhooks|deliveries|replay`` run as real processes against a real server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from tests.consumers.delivery.receiver import Received, Receiver
from tests.serverproc import EVENTLOG
from tests.serverproc import run_cli as cli
from tests.serverthread import ServerThread
from tests.support import scaled


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    cfg = tmp_path / "eventlog.toml"
    cfg.write_text("[webhooks]\nallow_private_targets = true\n")
    with ServerThread.start(db=tmp_path / "events.db", config=cfg) as proc:
        yield proc


async def test_webhook_commands_manage_endpoints_and_show_deliveries(
    server: ServerThread, receiver: Receiver
) -> None:
    code, out, err = await cli(
        server, "webhooks", "create", receiver.url(), "--id", "orders", "--type", "order.*",
        "--header", "X-Api-Key: k-987654", "--retry", "short",
    )  # fmt: skip
    assert code == 0, err
    assert "secret: whsec_" in out
    assert "k-987654" not in out

    code, out, _ = await cli(server, "webhooks", "list")
    assert code == 0
    header, row = out.splitlines()[1], out.splitlines()[3]
    assert header.index("url") == row.index("http://")  # aligned columns
    assert "orders" in row
    assert "order.*" in row

    async with httpx.AsyncClient(base_url=server.url) as api:
        r = await api.post("/api/streams/events/events", json={"type": "order.created", "data": 1})
        assert r.status_code == 201
    await receiver.wait_for(1, scaled(15))
    async with asyncio.timeout(scaled(10)), httpx.AsyncClient(base_url=server.url) as api:
        while True:
            r = await api.get("/api/webhooks/orders/deliveries", params={"status": "delivered"})
            rows = r.json()["deliveries"]
            if rows:
                break
            await asyncio.sleep(0.05)
    delivery_id = rows[0]["id"]
    code, out, _ = await cli(server, "deliveries", "list", "orders", "--json")
    assert code == 0
    assert json.loads(out)["deliveries"][0]["id"] == delivery_id
    code, out, _ = await cli(server, "deliveries", "show", "orders", delivery_id)
    assert code == 0
    assert "delivered" in out
    assert "204" in out

    code, out, _ = await cli(server, "replay", "orders", "--from-offset", "0", "--dry-run")
    assert (code, out.strip()) == (
        0,
        "orders: offsets 0..1: 1 scanned, 1 matching, would schedule 1 deliveries",
    )
    code, out, _ = await cli(server, "deliveries", "retry", "orders", delivery_id)
    assert (code, out.strip()) == (0, f"{delivery_id}: pending")
    await receiver.wait_for(2, scaled(15))
    assert receiver.requests[1].headers["webhook-id"] == delivery_id

    code, out, _ = await cli(server, "webhooks", "disable", "orders")
    assert (code, out.strip()) == (0, "orders: disabled")
    code, out, _ = await cli(server, "webhooks", "rotate-secret", "orders", "--grace", "60")
    assert code == 0
    assert "secret: whsec_" in out
    code, out, _ = await cli(server, "webhooks", "delete", "orders")
    assert (code, out.strip()) == (0, "deleted orders")


async def test_errors_give_meaningful_exit_codes(server: ServerThread) -> None:
    code, _, err = await cli(server, "webhooks", "show", "nobody")
    assert code == 1
    assert "(unknown_endpoint, HTTP 404)" in err
    code, _, err = await cli(server, "webhooks", "create", "ftp://x/")
    assert code == 1
    assert "HTTP 422" in err
    assert "url scheme must be http or https" in err
    code, _, err = await cli(server, "webhooks", "create", "http://127.0.0.1/", "--header", "bad")
    assert code == 2
    assert "NAME:VALUE" in err
    code, _, err = await cli(server, "deliveries", "list", "x", "--status", "lost")
    assert code == 2
    code, _, err = await cli(server, "replay")
    assert code == 2
    proc = await asyncio.create_subprocess_exec(
        EVENTLOG, "webhooks", "list", "--url", "http://127.0.0.1:9",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err_bytes = await proc.communicate()
    assert proc.returncode == 1
    assert b"cannot reach" in err_bytes


async def test_tables_show_bracketed_text_as_it_is(
    server: ServerThread, receiver: Receiver
) -> None:
    """Cells are plain text: a hidden header shows as ``[hidden]``, and text that
    looks like console markup neither vanishes nor breaks the command."""
    code, _, err = await cli(
        server, "webhooks", "create", receiver.url(), "--id", "br", "--type", "x.*",
        "--header", "Authorization: Bearer abc",
    )  # fmt: skip
    assert code == 0, err
    async with httpx.AsyncClient(base_url=server.url) as api:
        r = await api.patch("/api/webhooks/br", json={"description": "[/x] my [b]hook"})
        assert r.status_code == 200, r.text
    code, out, err = await cli(server, "webhooks", "show", "br")
    assert code == 0, err
    assert '"Authorization": "[hidden]"' in out
    assert "[/x] my [b]hook" in out
    code, out, err = await cli(server, "webhooks", "list")
    assert code == 0, err
    assert "Traceback" not in err
    assert " br " in out


async def test_an_unknown_retry_preset_names_the_accepted_values(server: ServerThread) -> None:
    code, _, err = await cli(server, "webhooks", "create", "http://127.0.0.1/", "--retry", "weird")
    assert code == 1
    assert (
        'Invalid value \'weird\': expected "default", "short" or an object with the fields '
        "schedule, max_attempts, jitter, max_retry_after, max_rate_limited - at `$.retry` "
        "(validation_error, HTTP 422)"
    ) in err
    code, _, err = await cli(server, "webhooks", "create", "http://127.0.0.1/", "--retry", "{x")
    assert code == 2
    assert "argument --retry: not a JSON object" in err
    code, out, err = await cli(server, "webhooks", "list", "--json")
    assert (code, json.loads(out)) == (0, {"webhooks": []}), err  # nothing was created


async def test_a_retry_policy_is_given_as_a_json_object(
    server: ServerThread, receiver: Receiver
) -> None:
    policy = '{"schedule": [1, 10, 60], "jitter": 0}'
    code, _, err = await cli(
        server, "webhooks", "create", receiver.url(), "--id", "pol", "--retry", policy
    )
    assert code == 0, err
    code, out, err = await cli(server, "webhooks", "show", "pol", "--json")
    assert code == 0, err
    retry = json.loads(out)["retry"]
    assert (retry["schedule"], retry["jitter"]) == ([1.0, 10.0, 60.0], 0.0)
    code, _, err = await cli(server, "webhooks", "update", "pol", "--retry", '{"schedule": [2]}')
    assert code == 0, err
    code, out, err = await cli(server, "webhooks", "show", "pol", "--json")
    assert json.loads(out)["retry"]["schedule"] == [2.0], err
    code, _, err = await cli(server, "webhooks", "update", "pol", "--retry", '{"schedule": 5}')
    assert code == 1
    assert "Expected `array`, got `int` - at `$.retry.schedule`" in err


async def test_the_list_notes_an_endpoint_that_is_failing(server: ServerThread) -> None:
    # A failing endpoint that was not yet disabled had an empty note: an operator
    # scanning `eventlog webhooks list` saw nothing wrong.
    code, _, err = await cli(
        server, "webhooks", "create", "http://127.0.0.1:9/hook", "--id", "down",
        "--retry", "short", "--description", "the orders hook",
    )  # fmt: skip
    assert code == 0, err
    async with httpx.AsyncClient(base_url=server.url) as api:
        r = await api.post("/api/streams/events/events", json={"type": "t", "data": 1})
        assert r.status_code == 201
        async with asyncio.timeout(scaled(10)):
            while True:
                since = (await api.get("/api/webhooks/down")).json()["failing_since"]
                if since is not None:
                    break
                await asyncio.sleep(0.05)
    code, out, err = await cli(server, "webhooks", "list")
    assert code == 0, err
    assert f"failing since {since[:19]}Z" in out
    assert "the orders hook" not in out


async def _server_error(request: web.Request, received: Received) -> web.StreamResponse:
    return web.Response(status=500)


def _time(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


async def _two_events_for_a_failing_receiver(
    server: ServerThread, receiver: Receiver, *flags: str
) -> None:
    """An endpoint ``orders`` (retry after 30 s) to ``receiver`` answering 500, two events."""
    receiver.behaviour = _server_error
    retry = '{"schedule": [30]}'
    code, _, err = await cli(
        server, "webhooks", "create", receiver.url(), "--id", "orders", "--retry", retry, *flags
    )
    assert code == 0, err
    async with httpx.AsyncClient(base_url=server.url) as api:
        for n in range(2):
            r = await api.post("/api/streams/events/events", json={"type": "order.paid", "data": n})
            assert r.status_code == 201, r.text


async def test_a_delivery_behind_a_failing_ordered_head_names_it_and_waits_for_its_retry(
    server: ServerThread, receiver: Receiver
) -> None:
    await _two_events_for_a_failing_receiver(server, receiver, "--ordering", "ordered")
    async with httpx.AsyncClient(base_url=server.url, timeout=scaled(10)) as api:
        await receiver.wait_for(1, scaled(15))
        async with asyncio.timeout(scaled(10)):
            while True:  # the head's first attempt is recorded: it waits 30 s for its retry
                r = await api.get("/api/webhooks/orders/deliveries")
                rows: list[dict[str, Any]] = r.json()["deliveries"]
                if len(rows) == 2 and rows[0]["attempts"] == 1 and rows[0]["status"] == "pending":
                    break
                await asyncio.sleep(0.05)
        head, behind = rows
        one = (await api.get(f"/api/webhooks/orders/deliveries/{behind['id']}")).json()
    now = datetime.now(UTC)
    assert (head["blocked_by"], head["last_status"]) == (None, 500)
    assert _time(head["next_attempt_at"]) > now
    assert (behind["status"], behind["attempts"], behind["blocked_by"]) == (
        "pending",
        0,
        head["id"],
    )
    assert behind["next_attempt_at"] == head["next_attempt_at"]  # not its own, long past
    assert (one["blocked_by"], one["next_attempt_at"]) == (head["id"], head["next_attempt_at"])
    assert len(receiver.requests) == 1  # it really waits

    code, out, _ = await cli(server, "deliveries", "list", "orders", "--json")
    assert code == 0
    listed = json.loads(out)["deliveries"]
    assert [d["blocked_by"] for d in listed] == [None, head["id"]]
    code, out, _ = await cli(server, "deliveries", "list", "orders")
    assert code == 0
    assert f"(behind {head['id']})" in out


async def test_deliveries_of_a_concurrent_endpoint_are_never_blocked(
    server: ServerThread, receiver: Receiver
) -> None:
    await _two_events_for_a_failing_receiver(server, receiver)
    async with httpx.AsyncClient(base_url=server.url, timeout=scaled(10)) as api:
        await receiver.wait_for(2, scaled(15))  # both attempted, neither waits for the other
        rows = (await api.get("/api/webhooks/orders/deliveries")).json()["deliveries"]
    assert [d["blocked_by"] for d in rows] == [None, None]
