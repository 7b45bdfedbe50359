"""``GET|PUT /api/streams/{stream}/retention`` against a real server with API keys and tenants."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from eventlog import EventLog
from tests.server.tenants.keys import client, clients, tenant_config
from tests.serverthread import ServerThread

NONE = {"max_age": None, "max_count": None, "max_bytes": None, "protect": True, "max_hold": None}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    root = tmp_path_factory.mktemp("retention")
    with ServerThread.start(db=root / "e.db", config=tenant_config(root)) as s:
        yield s


def _stream() -> str:
    return f"r-{uuid.uuid4().hex[:12]}"


def _append(c: httpx.Client, stream: str, n: int) -> None:
    r = c.post(f"/api/streams/{stream}/events", json=[{"type": "t", "data": i} for i in range(n)])
    assert r.status_code == 201, r.text


def test_put_retention_is_what_get_and_the_stream_info_show(server: ServerThread) -> None:
    s = _stream()
    policy = {"max_age": 604800.0, "max_count": 1000, "max_bytes": 1 << 20}
    with client(server.url, "root") as root:
        _append(root, s, 1)
        put = root.put(f"/api/streams/{s}/retention", json=policy)
        assert put.status_code == 200, put.text
        assert put.json() == {**NONE, **policy}
        assert root.get(f"/api/streams/{s}/retention").json() == put.json()
        assert root.get(f"/api/streams/{s}").json()["retention"] == put.json()
        # What GET shows can be PUT back as it is.
        again = root.put(f"/api/streams/{s}/retention", json=put.json())
        assert again.json() == put.json()
        # A PUT replaces the whole policy: a field left out is no limit.
        assert root.put(f"/api/streams/{s}/retention", json={"max_count": 5}).json() == {
            **NONE,
            "max_count": 5,
        }


def test_a_whole_count_written_as_a_float_is_taken_as_an_integer(server: ServerThread) -> None:
    with client(server.url, "root") as root:
        r = root.put(
            f"/api/streams/{_stream()}/retention",
            content=b'{"max_count": 482.0, "max_bytes": 1e6}',
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 200, r.text
        assert r.content.count(b'"max_count":482,') == r.content.count(b'"max_bytes":1000000,') == 1


@pytest.mark.parametrize("body", [{}, NONE, {"max_count": None, "max_age": None}])
def test_empty_or_null_policy_clears_retention(server: ServerThread, body: object) -> None:
    s = _stream()
    with client(server.url, "root") as root:
        root.put(f"/api/streams/{s}/retention", json={"max_count": 3, "protect": False})
        cleared = root.put(f"/api/streams/{s}/retention", json=body)
        assert cleared.status_code == 200, cleared.text
        assert cleared.json() == NONE
        assert root.get(f"/api/streams/{s}").json()["retention"] == NONE


def test_put_creates_a_stream_that_does_not_exist_yet_get_is_404(server: ServerThread) -> None:
    s = _stream()
    with client(server.url, "root") as root:
        missing = root.get(f"/api/streams/{s}/retention")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "stream_not_found"
        assert root.put(f"/api/streams/{s}/retention", json={"max_count": 2}).status_code == 200
        info = root.get(f"/api/streams/{s}").json()
        assert (info["next_offset"], info["retention"]["max_count"]) == (0, 2)


async def test_retention_trims_up_to_a_protecting_consumer_then_to_the_policy(
    server: ServerThread,
) -> None:
    s = _stream()
    with client(server.url, "root") as root:
        _append(root, s, 10)
        seek = root.put("/api/consumers/lagger", json={"stream": s, "position": 3})
        assert seek.status_code == 200, seek.text
        assert root.put(f"/api/streams/{s}/retention", json={"max_count": 4}).status_code == 200
        holds = root.get(f"/api/streams/{s}").json()["holds"]
        assert [(h["consumer"], h["offset"]) for h in holds] == [("lagger", 3)]
        # The server's retention pass, on its own database file (as its task runs it).
        async with EventLog.open(server.db) as log:
            assert await log.enforce_retention() == 3  # held at the consumer's offset 3, not 6
        assert root.get(f"/api/streams/{s}").json()["first_offset"] == 3
        assert root.put("/api/consumers/lagger", json={"stream": s, "position": "end"}).is_success
        async with EventLog.open(server.db) as log:
            assert await log.enforce_retention() == 3  # now down to the last 4
        assert root.get(f"/api/streams/{s}").json()["first_offset"] == 6
        gone = root.get(f"/api/streams/{s}/events", params={"from": 0})
        assert gone.status_code == 416
        assert gone.json()["error"]["code"] == "offset_out_of_range"
        page = root.get(f"/api/streams/{s}/events", params={"from": 6}).json()
        assert [e["data"] for e in page["events"]] == [6, 7, 8, 9]


@pytest.mark.parametrize(
    ("body", "status", "path"),
    [
        ({"max_count": 0}, 422, "$.max_count"),
        ({"max_count": -1}, 422, "$.max_count"),
        ({"max_age": 0}, 422, "$.max_age"),
        ({"max_bytes": -5}, 422, "$.max_bytes"),
        ({"max_hold": 0}, 422, "$.max_hold"),
        ({"max_count": 1.5}, 422, "$.max_count"),
        ({"max_count": "10"}, 422, "$.max_count"),
        ({"max_age": "7d"}, 422, "$.max_age"),
        ({"max_count": True}, 422, "$.max_count"),
        ({"max_count": 2**63}, 422, "$.max_count"),
        ({"max_age": 1e300}, 422, "$.max_age"),
        ({"protect": "yes"}, 422, "$.protect"),
        ({"max_cnt": 5}, 422, "$"),
        ([{"max_count": 5}], 422, "$"),
        ("max_count=5", 422, "$"),
        (5, 422, "$"),
    ],
)
def test_bad_retention_bodies_are_4xx_json_naming_the_field(
    server: ServerThread, body: object, status: int, path: str
) -> None:
    s = _stream()
    with client(server.url, "root") as root:
        r = root.put(f"/api/streams/{s}/retention", json=body)
        assert r.status_code == status, r.text
        error = r.json()["error"]
        assert error["code"] == "validation_error"
        assert error["path"] == path
        assert root.get(f"/api/streams/{s}/retention").status_code == 404  # nothing stored


@pytest.mark.parametrize(
    ("content", "code"),
    [(b"", "empty_body"), (b"{", "malformed_json"), (b"\xff\xfe", "malformed_json")],
)
def test_missing_or_malformed_body_is_400(server: ServerThread, content: bytes, code: str) -> None:
    with client(server.url, "root") as root:
        r = root.put(
            f"/api/streams/{_stream()}/retention",
            content=content,
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == code


def test_only_admin_keys_set_retention_read_keys_see_it(server: ServerThread) -> None:
    s = _stream()
    with clients(server.url, "root", "plain") as (root, plain):
        _append(plain, s, 1)
        refused = plain.put(f"/api/streams/{s}/retention", json={"max_count": 1})
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "forbidden"
        assert plain.get(f"/api/streams/{s}/retention").json() == NONE  # unchanged
        assert root.put(f"/api/streams/{s}/retention", json={"max_count": 1}).status_code == 200
        assert plain.get(f"/api/streams/{s}/retention").json()["max_count"] == 1
        anonymous = httpx.put(f"{server.url}/api/streams/{s}/retention", json={})
        assert anonymous.status_code == 401


def test_a_tenant_admin_sets_only_its_own_streams_retention(server: ServerThread) -> None:
    with clients(server.url, "acme", "globex", "acme-ro", "root") as (acme, globex, ro, root):
        _append(acme, "orders", 1)
        _append(globex, "orders", 1)
        r = acme.put("/api/streams/orders/retention", json={"max_count": 7})
        assert r.status_code == 200, r.text
        assert r.json()["max_count"] == 7
        assert globex.get("/api/streams/orders/retention").json() == NONE
        assert root.get("/api/streams/acme~orders/retention").json()["max_count"] == 7
        assert root.get("/api/streams/globex~orders/retention").json() == NONE
        # A tenant key never names another tenant's stream.
        other = acme.put("/api/streams/globex~orders/retention", json={"max_count": 1})
        assert other.status_code == 400
        assert other.json()["error"]["code"] == "invalid_stream_name"
        assert ro.put("/api/streams/orders/retention", json={}).status_code == 403
        assert ro.get("/api/streams/orders/retention").json()["max_count"] == 7
