"""A ``[[consumers]]`` entry of a real ``eventlog serve`` parks a poison event and replays it."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest

from tests.consumers.conftest import durable_target
from tests.server.cli.conftest import eventlog
from tests.serverproc import ServerProcess
from tests.support import scaled

POISON = 4_242

CONFIG = """
[[consumers]]
name = "digest"
kind = "tests.consumers.poison_kind:make"
stream = "s"
batch_size = 100
max_attempts = 3
options = {{ fixed = "{fixed}", out = "handled" }}
"""


def read_all(http: httpx.Client, stream: str) -> list[int]:
    got: list[int] = []
    while True:
        page = http.get(
            f"/api/streams/{stream}/events", params={"from": len(got), "limit": 1000}
        ).json()
        if not page["events"]:
            return got
        got.extend(e["data"] for e in page["events"])


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_declared_consumer_parks_a_poison_event_in_10000_and_replays_it(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db = asyncio.run(durable_target(backend, tmp_path, request))
    fixed = tmp_path / "fixed"
    config = tmp_path / "eventlog.toml"
    config.write_text(CONFIG.format(fixed=fixed))
    with (
        ServerProcess.start(db=db, extra_args=["--config", str(config)]) as server,
        httpx.Client(base_url=server.url, timeout=scaled(30)) as http,
    ):
        for start in range(0, 10_000, 1_000):
            batch = [
                {"type": "n", "data": {"poison": i == POISON}} for i in range(start, start + 1000)
            ]
            r = http.post("/api/streams/s/events", json=batch)
            assert r.status_code == 201, r.text
        deadline = time.monotonic() + scaled(60)
        while True:
            detail = http.get("/api/consumers/digest").json()
            offsets = {s["stream"]: s["offset"] for s in detail.get("streams", [])}
            if offsets.get("s") == 10_000:
                break
            assert time.monotonic() < deadline, detail
            time.sleep(0.05)
        assert read_all(http, "handled") == [i for i in range(10_000) if i != POISON]
        assert detail["parked"] == 1
        assert detail["parked_stream"] == "digest.parked"
        runtime = detail["runtime"]
        assert runtime["state"] == "running"
        assert runtime["last_error"] == "ValueError: cannot digest this"
        assert (runtime["max_attempts"], runtime["on_failure"]) == (3, "park")
        metrics = http.get("/metrics").text
        assert 'eventlog_consumer_parked_events{consumer="digest"} 1.0' in metrics
        assert 'eventlog_consumer_state{consumer="digest",state="running"} 1.0' in metrics
        assert 'eventlog_consumer_failures{consumer="digest"}' in metrics

        (parked,) = http.get("/api/streams/digest.parked/events").json()["events"]
        assert parked["headers"]["parked-offset"] == str(POISON)
        assert parked["headers"]["parked-attempts"] == "3"
        assert parked["headers"]["parked-error-type"] == "ValueError"

        shown = eventlog("consumers", "show", "digest", "--url", server.url)
        assert shown.returncode == 0, shown.stderr
        assert "state     running (handled 9999, failures" in shown.stdout
        assert "error     ValueError: cannot digest this" in shown.stdout
        assert "parked    1 in digest.parked" in shown.stdout

        still = eventlog("consumers", "replay-parked", "digest", "--url", server.url)
        assert still.returncode == 1
        assert still.stdout.splitlines() == [
            "digest: replayed 0 parked event(s) from digest.parked, 1 remain",
            "stopped at one the handler still refuses: ValueError: cannot digest this",
        ]

        fixed.touch()
        done = http.post("/api/consumers/digest/replay-parked").json()
        assert (done["replayed"], done["remaining"], done["error"]) == (1, 0, None)
        again = eventlog("consumers", "replay-parked", "digest", "--url", server.url, "--json")
        assert again.returncode == 0
        assert json.loads(again.stdout)["replayed"] == 0
        assert read_all(http, "handled")[-1] == POISON
        assert http.get("/api/consumers/digest").json()["parked"] == 0
        missing = http.post("/api/consumers/nobody/replay-parked")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "consumer_not_running"
        assert server.stop() == 0
    if backend == "sqlite":  # the file alone: positions and parked count, no handler to replay
        offline = eventlog("consumers", "show", "digest", "--db", db)
        assert "state     not running in this server" in offline.stdout
        assert "parked    0 in digest.parked" in offline.stdout
        refused = eventlog("consumers", "replay-parked", "digest", "--db", db)
        assert refused.returncode == 2
        assert "use --url (not --db)" in refused.stderr
