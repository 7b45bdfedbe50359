"""Tenant names on PostgreSQL: two tenants' ``orders`` stay apart in one database."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.pg import PgCluster
from tests.server.tenants.keys import client, tenant_config
from tests.serverthread import ServerThread


def test_two_tenants_share_a_postgres_database_and_never_a_stream(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    url = asyncio.run(pg_cluster.create_database())
    with ServerThread.start(db=url, config=tenant_config(tmp_path)) as server:
        with client(server.url, "acme") as acme, client(server.url, "globex") as globex:
            for c, who in ((acme, "acme"), (globex, "globex")):
                r = c.post("/api/streams/orders/events", json=[{"type": who}] * 2)
                assert r.json()["offsets"] == [0, 1]
                seek = {"stream": "orders", "position": 1}
                assert c.put("/api/consumers/billing", json=seek).status_code == 200
            events = acme.get("/api/streams/orders/events").json()["events"]
            assert [(e["stream"], e["type"]) for e in events] == [("orders", "acme")] * 2
            listed = globex.get("/api/consumers").json()["consumers"]
            assert [(c["name"], c["stream"], c["lag"]) for c in listed] == [
                ("billing", "orders", 1)
            ]
        with client(server.url, "root") as root:
            names = {s["name"] for s in root.get("/api/streams").json()["streams"]}
            assert names == {"acme~orders", "globex~orders"}
