"""Tenant isolation of streams: append, read, long-poll, list, describe, delete, schedules.

Two tenants append to the same stream name against a real server; each reads
only its own events, names its stream as it gave it, and never sees the
other's. Admin keys without a tenant see both as stored (``acme~orders``);
a key without a tenant keeps today's names.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

from tests.server.tenants.keys import client, clients, tenant_config
from tests.serverthread import ServerThread


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    root = tmp_path_factory.mktemp("tenants")
    with ServerThread.start(db=root / "e.db", config=tenant_config(root)) as s:
        yield s


def _append(c: httpx.Client, stream: str, type_: str) -> httpx.Response:
    return c.post(f"/api/streams/{stream}/events", json={"type": type_})


def test_two_tenants_append_and_read_the_same_stream_name_apart(server: ServerThread) -> None:
    with client(server.url, "acme") as acme, client(server.url, "globex") as globex:
        a = _append(acme, "orders", "acme.created")
        g = _append(globex, "orders", "globex.created")
        assert a.status_code == g.status_code == 201
        assert a.json()["stream"] == "orders"
        assert a.json()["offsets"] == [0]
        assert g.json()["offsets"] == [0]  # its own stream: offsets start at 0 too
        page = acme.get("/api/streams/orders/events").json()
        assert page["stream"] == "orders"
        assert [(e["stream"], e["type"]) for e in page["events"]] == [("orders", "acme.created")]
        theirs = globex.get("/api/streams/orders/events").json()["events"]
        assert [e["type"] for e in theirs] == ["globex.created"]


def test_tenant_listing_shows_only_its_streams_by_its_names(server: ServerThread) -> None:
    with client(server.url, "acme") as acme, client(server.url, "globex") as globex:
        _append(acme, "only-acme", "x")
        _append(acme, "orders", "acme.listed")
        _append(globex, "orders", "globex.listed")
        names = {s["name"] for s in acme.get("/api/streams").json()["streams"]}
        assert "only-acme" in names
        assert "orders" in names
        assert not any("~" in n or "globex" in n for n in names)
        assert "only-acme" not in {s["name"] for s in globex.get("/api/streams").json()["streams"]}
        assert globex.get("/api/streams/only-acme").status_code == 404
        assert globex.get("/api/streams/only-acme/events").json()["events"] == []
        info = acme.get("/api/streams/only-acme").json()
        assert info["name"] == "only-acme"
        assert info["next_offset"] == 1


def test_tenant_cannot_name_another_tenants_stored_stream(server: ServerThread) -> None:
    with client(server.url, "globex") as globex, client(server.url, "plain") as plain:
        for c in (globex, plain):
            r = c.get("/api/streams/acme~orders/events")
            assert r.status_code == 400
            assert r.json()["error"]["code"] == "invalid_stream_name"
            assert _append(c, "acme~orders", "x").status_code == 400


def test_admin_sees_every_tenant_as_stored_and_plain_key_sees_no_tenant(
    server: ServerThread,
) -> None:
    with clients(server.url, "acme", "root", "plain") as (acme, root, plain):
        _append(acme, "orders", "acme.created")
        with client(server.url, "globex") as globex:
            _append(globex, "orders", "globex.created")
        assert _append(plain, "orders", "plain.created").json()["stream"] == "orders"
        names = {s["name"] for s in root.get("/api/streams").json()["streams"]}
        assert {"acme~orders", "globex~orders", "orders"} <= names
        events = root.get("/api/streams/acme~orders/events").json()["events"]
        assert {e["stream"] for e in events} == {"acme~orders"}
        plain_names = {s["name"] for s in plain.get("/api/streams").json()["streams"]}
        assert "orders" in plain_names
        assert not any("~" in n for n in plain_names)
        plain_events = plain.get("/api/streams/orders/events").json()["events"]
        assert {e["type"] for e in plain_events} == {"plain.created"}
        # The tenant never sees the events of the key without a tenant either.
        assert all(
            e["type"].startswith("acme")
            for e in acme.get("/api/streams/orders/events").json()["events"]
        )


def test_long_poll_wakes_on_the_tenants_own_append_only(server: ServerThread) -> None:
    with client(server.url, "acme") as acme, client(server.url, "globex") as globex:
        head = acme.get("/api/streams/polled").status_code
        assert head == 404
        _append(acme, "polled", "first")
        got: list[httpx.Response] = []
        waiter = threading.Thread(
            target=lambda: got.append(acme.get("/api/streams/polled/events?from=1&wait=5"))
        )
        waiter.start()
        _append(globex, "polled", "globex.noise")  # same name, other tenant: no wake-up
        _append(acme, "polled", "acme.second")
        waiter.join()
        events = got[0].json()["events"]
        assert [(e["stream"], e["type"]) for e in events] == [("polled", "acme.second")]


def test_tenant_delete_removes_only_its_stream(server: ServerThread) -> None:
    with client(server.url, "acme") as acme, client(server.url, "globex") as globex:
        _append(acme, "doomed", "a")
        _append(globex, "doomed", "g")
        assert acme.delete("/api/streams/doomed").status_code == 204
        assert acme.get("/api/streams/doomed").status_code == 404
        assert globex.get("/api/streams/doomed").json()["next_offset"] == 1


def test_read_only_tenant_key_reads_its_tenant_and_may_not_append(server: ServerThread) -> None:
    with client(server.url, "acme") as acme, client(server.url, "acme-ro") as ro:
        _append(acme, "ro-stream", "a")
        assert [e["type"] for e in ro.get("/api/streams/ro-stream/events").json()["events"]] == [
            "a"
        ]
        assert _append(ro, "ro-stream", "b").status_code == 403


def test_schedules_are_the_tenants_own(server: ServerThread) -> None:
    with clients(server.url, "acme", "globex", "root") as (acme, globex, root):
        r = acme.post("/api/streams/later/events?delay=3600", json={"type": "due", "id": "sched-1"})
        assert r.status_code == 202
        assert r.json()["stream"] == "later"
        assert r.json()["scheduled"][0]["stream"] == "later"
        g = globex.post("/api/streams/later/events?delay=3600", json={"type": "g", "id": "sched-1"})
        assert g.status_code == 202
        assert g.json()["scheduled"][0]["new"] is True
        mine = acme.get("/api/schedules").json()["schedules"]
        assert [(s["stream"], s["type"]) for s in mine] == [("later", "due")]
        one = acme.get("/api/schedules/later/sched-1").json()
        assert one["stream"] == "later"
        assert one["type"] == "due"
        assert acme.delete("/api/schedules/later/sched-1").status_code == 204
        assert globex.get("/api/schedules/later/sched-1").json()["type"] == "g"
        everything = {s["stream"] for s in root.get("/api/schedules").json()["schedules"]}
        assert everything == {"globex~later"}


def test_errors_name_the_tenants_stream_as_it_gave_it(server: ServerThread) -> None:
    with client(server.url, "acme") as acme:
        missing = acme.get("/api/streams/no-such-stream")
        assert missing.status_code == 404
        assert "'no-such-stream'" in missing.json()["error"]["message"]
        assert "~" not in missing.text
