"""Must-show: 10,000 events scheduled over 30 s, the server SIGKILLed twice meanwhile.

Every event is appended exactly once, never before its due time. The test prints
the median and p99 lateness (event time minus due time) over the run; run it
with ``-s`` to see them.
"""

from __future__ import annotations

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
SPREAD = 30.0  # seconds over which the due times fall
BATCH = 500


def _schedule_all(client: httpx.Client, start: datetime) -> dict[str, datetime]:
    """Schedule every event (CloudEvents batches, each event its own deliverat)."""
    rng = random.Random(17)
    due: dict[str, datetime] = {}
    for first in range(0, EVENTS, BATCH):
        batch = []
        for i in range(first, first + BATCH):
            when = start + timedelta(seconds=rng.uniform(0, SPREAD))
            stamp = when.isoformat().replace("+00:00", "Z")
            batch.append(
                {
                    "specversion": "1.0",
                    "id": f"e{i}",
                    "source": "t",
                    "type": "t",
                    "deliverat": stamp,
                }
            )
        answer = client.post(
            "/api/streams/due/events",
            content=msgspec.json.encode(batch),
            headers={"Content-Type": "application/cloudevents-batch+json"},
        )
        assert answer.status_code == 202, answer.text
        for s in answer.json()["scheduled"]:
            due[s["id"]] = msgspec.convert(s["deliver_at"], datetime)
    return due


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
        start = datetime.now(UTC) + timedelta(seconds=2)
        with httpx.Client(base_url=server.url, timeout=scaled(30)) as client:
            due = _schedule_all(client, start)
        assert len(due) == EVENTS
        for kill_at in (SPREAD / 3, 2 * SPREAD / 3):
            time.sleep(max(0.0, (start - datetime.now(UTC)).total_seconds() + kill_at))
            assert server.kill() == -9
            server.restart()
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
        f"\nscheduled appends: {EVENTS} events over {SPREAD:g} s, 2 SIGKILLs: "
        f"lateness median {statistics.median(lateness) * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms, max {lateness[-1] * 1000:.1f} ms"
    )
