"""Shared consumers over HTTP (a real uvicorn): the contract, and every bad input a 4xx."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serverproc import ServerFailed, ServerProcess
from tests.serverthread import ServerThread
from tests.support import wait_until_sync

WORKER_SH = Path(__file__).resolve().parents[3] / "docs" / "examples" / "worker.sh"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    with ServerThread.start(db=tmp_path / "events.db") as s:
        yield s


@pytest.fixture
def api(server: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def quiet_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """One server for the module's bad-input tests: a refusal changes nothing, and each
    test that stores something uses names of its own."""
    db = tmp_path_factory.mktemp("shared-http") / "events.db"
    with (
        ServerThread.start(db=db) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        yield client


_names = itertools.count()


def append(api: httpx.Client, n: int, stream: str = "orders", key: str | None = None) -> None:
    events = [{"type": "order.created", "data": {"i": i}, "key": key} for i in range(n)]
    assert api.post(f"/api/streams/{stream}/events", json=events).status_code == 201


def declare(api: httpx.Client, name: str = "mailer", **spec: Any) -> dict[str, Any]:
    r = api.put(f"/api/consumers/{name}/shared", json={"stream": "orders", **spec})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def error(r: httpx.Response, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code, r.text
    message: str = r.json()["error"]["message"]
    return message


def claim(api: httpx.Client, worker: str, name: str = "mailer", **body: Any) -> list[Any]:
    r = api.post(f"/api/consumers/{name}/claim", json={"worker": worker, **body})
    assert r.status_code == 200, r.text
    claims: list[Any] = r.json()["claims"]
    return claims


def test_declare_claim_ack_and_the_consumer_offset_is_the_ack_floor(api: httpx.Client) -> None:
    append(api, 3)
    info = declare(api, ack_wait=10, max_deliver=3)
    assert {k: info[k] for k in ("name", "stream", "ack_floor", "head", "pending", "claimed")} == {
        "name": "mailer",
        "stream": "orders",
        "ack_floor": 0,
        "head": 3,
        "pending": 3,
        "claimed": 0,
    }
    assert declare(api, ack_wait=10, max_deliver=3)["ack_wait"] == 10  # idempotent
    claims = claim(api, "w1", max=2)
    assert [(c["offset"], c["attempt"], c["stream"]) for c in claims] == [
        (0, 1, "orders"),
        (1, 1, "orders"),
    ]
    assert claims[0]["event"] == api.get("/api/streams/orders/events").json()["events"][0]
    assert claims[0]["expires"].endswith("Z") or "+00:00" in claims[0]["expires"]
    extended = api.post(
        "/api/consumers/mailer/in-progress", json={"worker": "w1", "claims": [claims[0]["id"]]}
    )
    assert extended.status_code == 200
    assert extended.json()["expires"] >= claims[0]["expires"]
    r = api.post(
        "/api/consumers/mailer/ack", json={"worker": "w1", "claims": [c["id"] for c in claims]}
    )
    assert r.json() == {"acked": 2}
    shown = api.get("/api/consumers/mailer/shared").json()
    assert (shown["ack_floor"], shown["pending"], shown["claimed"]) == (2, 1, 0)
    assert shown["oldest_unacked_age"] is not None
    consumer = api.get("/api/consumers/mailer").json()
    assert [(s["stream"], s["offset"]) for s in consumer["streams"]] == [("orders", 2)]
    metrics = api.get("/metrics").text
    assert 'eventlog_consumer_lag_events{consumer="mailer",stream="orders"} 1.0' in metrics


def test_nack_with_a_delay_and_redelivery_to_another_worker(api: httpx.Client) -> None:
    append(api, 1)
    declare(api)
    (first,) = claim(api, "w1")
    r = api.post(
        "/api/consumers/mailer/nack", json={"worker": "w1", "claims": [first["id"]], "delay": 0}
    )
    assert r.json() == {"nacked": 1}
    (again,) = claim(api, "w2")
    assert (again["offset"], again["attempt"]) == (0, 2)
    assert api.post(
        "/api/consumers/mailer/nack", json={"worker": "w2", "claims": [again["id"]], "delay": 60}
    ).json() == {"nacked": 1}
    assert claim(api, "w3") == []


def test_a_long_poll_claim_returns_when_an_event_is_appended(
    api: httpx.Client, server: ServerThread
) -> None:
    declare(api, start="end")
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.extend(claim(api, "w1", wait=20)))
    started = time.monotonic()
    waiter.start()
    time.sleep(0.3)
    assert waiter.is_alive()
    append(api, 1)
    waiter.join(10)
    assert [c["offset"] for c in got] == [0]
    assert time.monotonic() - started < 10
    empty = time.monotonic()
    assert claim(api, "w1", wait=0.3) == []
    assert time.monotonic() - empty >= 0.25


def test_ack_errors_each_have_their_code_and_change_nothing(api: httpx.Client) -> None:
    append(api, 2)
    declare(api, ack_wait=0.5)
    held, other = claim(api, "w1")
    url = "/api/consumers/mailer/ack"
    error(api.post(url, json={"worker": "w1", "claims": ["nonsense"]}), 404, "claim_not_found")
    message = error(
        api.post(url, json={"worker": "w2", "claims": [held["id"]]}), 409, "claim_not_held"
    )
    assert held["id"] in message
    # one bad id: nothing acked, and the message names it
    bad = held["id"].replace(".1.", ".7.")
    message = error(
        api.post(url, json={"worker": "w1", "claims": [held["id"], bad]}), 404, "claim_not_found"
    )
    assert bad in message
    assert api.get("/api/consumers/mailer/shared").json()["claimed"] == 2
    assert api.post(url, json={"worker": "w1", "claims": [held["id"]]}).json() == {"acked": 1}
    error(api.post(url, json={"worker": "w1", "claims": [held["id"]]}), 409, "already_acked")
    time.sleep(0.6)  # other's ack_wait passes
    error(api.post(url, json={"worker": "w1", "claims": [other["id"]]}), 409, "claim_expired")
    (redelivered,) = claim(api, "w2")
    assert (redelivered["offset"], redelivered["attempt"]) == (1, 2)
    error(api.post(url, json={"worker": "w1", "claims": [other["id"]]}), 409, "claim_expired")
    assert api.post(url, json={"worker": "w2", "claims": [redelivered["id"]]}).json() == {
        "acked": 1
    }
    assert api.get("/api/consumers/mailer").json()["streams"][0]["offset"] == 2


@pytest.mark.parametrize("delay", [-1, 86_401, "soon", None, [1]])
def test_an_absurd_nack_delay_is_422_invalid_delay(quiet_api: httpx.Client, delay: object) -> None:
    api, n = quiet_api, next(_names)
    append(api, 1, stream=f"orders-{n}")
    declare(api, f"mailer-{n}", stream=f"orders-{n}")
    (held,) = claim(api, "w1", f"mailer-{n}")
    r = api.post(
        f"/api/consumers/mailer-{n}/nack",
        json={"worker": "w1", "claims": [held["id"]], "delay": delay},
    )
    error(r, 422, "invalid_delay")
    assert r.json()["error"]["path"] == "$.delay"
    assert api.get(f"/api/consumers/mailer-{n}/shared").json()["claimed"] == 1


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"worker": ""},
        {"worker": "w", "max": 0},
        {"worker": "w", "max": 1001},
        {"worker": "w", "wait": -1},
        {"worker": "w", "wait": 61},
        {"worker": "w", "extra": 1},
        {"worker": 5},
    ],
)
def test_bad_claim_requests_are_422_invalid_parameter(
    quiet_api: httpx.Client, body: dict[str, Any]
) -> None:
    declare(quiet_api)
    error(quiet_api.post("/api/consumers/mailer/claim", json=body), 422, "invalid_parameter")


def test_claims_on_unknown_and_plain_consumers(api: httpx.Client) -> None:
    missing = api.post("/api/consumers/nobody/claim", json={"worker": "w"})
    assert error(missing, 404, "consumer_not_found") == "consumer 'nobody' does not exist"
    append(api, 1)
    assert (
        api.put("/api/consumers/plain", json={"stream": "orders", "position": 0}).status_code == 200
    )
    for path in ("claim", "ack", "nack", "in-progress"):
        body = {"worker": "w", "claims": []} if path != "claim" else {"worker": "w"}
        error(api.post(f"/api/consumers/plain/{path}", json=body), 409, "consumer_not_shared")
    error(api.get("/api/consumers/plain/shared"), 409, "consumer_not_shared")


def test_declare_errors_and_delete(api: httpx.Client) -> None:
    declare(api)
    error(
        api.put("/api/consumers/mailer/shared", json={"stream": "other"}), 409, "consumer_conflict"
    )
    for ack_wait in (0, 1e-300, 0.09, 86_401):  # 0.1 to a day
        r = api.put("/api/consumers/short/shared", json={"stream": "orders", "ack_wait": ack_wait})
        error(r, 422, "validation_error")
        assert r.json()["error"]["path"] == "$.ack_wait"
    error(api.get("/api/consumers/short/shared"), 404, "consumer_not_found")
    error(
        api.put("/api/consumers/mailer/shared", json={"stream": "orders", "nope": 1}),
        422,
        "validation_error",
    )
    error(
        api.put(
            "/api/consumers/mailer/shared",
            content=b"{",
            headers={"content-type": "application/json"},
        ),
        400,
        "malformed_json",
    )
    assert api.delete("/api/consumers/mailer/shared").status_code == 204
    error(api.delete("/api/consumers/never/shared"), 404, "consumer_not_found")
    error(api.post("/api/consumers/mailer/claim", json={"worker": "w"}), 404, "consumer_not_found")
    assert declare(api)["ack_floor"] == 0  # the name is free again


def test_a_start_beyond_the_head_is_refused_as_seeking_there_is(api: httpx.Client) -> None:
    append(api, 2)
    for start in (3, 99999999999999999999):
        r = api.put("/api/consumers/mailer/shared", json={"stream": "orders", "start": start})
        shared = error(r, 422, "invalid_position")
        assert r.json()["error"]["path"] == "$.start"
        seek = api.put("/api/consumers/plain", json={"stream": "orders", "position": start})
        assert shared == error(seek, 422, "invalid_position")
        assert shared == f"offset {start} is beyond the head of 'orders' (2)"
    error(api.get("/api/consumers/mailer/shared"), 404, "consumer_not_found")  # none declared
    assert declare(api, start=2)["ack_floor"] == 2  # the head itself is where "end" starts


def test_a_stream_that_does_not_exist_yet_may_be_consumed(api: httpx.Client) -> None:
    """Subscribing before the first event is legitimate, as for a handler consumer and a
    read (an empty page); only seeking, which names an offset, wants the stream to exist."""
    assert declare(api, "early", stream="later", start="end")["head"] == 0
    assert api.get("/api/streams/later/events").json()["events"] == []
    seek = {"stream": "later", "position": 0}
    error(api.put("/api/consumers/plain", json=seek), 404, "stream_not_found")
    r = api.put("/api/consumers/early2/shared", json={"stream": "later", "start": 1})
    assert error(r, 422, "invalid_position") == "offset 1 is beyond the head of 'later' (0)"
    append(api, 2, stream="later")
    assert [c["offset"] for c in claim(api, "w1", name="early", max=5)] == [0, 1]


def test_a_shared_consumer_never_takes_over_a_plain_consumer_nor_is_seeked(
    api: httpx.Client,
) -> None:
    append(api, 3)
    seek = {"stream": "orders", "position": 2}
    assert api.put("/api/consumers/plain", json=seek).status_code == 200
    message = error(
        api.put("/api/consumers/plain/shared", json={"stream": "orders"}), 409, "consumer_conflict"
    )
    assert message == (
        "consumer 'plain' exists and is not shared; give the shared consumer a name of its own"
    )
    assert api.get("/api/consumers/plain").json()["streams"][0]["offset"] == 2  # untouched
    declare(api)
    for name in ("mailer", "mailer.feed"):  # the ack floor moves with acks only
        error(api.put(f"/api/consumers/{name}", json=seek), 409, "consumer_conflict")
    assert api.get("/api/consumers/mailer/shared").json()["ack_floor"] == 0


def test_a_shared_consumer_declared_in_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "eventlog.toml"
    config.write_text(
        '[[consumers]]\nname = "resizer"\nstream = "images"\nshared = true\n'
        'ack_wait = 5.0\nmax_deliver = 2\nordered_by_key = true\ntypes = ["order.*"]\n'
        '[[consumers]]\nname = "audit"\nstream = "images"\nkind = "log"\n'
    )
    with (
        ServerThread.start(db=tmp_path / "events.db", config=config) as server,
        httpx.Client(base_url=server.url) as api,
    ):
        info = api.get("/api/consumers/resizer/shared").json()
        assert (info["ack_wait"], info["max_deliver"], info["ordered_by_key"]) == (5.0, 2, True)
        assert info["types"] == ["order.*"]
        append(api, 2, stream="images")
        assert [c["offset"] for c in claim(api, "w1", name="resizer", max=5)] == [0, 1]
        # Changed in the config file only (a restart would put the file's values back).
        change = {"stream": "images", "ack_wait": 60.0}
        error(api.put("/api/consumers/resizer/shared", json=change), 409, "consumer_in_config")
        error(api.delete("/api/consumers/resizer/shared"), 409, "consumer_in_config")
        # A handler consumer of the server keeps its name.
        message = error(
            api.put("/api/consumers/audit/shared", json=change), 409, "consumer_conflict"
        )
        assert "runs a handler in this server" in message


def test_a_shared_consumer_with_a_kind_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "eventlog.toml"
    config.write_text('[[consumers]]\nname = "x"\nstream = "s"\nshared = true\nkind = "log"\n')
    with pytest.raises(ServerFailed, match="shared consumer has no kind"):
        ServerThread.start(db=tmp_path / "events.db", config=config)


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")
def test_the_shell_worker_of_the_docs_processes_and_acks_every_event(
    api: httpx.Client, server: ServerThread
) -> None:
    append(api, 3)
    declare(api, name="printer")
    worker = subprocess.Popen(
        [str(WORKER_SH), server.url, "printer", "sh-1"],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its curl and jq children go with it
    )
    try:
        deadline = time.monotonic() + 20
        while api.get("/api/consumers/printer/shared").json()["ack_floor"] < 3:
            assert time.monotonic() < deadline, "the shell worker did not ack everything"
            time.sleep(0.1)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
    out, _ = worker.communicate()
    assert out.splitlines() == [f'[{i},null,{{"i":{i}}}]' for i in range(3)]


def test_without_webhooks_the_server_prunes_acked_rows_and_stops_cleanly(tmp_path: Path) -> None:
    """``[webhooks] enabled = false``: the shared consumers have the ledger to themselves,
    prune it after ``keep_history``, and stop pruning when the server stops."""
    config = tmp_path / "eventlog.toml"
    config.write_text("[webhooks]\nenabled = false\nkeep_history = 0.5\n")
    db = tmp_path / "events.db"

    def left() -> list[tuple[int, str]]:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return conn.execute(
                'SELECT "offset", status FROM webhook_deliveries '
                "WHERE endpoint_id = 'shared:mailer' ORDER BY 1"
            ).fetchall()

    with ServerProcess.start(db, extra_args=["--config", str(config)]) as server:
        with httpx.Client(base_url=server.url, timeout=30) as api:
            append(api, 3)
            declare(api)
            ids = [c["id"] for c in claim(api, "w1", max=3)]
            acked = api.post("/api/consumers/mailer/ack", json={"worker": "w1", "claims": ids[1:]})
            assert acked.is_success, acked.text
            wait_until_sync(lambda: left() == [(0, "in_flight")], what="acked rows pruned")
        assert server.stop() == 0
        assert "Traceback" not in server.output(), server.output()


def test_a_bad_start_names_the_accepted_values(quiet_api: httpx.Client) -> None:
    r = quiet_api.put("/api/consumers/starter/shared", json={"stream": "orders", "start": "now"})
    assert error(r, 422, "validation_error") == (
        'Invalid value \'now\': expected "beginning", "end" or an integer - at `$.start`'
    )
    assert r.json()["error"]["path"] == "$.start"
