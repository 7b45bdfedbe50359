"""Must-show: 10,000 events scheduled at random times, the server SIGKILLed twice meanwhile.

Every event is appended exactly once, never before its due time. The test prints
the median and p99 lateness (event time minus due time) over the run; run it
with ``-s`` to see them.

Issue 17 asked for a 30 s spread; each batch's due times fall over the
:data:`SPREAD` = 10 s after it is sent instead (about 1,000 events a second on an
unloaded machine, where scheduling takes a second or two; on a loaded one the
first batches fall due while the last are scheduled, never clamped to "now").
That proves the same in a third of the time: each SIGKILL falls while events fell
due before it, while the server is down and after it is back (the test checks
this).
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
SPREAD = 10.0  # seconds over which the due times of a batch fall
LEAD = 0.5  # seconds from sending a batch to the start of its spread
BATCH = 500


def _schedule(client: httpx.Client, first: int, rng: random.Random) -> dict[str, datetime]:
    """Schedule events ``first`` .. ``first + BATCH - 1`` at random times over the
    :data:`SPREAD` after now (a CloudEvents batch, each event its own deliverat);
    their due times as the server took them."""
    start = datetime.now(UTC) + timedelta(seconds=LEAD)
    batch = []
    for i in range(first, first + BATCH):
        when = start + timedelta(seconds=rng.uniform(0, SPREAD))
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
    return {s["id"]: msgspec.convert(s["deliver_at"], datetime) for s in answer.json()["scheduled"]}


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
            due: dict[str, datetime] = {}
            for first in range(0, EVENTS, BATCH):
                due |= _schedule(client, first, rng)
        assert len(due) == EVENTS
        down: list[tuple[datetime, datetime]] = []
        # A third and two thirds into the spread of the last batch (the earlier ones
        # began to fall due while the later were being scheduled).
        begin = time.monotonic()
        for kill_at in (SPREAD / 3, 2 * SPREAD / 3):
            time.sleep(max(0.0, begin + kill_at - time.monotonic()))
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
        f"\nscheduled appends: {EVENTS} events, each batch over {SPREAD:g} s, 2 SIGKILLs: "
        f"lateness median {statistics.median(lateness) * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms, max {lateness[-1] * 1000:.1f} ms"
    )
