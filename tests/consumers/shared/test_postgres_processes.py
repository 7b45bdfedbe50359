"""Any ``serve`` process on one PostgreSQL database serves any worker's claim and ack."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx
import pytest

from tests.pg import PgCluster
from tests.serverproc import ServerProcess
from tests.support import scaled


def post(url: str, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{url}/api/consumers/mailer/{path}", json=body, timeout=30)


@pytest.mark.slow
def test_a_claim_made_through_one_process_is_acked_through_another(
    pg_cluster: PgCluster,
) -> None:
    url = asyncio.run(pg_cluster.create_database())
    ack_wait = scaled(1.0)  # the first claim is acked well before it expires, even under load
    with ServerProcess.start(db=url) as a, ServerProcess.start(db=url) as b:
        r = httpx.put(
            f"{a.url}/api/consumers/mailer/shared",
            json={"stream": "mail", "ack_wait": ack_wait, "ordered_by_key": True},
        )
        assert r.status_code == 200, r.text
        # a long-poll on b wakes on an append made through a (LISTEN/NOTIFY)
        got: list[Any] = []
        poll = threading.Thread(
            target=lambda: got.extend(
                post(b.url, "claim", {"worker": "w1", "wait": 20}).json()["claims"]
            )
        )
        started = time.monotonic()
        poll.start()
        time.sleep(0.5)
        events = [{"type": "mail.send", "key": "ann"}, {"type": "mail.send", "key": "ann"}]
        assert httpx.post(f"{a.url}/api/streams/mail/events", json=events).status_code == 201
        poll.join(20)
        assert [c["offset"] for c in got] == [0]  # ann's second waits for the first's ack
        assert time.monotonic() - started < 10
        (claim,) = got
        # b's claim, seen by a: held by w1, not w2; then acked through a
        assert post(a.url, "ack", {"worker": "w2", "claims": [claim["id"]]}).status_code == 409
        assert post(a.url, "ack", {"worker": "w1", "claims": [claim["id"]]}).json() == {"acked": 1}
        assert (
            post(b.url, "ack", {"worker": "w1", "claims": [claim["id"]]}).json()["error"]["code"]
            == "already_acked"
        )
        # the next event of the key, claimed through a, expires and goes to w2 through b
        (second,) = post(a.url, "claim", {"worker": "w1"}).json()["claims"]
        assert second["offset"] == 1
        time.sleep(ack_wait + 0.2)
        (again,) = post(b.url, "claim", {"worker": "w2", "wait": 5}).json()["claims"]
        assert (again["offset"], again["attempt"]) == (1, 2)
        assert (
            post(a.url, "ack", {"worker": "w1", "claims": [second["id"]]}).json()["error"]["code"]
            == "claim_expired"
        )
        assert post(a.url, "ack", {"worker": "w2", "claims": [again["id"]]}).json() == {"acked": 1}
        for server in (a, b):
            info = httpx.get(f"{server.url}/api/consumers/mailer/shared").json()
            assert (info["ack_floor"], info["pending"], info["claimed"]) == (2, 0, 0)
