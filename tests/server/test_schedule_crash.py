"""Must-show: 10,000 events scheduled at random times, the server SIGKILLed twice meanwhile.

Every event is appended exactly once, never before its due time. The test prints
the median and p99 lateness (event time minus due time) over the run; run it
with ``-s`` to see them.

Issue 17 asked for a 30 s spread; the due times fall over the :data:`SPREAD` =
10 s from the first batch instead (1,000 events a second), which proves the same
in a third of the time. Due times are never in the past when a batch is sent
(they would be clamped to "now"): on a loaded machine, where scheduling takes
longer, a batch sent late spreads over the :data:`MIN_SPREAD` after it. Each
SIGKILL falls while events fell due before it, while the server is down and after
it is back (the test checks this).
"""

from __future__ import annotations

import os
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import msgspec
import pytest

from tests.serverproc import ServerProcess
from tests.support import scaled

EVENTS = 10_000
# Seconds from the first batch over which the due times fall; issue 17's own
# scale is EVENTLOG_SCHEDULE_SPREAD=30.
SPREAD = float(os.environ.get("EVENTLOG_SCHEDULE_SPREAD", "10"))
MIN_SPREAD = 4.0  # seconds over which a batch sent late spreads at least
LEAD = 0.5  # seconds from sending a batch to its first due time
BATCH = 500


def _schedule(
    client: httpx.Client, first: int, rng: random.Random, began: datetime
) -> tuple[datetime, dict[str, datetime]]:
    """Schedule events ``first`` .. ``first + BATCH - 1`` (a CloudEvents batch, each
    event its own deliverat) at random times until the end of the spread that
    ``began`` with the first batch, or :data:`MIN_SPREAD` from now if later; that
    end, and their due times as the server took them."""
    start = datetime.now(UTC) + timedelta(seconds=LEAD)
    end = max(began + timedelta(seconds=SPREAD), start + timedelta(seconds=MIN_SPREAD))
    batch = []
    for i in range(first, first + BATCH):
        when = start + (end - start) * rng.random()
        stamp = when.isoformat().replace("+00:00", "Z")
        batch.append(
            {"specversion": "1.0", "id": f"e{i}", "source": "t", "type": "t", "deliverat": stamp}
        )
    answer = client.post(
        "/api/streams/due/events",
        content=msgspec.json.encode(batch),
        headers={"Content-Type": "application/cloudevents-batch+json"},
    )
    assert answer.status_code == 202, answer.text
    scheduled = answer.json()["scheduled"]
    return end, {s["id"]: msgspec.convert(s["deliver_at"], datetime) for s in scheduled}


def _read_all(client: httpx.Client) -> list[dict[str, object]]:
    events: list[dict[str, object]] = []
    while True:
        page = client.get(
            "/api/streams/due/events", params={"from": len(events), "limit": 5000}
        ).json()
        if not page["events"]:
            return events
        events += page["events"]


@pytest.mark.slow
def test_scheduled_events_survive_two_sigkills_appended_once_never_early(
    tmp_path: Path,
) -> None:
    with ServerProcess.start(db=tmp_path / "events.db") as server:
        with httpx.Client(base_url=server.url, timeout=scaled(30)) as client:
            rng = random.Random(17)
            began = datetime.now(UTC)
            due: dict[str, datetime] = {}
            for first in range(0, EVENTS, BATCH):
                end, scheduled = _schedule(client, first, rng, began)
                due |= scheduled
        assert len(due) == EVENTS
        down: list[tuple[datetime, datetime]] = []
        # A third and two thirds into what is left of the spread.
        now = datetime.now(UTC)
        for kill_at in ((end - now) / 3, (end - now) * 2 / 3):
            time.sleep(max(0.0, (now + kill_at - datetime.now(UTC)).total_seconds()))
            killed = datetime.now(UTC)
            assert server.kill() == -9
            server.restart()
            down.append((killed, datetime.now(UTC)))
        deadline = time.monotonic() + SPREAD + scaled(60)
        with httpx.Client(base_url=server.url, timeout=scaled(30)) as client:
            # Long-poll for the last offset, then until nothing waits; then read once.
            while time.monotonic() < deadline:
                last = client.get(
                    "/api/streams/due/events", params={"from": EVENTS - 1, "limit": 1, "wait": 5}
                ).json()
                if last["events"]:
                    break
            while time.monotonic() < deadline:
                waiting = client.get("/api/schedules", params={"stream": "due"}).json()
                if not waiting["schedules"]:
                    break
                time.sleep(0.1)
            events = _read_all(client)
    for killed, back in down:  # else a kill fell outside the spread and proved less
        assert any(when < killed for when in due.values()), "nothing fell due before a kill"
        assert any(killed < when < back for when in due.values()), "nothing fell due while down"
        assert any(when > back for when in due.values()), "nothing was left due after a restart"
    ids = [str(e["id"]) for e in events]
    assert len(ids) == len(set(ids)), "an event was appended twice"
    assert set(ids) == set(due), "an event was lost"
    assert [e["offset"] for e in events] == list(range(EVENTS))
    lateness = []
    for event in events:
        appended = msgspec.convert(event["time"], datetime)
        late = (appended - due[str(event["id"])]).total_seconds()
        assert late >= 0, f"{event['id']} appended {-late:.6f} s before its time"
        lateness.append(late)
    lateness.sort()
    p99 = lateness[int(len(lateness) * 0.99)]
    print(
        f"\nscheduled appends: {EVENTS} events over {(end - began).total_seconds():.1f} s, "
        "2 SIGKILLs: "
        f"lateness median {statistics.median(lateness) * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms, max {lateness[-1] * 1000:.1f} ms"
    )
