"""``/api/webhooks`` against a real ``eventlog serve`` subprocess and a loopback receiver."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook

from tests.consumers.delivery.receiver import Receiver
from tests.serverthread import ServerThread
from tests.support import scaled

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def config_file(tmp_path: Path, extra: str = "", allow_private: bool = True) -> Path:
    path = tmp_path / "eventlog.toml"
    path.write_text(f"[webhooks]\nallow_private_targets = {str(allow_private).lower()}\n{extra}")
    return path


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    """A server that may deliver to loopback receivers."""
    with ServerThread.start(db=tmp_path / "events.db", config=config_file(tmp_path)) as proc:
        yield proc


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """One server for the bad-input cases (they create nothing)."""
    tmp = tmp_path_factory.mktemp("webhooks-api")
    cfg = config_file(tmp)
    with (
        ServerThread.start(db=tmp / "events.db", config=cfg) as proc,
        httpx.Client(base_url=proc.url, timeout=scaled(10)) as client,
    ):
        yield client


@pytest.fixture
async def api(server: ServerThread) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=scaled(10)) as client:
        yield client


async def append(api: httpx.AsyncClient, *events: dict[str, object]) -> None:
    r = await api.post("/api/streams/events/events", json=list(events))
    assert r.status_code == 201, r.text


async def wait_status(
    api: httpx.AsyncClient, endpoint: str, status: str, count: int
) -> list[dict[str, object]]:
    async with asyncio.timeout(scaled(15)):
        while True:
            r = await api.get(f"/api/webhooks/{endpoint}/deliveries", params={"status": status})
            rows: list[dict[str, object]] = r.json()["deliveries"]
            if len(rows) >= count:
                return rows
            await asyncio.sleep(0.05)


async def test_endpoint_crud_shows_secrets_only_as_hints(
    api: httpx.AsyncClient, receiver: Receiver, server: ServerThread
) -> None:
    r = await api.post(
        "/api/webhooks",
        json={
            "id": "orders",
            "url": receiver.url(),
            "types": ["order.*"],
            "headers": {"X-Api-Key": "k-123456"},
        },
    )
    assert r.status_code == 201, r.text
    created = r.json()
    generated = created["secret"]  # shown once, because it was generated
    assert generated.startswith("whsec_")
    assert created["secrets"][0]["hint"] == generated[:10] + "…"
    assert created["headers"] == {"X-Api-Key": "[hidden]"}

    shown = (await api.get("/api/webhooks/orders")).json()
    listed = (await api.get("/api/webhooks")).json()["webhooks"]
    for body in (json.dumps(shown), json.dumps(listed)):
        assert generated[6:] not in body
        assert "k-123456" not in body
    assert shown["pending"] == 0
    assert [w["id"] for w in listed] == ["orders"]

    r = await api.patch("/api/webhooks/orders", json={"timeout": 2.5, "ordering": "ordered"})
    assert r.status_code == 200, r.text
    assert (r.json()["timeout"], r.json()["ordering"]) == (2.5, "ordered")

    r = await api.post("/api/webhooks/orders/disable")
    assert (r.status_code, r.json()["enabled"]) == (200, False)
    r = await api.post("/api/webhooks/orders/enable")
    assert (r.json()["enabled"], r.json()["disabled_reason"]) == (True, None)

    r = await api.post("/api/webhooks/orders/rotate-secret", json={"grace": 60})
    rotated = r.json()
    assert len(rotated["secrets"]) == 2
    assert rotated["secret"] != generated
    assert rotated["secrets"][1]["expires_at"] is not None

    given = await api.post(
        "/api/webhooks", json={"id": "given", "url": receiver.url(), "secret": SECRET}
    )
    assert given.status_code == 201
    assert "secret" not in given.json()  # the caller already knows it
    assert (
        await api.post("/api/webhooks", json={"id": "given", "url": receiver.url()})
    ).status_code == 409

    assert (await api.delete("/api/webhooks/orders")).status_code == 204
    assert (await api.get("/api/webhooks/orders")).status_code == 404
    assert (await api.delete("/api/webhooks/orders")).status_code == 404
    assert generated[6:] not in server.output()
    assert "k-123456" not in server.output()


@pytest.mark.parametrize(
    ("body", "status", "path"),
    [
        ({"url": "ftp://127.0.0.1/x"}, 422, "$.url"),
        ({"url": "not a url"}, 422, "$.url"),
        ({"url": "http://u:p@127.0.0.1/"}, 422, "$.url"),
        ({"url": "http://127.0.0.1/", "timeout": 100000}, 422, "$.timeout"),
        ({"url": "http://127.0.0.1/", "timeout": 0}, 422, "$.timeout"),
        ({"url": "http://127.0.0.1/", "types": ["bad pattern!"]}, 422, "$.types[0]"),
        ({"url": "http://127.0.0.1/", "retry": {"schedule": [-5]}}, 422, "$.retry"),
        ({"url": "http://127.0.0.1/", "retry": "forever"}, 422, "$.retry"),
        ({"url": "http://127.0.0.1/", "max_attempts": 0}, 422, "$.max_attempts"),
        ({"url": "http://127.0.0.1/", "secret": "hunter2"}, 422, "$.secret"),
        ({"url": "http://127.0.0.1/", "headers": {"webhook-id": "x"}}, 422, "$.headers.webhook-id"),
        ({"url": "http://127.0.0.1/", "headers": {"X-A": "a\nb"}}, 422, "$.headers.X-A"),
        ({"url": "http://127.0.0.1/", "stream": "../etc"}, 422, "$.stream"),
        ({"url": "http://127.0.0.1/", "id": "has space"}, 422, "$.id"),
        ({"url": "http://127.0.0.1/", "ordering": "random"}, 422, "$.ordering"),
        ({"url": "http://127.0.0.1/", "surprise": 1}, 422, None),
        ({"nourl": 1}, 422, None),
    ],
)
def test_bad_endpoint_specs_get_a_clear_4xx(
    shared: httpx.Client, body: dict[str, object], status: int, path: str | None
) -> None:
    r = shared.post("/api/webhooks", json=body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"]
    assert error["message"]
    if path is not None:
        assert error.get("path", "").startswith(path), error


RETRY = (
    '"default", "short" or an object with the fields '
    "schedule, max_attempts, jitter, max_retry_after, max_rate_limited"
)


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        (
            "/api/webhooks",
            {"url": "http://127.0.0.1/", "retry": "weird"},
            f"Invalid value 'weird': expected {RETRY} - at `$.retry`",
        ),
        (
            "/api/webhooks",
            {"url": "http://127.0.0.1/", "retry": 3},
            f"Invalid value of type `int`: expected {RETRY} - at `$.retry`",
        ),
        (
            "/api/webhooks",
            {"url": "http://127.0.0.1/", "ordering": "random"},
            "Invalid value 'random': expected "
            '"concurrent", "ordered" or "per-key" - at `$.ordering`',
        ),
        (
            "/api/webhooks",
            {"url": "http://127.0.0.1/", "start": "now"},
            'Invalid value \'now\': expected "beginning" or "end" - at `$.start`',
        ),
        (
            "/api/notifications",
            {"kind": "teams", "url": "http://127.0.0.1/"},
            'Invalid value \'teams\': expected "discord", "slack" or "apprise" - at `$.kind`',
        ),
        (
            "/api/notifications",
            {"kind": "slack", "url": "http://127.0.0.1/", "retry": "often"},
            f"Invalid value 'often': expected {RETRY} - at `$.retry`",
        ),
        (  # not a choice: msgspec's own words
            "/api/webhooks",
            {"url": "http://127.0.0.1/", "retry": {"schedule": 5}},
            "Expected `array`, got `int` - at `$.retry.schedule`",
        ),
    ],
)
def test_a_bad_choice_names_the_accepted_values(
    shared: httpx.Client, path: str, body: dict[str, object], message: str
) -> None:
    r = shared.post(path, json=body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "validation_error"
    assert error["message"] == message
    assert error["path"] == message.rsplit(" - at `", 1)[1].rstrip("`")


async def test_malformed_requests_get_4xx(api: httpx.AsyncClient, receiver: Receiver) -> None:
    r = await api.post(
        "/api/webhooks", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    await api.post("/api/webhooks", json={"id": "a", "url": receiver.url()})
    for query in ({"status": "bogus"}, {"limit": "0"}, {"limit": "5000"}, {"from": "-1"}):
        r = await api.get("/api/webhooks/a/deliveries", params=query)
        assert r.status_code == 400, (query, r.text)
    for limit in ("0", "5000"):  # one range, whichever side a bad limit falls on
        r = await api.get("/api/webhooks/a/deliveries", params={"limit": limit})
        assert r.json()["error"]["message"] == (
            f"query parameter 'limit' must be an integer from 1 to 1000, got '{limit}'"
        )
    assert (await api.get("/api/webhooks/a/deliveries/msg_nope")).status_code == 404
    assert (await api.get("/api/webhooks/none/deliveries")).status_code == 404
    r = await api.post("/api/webhooks/a/replay", json={"from_time": "2026-01-01T00:00:00"})
    assert r.status_code == 400
    r = await api.post("/api/webhooks/a/replay", json={"from_offset": "x"})
    assert r.status_code == 422


async def test_events_are_delivered_signed_and_visible_with_attempts(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    created = (await api.post("/api/webhooks", json={"id": "hook", "url": receiver.url()})).json()
    await append(api, {"type": "order.created", "data": {"n": 1}}, {"type": "x", "data": [1, 2]})
    await receiver.wait_for(2, scaled(15))
    verifier = Webhook(created["secret"])
    events = (await api.get("/api/streams/events/events", params={"from": 0})).json()
    event_list = events["events"] if isinstance(events, dict) else events
    # Concurrent delivery (the default mode): the two requests may arrive in either order.
    verified = [verifier.verify(r.body, r.headers) for r in receiver.requests]
    assert sorted(verified, key=lambda e: int(e["offset"])) == event_list
    rows = await wait_status(api, "hook", "delivered", 2)
    detail = (await api.get(f"/api/webhooks/hook/deliveries/{rows[0]['id']}")).json()
    (attempt,) = detail["attempt_log"]
    assert attempt["status"] == 204
    assert attempt["verdict"] == "delivered"
    assert attempt["duration_ms"] >= 0
    sent = {r.headers["webhook-id"]: r for r in receiver.requests}
    assert (
        verifier.verify(sent[detail["id"]].body, sent[detail["id"]].headers)["offset"]
        == (rows[0]["offset"])
    )
    page = (await api.get("/api/webhooks/hook/deliveries", params={"limit": 1})).json()
    assert len(page["deliveries"]) == 1
    rest = (await api.get("/api/webhooks/hook/deliveries", params={"from": page["next"]})).json()
    assert [d["offset"] for d in rest["deliveries"]] == [1]


async def test_replay_answers_202_403_404_and_redelivers_the_same_body(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    events: list[dict[str, object]] = [{"type": "t", "data": {"n": n}} for n in range(4)]
    await append(api, *events)
    await api.post("/api/webhooks", json={"id": "late", "url": receiver.url()})  # starts at the end
    await api.post(
        "/api/webhooks", json={"id": "locked", "url": receiver.url(), "allow_replay": False}
    )
    r = await api.post("/api/webhooks/late/replay", json={"from_offset": 1, "dry_run": True})
    assert (r.status_code, r.json()["matched"], r.json()["scheduled"]) == (200, 3, 0)
    await asyncio.sleep(0.3)
    assert receiver.requests == []

    r = await api.post("/api/webhooks/late/replay", json={"from_offset": 1, "to_offset": 3})
    assert r.status_code == 202, r.text
    assert r.json()["scheduled"] == 2
    await receiver.wait_for(2, scaled(15))
    first_bodies = sorted(json.loads(q.body)["offset"] for q in receiver.requests)
    assert first_bodies == [1, 2]

    r = await api.post("/api/webhooks/late/replay", json={"from_time": "2000-01-01T00:00:00Z"})
    assert (r.status_code, r.json()["scheduled"]) == (202, 4)
    await receiver.wait_for(6, scaled(15))
    by_offset: dict[int, set[bytes]] = {}
    for q in receiver.requests:
        by_offset.setdefault(json.loads(q.body)["offset"], set()).add(q.body)
    assert all(len(bodies) == 1 for bodies in by_offset.values())  # same event body each time

    assert (await api.post("/api/webhooks/locked/replay", json={})).status_code == 403
    assert (await api.post("/api/webhooks/nobody/replay", json={})).status_code == 404
    r = await api.post("/api/webhooks/late/replay", json={"from_offset": 99})
    assert (r.status_code, r.json()["error"]["code"]) == (404, "offset_not_found")

    delivered = await wait_status(api, "late", "delivered", 6)
    r = await api.post(f"/api/webhooks/late/deliveries/{delivered[0]['id']}/retry")
    assert r.status_code == 202
    await receiver.wait_for(7, scaled(15))
    assert receiver.requests[-1].headers["webhook-id"] == delivered[0]["id"]
    assert (await api.post("/api/webhooks/late/deliveries/msg_nope/retry")).status_code == 404


async def test_endpoints_survive_a_restart_and_config_endpoints_are_read_only(
    tmp_path: Path, receiver: Receiver
) -> None:
    extra = (
        "[[webhooks.endpoints]]\n"
        f'id = "declared"\nurl = "{receiver.url("/declared")}"\nsecret = "{SECRET}"\n'
    )
    cfg = config_file(tmp_path, extra)
    with ServerThread.start(db=tmp_path / "events.db", config=cfg) as srv:
        async with httpx.AsyncClient(base_url=srv.url, timeout=scaled(10)) as api:
            await api.post("/api/webhooks", json={"id": "mine", "url": receiver.url("/mine")})
            declared = (await api.get("/api/webhooks/declared")).json()
            assert declared["secrets"][0]["hint"] == "whsec_MfKQ…"
            r = await api.patch("/api/webhooks/declared", json={"timeout": 1})
            assert r.status_code == 409
            assert (await api.delete("/api/webhooks/declared")).status_code == 409
        srv.restart()
        async with httpx.AsyncClient(base_url=srv.url, timeout=scaled(10)) as api:
            ids = [w["id"] for w in (await api.get("/api/webhooks")).json()["webhooks"]]
            assert ids == ["declared", "mine"]
            await append(api, {"type": "t", "data": 1})
            await receiver.wait_for(2, scaled(15))
            assert sorted(q.path for q in receiver.requests) == ["/declared", "/mine"]
            async with asyncio.timeout(scaled(10)):  # the receiver saw it; now the ledger
                while True:
                    if not (await api.get("/api/webhooks/mine")).json()["in_flight"]:
                        break
                    await asyncio.sleep(0.05)
            metrics = (await api.get("/metrics")).text
            for name in (
                'eventlog_webhook_attempts_total{endpoint="mine",verdict="delivered"} 1.0',
                'eventlog_webhook_deliveries_total{endpoint="mine",outcome="delivered"} 1.0',
                'eventlog_webhook_attempt_duration_seconds_count{endpoint="mine"} 1.0',
                'eventlog_webhook_queue_depth{endpoint="mine",status="pending"}',
                'eventlog_webhook_oldest_pending_seconds{endpoint="mine"}',
            ):
                assert name in metrics, name


async def test_private_targets_are_refused_by_default(tmp_path: Path) -> None:
    cfg = config_file(tmp_path, allow_private=False)
    with ServerThread.start(db=tmp_path / "events.db", config=cfg) as srv:
        async with httpx.AsyncClient(base_url=srv.url, timeout=scaled(10)) as api:
            for url in (
                "http://127.0.0.1:9/",
                "http://localhost:9/",
                "http://[::ffff:10.0.0.1]/",
                "http://169.254.169.254/latest/meta-data",
            ):
                r = await api.post("/api/webhooks", json={"url": url})
                assert r.status_code == 422, r.text
                assert r.json()["error"]["code"] == "unsafe_target"
                assert "allow_private_targets = true" in r.json()["error"]["message"]


async def test_webhook_routes_need_the_admin_scope(tmp_path: Path) -> None:
    from server.auth import hash_key

    cfg = tmp_path / "eventlog.toml"
    cfg.write_text(
        "[[api_keys]]\n"
        f'name = "admin"\nhash = "{hash_key("k-admin")}"\nscopes = ["admin"]\n'
        "[[api_keys]]\n"
        f'name = "reader"\nhash = "{hash_key("k-reader")}"\nscopes = ["read:*", "append:*"]\n'
        "[webhooks]\nallow_private_targets = true\n"
    )
    with ServerThread.start(db=tmp_path / "events.db", config=cfg) as srv:
        async with httpx.AsyncClient(base_url=srv.url, timeout=scaled(10)) as api:
            body = {"id": "a", "url": "http://127.0.0.1:9/"}
            assert (await api.post("/api/webhooks", json=body)).status_code == 401
            reader = {"Authorization": "Bearer k-reader"}
            r = await api.post("/api/webhooks", json=body, headers=reader)
            assert r.status_code == 403
            assert (await api.get("/api/webhooks", headers=reader)).status_code == 403
            admin = {"Authorization": "Bearer k-admin"}
            assert (await api.post("/api/webhooks", json=body, headers=admin)).status_code == 201
            r = await api.post("/api/webhooks/a/replay", json={}, headers=reader)
            assert r.status_code == 403
            assert r.json()["error"]["code"] != "replay_not_allowed"
