"""Tenant isolation of ``/metrics``: each key sees only the series of names it sees."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from server.tenancy import TenantScope
from tests.server.tenants.keys import client, tenant_config
from tests.serverthread import ServerThread
from tests.support import scaled


def _appended(text: str) -> dict[str, float]:
    found = re.findall(r'^eventlog_appended_events_total\{stream="([^"]*)"\} (\S+)$', text, re.M)
    return {stream: float(value) for stream, value in found}


def test_metrics_show_each_key_only_its_series(tmp_path: Path) -> None:
    config = tenant_config(tmp_path)
    with ServerThread.start(db=tmp_path / "e.db", config=config) as server:
        with client(server.url, "acme") as acme, client(server.url, "globex") as globex:
            for c, n in ((acme, 2), (globex, 5)):
                for _ in range(n):
                    c.post("/api/streams/m-orders/events", json={"type": "t"})
            acme.put("/api/consumers/c1", json={"stream": "m-orders", "position": 0})
            mine = acme.get("/metrics").text
            theirs = globex.get("/metrics").text
        with client(server.url, "root") as root, client(server.url, "plain") as plain:
            plain.post("/api/streams/m-orders/events", json={"type": "t"})
            everything = root.get("/metrics").text
            anonymous = httpx.get(f"{server.url}/metrics", timeout=scaled(10)).text
            keyless = plain.get("/metrics").text
    assert _appended(mine) == {"m-orders": 2.0}
    assert _appended(theirs) == {"m-orders": 5.0}
    assert 'eventlog_consumer_lag_events{consumer="c1",stream="m-orders"} 2.0' in mine
    assert "c1" not in theirs
    assert _appended(everything) == {"acme~m-orders": 2.0, "globex~m-orders": 5.0, "m-orders": 1.0}
    assert _appended(anonymous) == _appended(keyless) == {"m-orders": 1.0}
    assert "~" not in anonymous
    assert "eventlog_http_requests_total" in mine  # the server's own series stay


def test_metrics_filter_keeps_comments_and_unnamed_series() -> None:
    text = "\n".join(
        [
            "# HELP x_total x",
            'x_total{stream="acme~a"} 1.0',
            'x_total{stream="globex~a"} 2.0',
            'x_total{route="/api/streams/{stream}",status="200"} 3.0',
            'y{consumer="webhook.acme~crm",stream="acme~a"} 4.0',
        ]
    )
    assert TenantScope("acme").metrics(text).splitlines() == [
        "# HELP x_total x",
        'x_total{stream="a"} 1.0',
        'x_total{route="/api/streams/{stream}",status="200"} 3.0',
        'y{consumer="webhook.crm",stream="a"} 4.0',
    ]
