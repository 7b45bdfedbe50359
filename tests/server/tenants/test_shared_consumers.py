"""Tenant isolation of shared consumers: two tenants declare the same consumer on the
same stream name; each claims only its own events, under the names it gave."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.server.tenants.keys import client, tenant_config
from tests.serverthread import ServerThread


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    root = tmp_path_factory.mktemp("tenants-shared")
    with ServerThread.start(db=root / "e.db", config=tenant_config(root)) as s:
        yield s


def test_two_tenants_share_out_only_their_own_events(server: ServerThread) -> None:
    with client(server.url, "acme") as acme, client(server.url, "globex") as globex:
        for c, who in ((acme, "acme"), (globex, "globex")):
            r = c.put("/api/consumers/mailer/shared", json={"stream": "mail"})
            assert r.status_code == 200, r.text
            assert (r.json()["name"], r.json()["stream"]) == ("mailer", "mail")
            assert c.post("/api/streams/mail/events", json={"type": who}).status_code == 201
        (claim,) = acme.post("/api/consumers/mailer/claim", json={"worker": "w"}).json()["claims"]
        assert (claim["stream"], claim["event"]["stream"], claim["event"]["type"]) == (
            "mail",
            "mail",
            "acme",
        )
        ack = {"worker": "w", "claims": [claim["id"]]}
        # the other tenant's consumer of the same name does not know this claim
        assert globex.post("/api/consumers/mailer/ack", json=ack).status_code == 404
        assert acme.post("/api/consumers/mailer/ack", json=ack).json() == {"acked": 1}
        (theirs,) = globex.post("/api/consumers/mailer/claim", json={"worker": "w"}).json()[
            "claims"
        ]
        assert theirs["event"]["type"] == "globex"
    with client(server.url, "root") as root:
        info = root.get("/api/consumers/acme~mailer/shared").json()
        assert (info["stream"], info["ack_floor"]) == ("acme~mail", 1)


def test_a_read_only_tenant_key_claims_but_may_not_declare(server: ServerThread) -> None:
    with client(server.url, "acme") as acme, client(server.url, "acme-ro") as ro:
        assert acme.put("/api/consumers/ro/shared", json={"stream": "ro"}).status_code == 200
        assert ro.put("/api/consumers/ro/shared", json={"stream": "ro"}).status_code == 403
        assert ro.post("/api/consumers/ro/claim", json={"worker": "w"}).json() == {"claims": []}
