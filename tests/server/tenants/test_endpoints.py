"""Tenant isolation of consumers, webhooks and their deliveries, notification
targets, ingest sources and file sources, against a real server.

Tenants ``acme`` and ``globex`` use the same consumer, webhook, target and
source names; each sees and changes only its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import msgspec
import pytest

from tests.consumers.delivery.receiver import Receiver
from tests.server.ingest.senders import github_headers, github_source
from tests.server.tenants.keys import client, clients, headers, tenant_config
from tests.serverthread import ServerThread
from tests.support import scaled

EXTRA = "[webhooks]\nallow_private_targets = true\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    root = tmp_path_factory.mktemp("tenants-ep")
    with ServerThread.start(db=root / "e.db", config=tenant_config(root, EXTRA)) as s:
        yield s


def _append(c: httpx.Client, stream: str, type_: str) -> None:
    assert c.post(f"/api/streams/{stream}/events", json={"type": type_}).status_code == 201


def test_consumers_with_the_same_name_are_each_tenants_own(server: ServerThread) -> None:
    with clients(server.url, "acme", "globex", "root") as (acme, globex, root):
        for c, n in ((acme, 3), (globex, 1)):
            for i in range(n):
                _append(c, "c-orders", f"t{i}")
        seek = {"stream": "c-orders", "position": 1}
        assert acme.put("/api/consumers/billing", json=seek).status_code == 200
        assert globex.put("/api/consumers/billing", json=seek).status_code == 200
        mine = acme.get("/api/consumers/billing").json()
        assert mine["name"] == "billing"
        assert mine["parked_stream"] == "billing.parked"
        assert [(s["stream"], s["offset"], s["lag"]) for s in mine["streams"]] == [
            ("c-orders", 1, 2)
        ]
        theirs = globex.get("/api/consumers/billing").json()["streams"]
        assert [(s["offset"], s["lag"]) for s in theirs] == [(1, 0)]
        listed = acme.get("/api/consumers").json()["consumers"]
        assert [(c["name"], c["stream"], c["lag"]) for c in listed] == [("billing", "c-orders", 2)]
        everything = {
            (c["name"], c["stream"]) for c in root.get("/api/consumers").json()["consumers"]
        }
        assert {("acme~billing", "acme~c-orders"), ("globex~billing", "globex~c-orders")} <= (
            everything
        )
        assert acme.get("/api/consumers/only-globex").status_code == 404
        refused = acme.put("/api/consumers/x", json={"stream": "globex~c-orders", "position": 0})
        assert refused.status_code == 400


async def test_webhooks_of_the_same_id_deliver_each_tenants_events_only(
    server: ServerThread, receiver: Receiver
) -> None:
    async with (
        httpx.AsyncClient(base_url=server.url, headers=headers("acme")) as acme,
        httpx.AsyncClient(base_url=server.url, headers=headers("globex")) as globex,
        httpx.AsyncClient(base_url=server.url, headers=headers("root")) as root,
    ):
        for c, path in ((acme, "/acme"), (globex, "/globex")):
            hook = {"id": "crm", "url": receiver.url(path), "stream": "w-orders"}
            made = await c.post("/api/webhooks", json=hook)
            assert made.status_code == 201, made.text
            assert (made.json()["id"], made.json()["stream"]) == ("crm", "w-orders")
        assert (await acme.post("/api/webhooks", json=hook)).status_code == 409
        await acme.post("/api/streams/w-orders/events", json={"type": "acme.created"})
        await receiver.wait_for(1, scaled(10))
        assert [r.path for r in receiver.requests] == ["/acme"]
        await globex.post("/api/streams/w-orders/events", json={"type": "globex.created"})
        await receiver.wait_for(2, scaled(10))
        by_path = {r.path: json.loads(r.body) for r in receiver.requests}
        assert by_path["/globex"]["type"] == "globex.created"
        assert (by_path["/acme"]["type"], by_path["/acme"]["stream"]) == (
            "acme.created",
            "w-orders",
        )
        listed = (await acme.get("/api/webhooks")).json()["webhooks"]
        assert [(w["id"], w["url"]) for w in listed] == [("crm", receiver.url("/acme"))]
        deliveries = (await acme.get("/api/webhooks/crm/deliveries")).json()["deliveries"]
        assert [(d["stream"], d["event_type"]) for d in deliveries] == [
            ("w-orders", "acme.created")
        ]
        theirs = (await globex.get("/api/webhooks/crm/deliveries")).json()["deliveries"]
        assert [d["event_type"] for d in theirs] == ["globex.created"]
        one = deliveries[0]["id"]
        assert (await globex.get(f"/api/webhooks/crm/deliveries/{one}")).status_code == 404
        assert (await globex.get("/api/webhooks/acme~crm")).status_code == 404
        consumers = (await acme.get("/api/consumers")).json()["consumers"]
        assert ("webhook.crm", "w-orders") in {(c["name"], c["stream"]) for c in consumers}
        assert (await acme.delete("/api/webhooks/crm")).status_code == 204
        assert (await globex.get("/api/webhooks/crm")).json()["id"] == "crm"
        ids = {w["id"] for w in (await root.get("/api/webhooks")).json()["webhooks"]}
        assert "globex~crm" in ids
        assert "acme~crm" not in ids


def test_notification_targets_of_the_same_id_are_each_tenants_own(server: ServerThread) -> None:
    with client(server.url, "acme") as acme, client(server.url, "globex") as globex:
        for c in (acme, globex):
            target = {
                "id": "chat",
                "kind": "discord",
                "url": "http://127.0.0.1:9/api/webhooks/1234567890/tok",
                "stream": "n-orders",
            }
            made = c.post("/api/notifications", json=target)
            assert made.status_code == 201, made.text
            assert made.json()["id"] == "chat"
        assert (
            acme.patch("/api/notifications/chat", json={"stream": "n-other"}).json()["stream"]
            == "n-other"
        )
        assert globex.get("/api/notifications/chat").json()["stream"] == "n-orders"
        assert [t["id"] for t in acme.get("/api/notifications").json()["notifications"]] == ["chat"]
        assert acme.delete("/api/notifications/chat").status_code == 204
        assert globex.get("/api/notifications/chat").status_code == 200


def test_ingest_sources_of_the_same_name_append_to_each_tenants_stream(
    server: ServerThread,
) -> None:
    with (
        clients(server.url, "acme", "globex") as (acme, globex),
        httpx.Client(base_url=server.url, timeout=scaled(10)) as sender,
    ):
        urls = {}
        for name, c in (("acme", acme), ("globex", globex)):
            source = github_source()
            made = c.post("/api/ingest/sources", json=source)
            assert made.status_code == 201, made.text
            assert (made.json()["name"], made.json()["stream"]) == ("github", "gh")
            urls[name] = made.json()["url"]
        assert urls == {"acme": "/ingest/acme~github", "globex": "/ingest/globex~github"}
        body = msgspec.json.encode({"action": "opened"})
        r = sender.post(urls["acme"], content=body, headers=github_headers(body))
        assert r.status_code == 202, r.text
        assert len(acme.get("/api/streams/gh/events").json()["events"]) == 1
        assert globex.get("/api/streams/gh/events").json()["events"] == []
        assert [s["name"] for s in globex.get("/api/ingest/sources").json()["sources"]] == [
            "github"
        ]
        assert acme.delete("/api/ingest/sources/github").status_code == 204
        assert globex.get("/api/ingest/sources/github").status_code == 200


def test_file_sources_are_the_servers_not_a_tenants(server: ServerThread) -> None:
    with client(server.url, "acme") as acme, client(server.url, "root") as root:
        refused = acme.get("/api/sources")
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "forbidden"
        assert root.get("/api/sources").status_code == 200


def test_shared_consumers_of_the_same_name_claim_each_tenants_events(
    server: ServerThread,
) -> None:
    with client(server.url, "acme") as acme, client(server.url, "globex") as globex:
        for c, who in ((acme, "acme"), (globex, "globex")):
            _append(c, "s-orders", f"{who}.created")
            r = c.put("/api/consumers/workers/shared", json={"stream": "s-orders"})
            assert r.status_code == 200, r.text
        for c, who in ((acme, "acme"), (globex, "globex")):
            got = c.post("/api/consumers/workers/claim", json={"worker": "w1", "max": 10})
            assert got.status_code == 200, got.text
            assert [cl["event"]["type"] for cl in got.json()["claims"]] == [f"{who}.created"]
        refused = acme.put("/api/consumers/x/shared", json={"stream": "globex~s-orders"})
        assert refused.status_code == 400
