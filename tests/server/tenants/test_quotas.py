"""Per-tenant quotas against a real server: 429 with ``Retry-After`` and a clear code.

The token bucket itself is tested without a server, its clock passed in.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
import websockets
from websockets.asyncio.client import connect

from server.quotas import TokenBucket
from tests.server.ingest.senders import github_headers, github_source
from tests.server.tenants.keys import client, headers, tenant_config
from tests.serverthread import ServerThread
from tests.support import scaled

QUOTAS = """
[tenants.acme]
append_rate = 0.05
append_burst = 3
retry_after = 7

[tenants.globex]
max_bytes = 100
max_connections = 2
retry_after = 5
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    root = tmp_path_factory.mktemp("tenants-quota")
    with ServerThread.start(db=root / "e.db", config=tenant_config(root, QUOTAS)) as s:
        yield s


def _refused(r: httpx.Response, code: str) -> int:
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == code
    return int(r.headers["retry-after"])


def test_token_bucket_refills_at_its_rate_and_says_how_long_to_wait() -> None:
    bucket = TokenBucket(rate=2.0, burst=4)
    assert bucket.take(0.0, 4) == 0.0
    assert bucket.take(0.0, 1) == 0.5
    assert bucket.take(0.5, 1) == 0.0
    assert bucket.take(1.0, 3) == 1.0  # 1 token there, 2 more in 1 s
    assert bucket.take(100.0, 4) == 0.0  # full again, never over the burst
    assert bucket.take(100.0, 1) == 0.5
    fresh = TokenBucket(rate=1.0, burst=2)
    assert fresh.take(0.0, 5) == 2.0  # over the burst: never at once
    assert fresh.take(0.0, 2) == 0.0  # the refused take took nothing


def test_append_rate_is_refused_with_429_and_retry_after(server: ServerThread) -> None:
    with client(server.url, "acme") as acme, client(server.url, "globex") as globex:
        batch = [{"type": "t"}] * 3
        assert acme.post("/api/streams/rated/events", json=batch).status_code == 201
        wait = _refused(
            acme.post("/api/streams/rated/events", json={"type": "t"}), "append_rate_exceeded"
        )
        # One event at 0.05 a second: 20 s, less what refilled while the test ran
        # (a slow enough rate that none refills under load between the two posts).
        assert 15 <= wait <= 20
        too_big = acme.post("/api/streams/rated/events", json=[{"type": "t"}] * 4)
        assert "at most 3 at once" in too_big.json()["error"]["message"]
        # Another tenant, and a key without a tenant, are not limited by acme's bucket.
        assert globex.post("/api/streams/rated/events", json=batch).status_code == 201
    with client(server.url, "plain") as plain:
        for _ in range(5):
            assert plain.post("/api/streams/rated/events", json=batch).status_code == 201


def test_stored_bytes_quota_refuses_appends_past_it(server: ServerThread) -> None:
    with client(server.url, "globex") as globex, client(server.url, "plain") as plain:
        big = {"type": "t", "data": {"pad": "x" * 120}}
        assert globex.post("/api/streams/full/events", json=big).status_code == 201
        wait = _refused(
            globex.post("/api/streams/other/events", json={"type": "t"}),
            "storage_quota_exceeded",
        )
        assert wait == 5
        assert plain.post("/api/streams/full/events", json=big).status_code == 201
        assert globex.delete("/api/streams/full").status_code == 204
        ok = globex.post("/api/streams/other/events", json={"type": "t"})
        for _ in range(int(scaled(30))):  # the figure is refreshed within a second
            if ok.status_code == 201:
                break
            threading.Event().wait(0.2)
            ok = globex.post("/api/streams/other/events", json={"type": "t"})
        assert ok.status_code == 201


async def test_connection_quota_counts_websocket_sse_and_long_poll(server: ServerThread) -> None:
    url = f"{server.ws_url}/api/streams/conns/firehose"
    with client(server.url, "root") as root:  # (globex's stored bytes may be used up)
        for name in ("globex~conns", "acme~conns"):
            assert root.post(f"/api/streams/{name}/events", json={"type": "t"}).is_success
    async with (
        connect(url, additional_headers=headers("globex")),
        httpx.AsyncClient(base_url=server.url, headers=headers("globex"), timeout=30) as http,
        http.stream("GET", "/api/streams/conns/sse") as sse,
    ):
        assert sse.status_code == 200
        with pytest.raises(websockets.InvalidStatus) as info:
            async with connect(url, additional_headers=headers("globex")):
                pass
        response = info.value.response
        assert response.status_code == 429
        assert response.headers["retry-after"] == "5"
        body = msgspec.json.decode(response.body)
        assert body["error"]["code"] == "connection_quota_exceeded"
        poll = await http.get("/api/streams/conns/events?from=1&wait=1")
        assert _refused(poll, "connection_quota_exceeded") == 5
        refused_sse = await http.get("/api/streams/conns/sse")
        assert _refused(refused_sse, "connection_quota_exceeded") == 5
        assert (await http.get("/api/streams/conns/events")).status_code == 200  # no wait: free
        # Another tenant is not counted against globex.
        async with connect(url, additional_headers=headers("acme")):
            pass
    # Closed connections are given back.
    for _ in range(int(scaled(50))):
        try:
            async with connect(url, additional_headers=headers("globex")):
                return
        except websockets.InvalidStatus:
            await asyncio.sleep(0.1)
    raise AssertionError("the closed connections were not given back")


def test_ingest_and_shared_consumer_claims_count_against_the_tenants_quotas(
    tmp_path: Path,
) -> None:
    quotas = "[tenants.acme]\nappend_rate = 0.1\nappend_burst = 1\nmax_connections = 1\n"
    config = tenant_config(tmp_path, quotas)
    with (
        ServerThread.start(db=tmp_path / "e.db", config=config) as server,
        client(server.url, "acme") as acme,
    ):
        source = github_source()
        assert acme.post("/api/ingest/sources", json=source).status_code == 201
        body = msgspec.json.encode({"action": "opened"})
        sent = [
            httpx.post(
                f"{server.url}/ingest/acme~github",
                content=body,
                headers=github_headers(body, delivery=f"d-{n}"),
                timeout=scaled(10),
            )
            for n in range(2)
        ]
        assert sent[0].status_code == 202
        assert 5 <= _refused(sent[1], "append_rate_exceeded") <= 10  # 1 event at 0.1/s
        declared = acme.put("/api/consumers/workers/shared", json={"stream": "gh"})
        assert declared.status_code == 200, declared.text
        url = f"{server.url}/api/streams/gh/events?from=1&wait=5"
        held = threading.Thread(target=lambda: acme.get(url), daemon=True)
        held.start()  # the one connection acme may hold
        deadline = time.monotonic() + scaled(10)
        claimed = acme.post(
            "/api/consumers/workers/claim", json={"worker": "w", "wait": 1, "max": 1}
        )
        while claimed.status_code != 429 and time.monotonic() < deadline:
            claimed = acme.post(
                "/api/consumers/workers/claim", json={"worker": "w", "wait": 1, "max": 1}
            )
        assert _refused(claimed, "connection_quota_exceeded") == 10
        with client(server.url, "root") as root:  # no tenant, no quota: ends the held poll
            woke = root.post("/api/streams/acme~gh/events", json={"type": "wake"})
            assert woke.status_code == 201, woke.text
        held.join()
