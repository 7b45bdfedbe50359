"""A tenant's parked events name their origin as the tenant does: ``parked-stream``
and ``parked-consumer`` say ``jobs`` and ``mailer`` on reads, claims and the
firehose, not the stored ``acme~jobs`` (a name the tenant's key cannot use)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from websockets.asyncio.client import connect

from tests.server.tenants.keys import client, headers, tenant_config
from tests.serverthread import ServerThread
from tests.support import scaled


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    root = tmp_path_factory.mktemp("tenants-parked")
    with ServerThread.start(db=root / "e.db", config=tenant_config(root)) as s:
        with client(s.url, "acme") as acme:
            spec = {"stream": "jobs", "ack_wait": 0.1, "max_deliver": 1}
            assert acme.put("/api/consumers/mailer/shared", json=spec).status_code == 200
            assert acme.post("/api/streams/jobs/events", json={"type": "j"}).status_code == 201
            assert (
                len(acme.post("/api/consumers/mailer/claim", json={"worker": "w"}).json()["claims"])
                == 1
            )
            deadline = time.monotonic() + scaled(10)
            while acme.get("/api/consumers/mailer/shared").json()["parked"] == 0:
                assert time.monotonic() < deadline, "the unacked event was never parked"
                acme.post("/api/consumers/mailer/claim", json={"worker": "w", "wait": 0.2})
        yield s


def _origin(event: dict[str, Any]) -> tuple[str, str, str]:
    h = event["headers"]
    return event["stream"], h["parked-stream"], h["parked-consumer"]


def test_a_tenant_reads_its_parked_events_origin_by_its_names(server: ServerThread) -> None:
    with client(server.url, "acme") as acme, client(server.url, "root") as root:
        (mine,) = acme.get("/api/streams/mailer.parked/events").json()["events"]
        assert _origin(mine) == ("mailer.parked", "jobs", "mailer")
        (stored,) = root.get("/api/streams/acme~mailer.parked/events").json()["events"]
        assert _origin(stored) == ("acme~mailer.parked", "acme~jobs", "acme~mailer")


def test_a_tenant_claims_its_parked_events_by_its_names(server: ServerThread) -> None:
    with client(server.url, "acme") as acme:
        spec = {"stream": "mailer.parked", "start": "beginning"}
        assert acme.put("/api/consumers/retry/shared", json=spec).status_code == 200
        (claim,) = acme.post("/api/consumers/retry/claim", json={"worker": "w"}).json()["claims"]
        assert _origin(claim["event"]) == ("mailer.parked", "jobs", "mailer")


@pytest.mark.parametrize("batch", [1, 10])
async def test_the_firehose_shows_a_tenant_its_parked_events_by_its_names(
    server: ServerThread, batch: int
) -> None:
    url = f"{server.ws_url}/api/streams/mailer.parked/firehose?from=beginning&batch={batch}"
    async with connect(url, additional_headers=headers("acme")) as ws:
        got = msgspec.json.decode(await ws.recv())
    (event,) = got if isinstance(got, list) else [got]
    assert _origin(event) == ("mailer.parked", "jobs", "mailer")
