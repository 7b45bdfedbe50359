"""Scheduled appends over HTTP on a real ``eventlog serve``: 202, listing, cancel, bad input."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import msgspec
import pytest

from tests.serverproc import ServerProcess
from tests.support import scaled


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """One server for the module, with a one-day schedule horizon."""
    db = tmp_path_factory.mktemp("schedules") / "events.db"
    env = {"EVENTLOG_SCHEDULE_HORIZON": "86400"}
    with (
        ServerProcess.start(db=db, env=env) as server,
        httpx.Client(base_url=server.url, timeout=scaled(10)) as c,
    ):
        yield c


def _events(client: httpx.Client, stream: str, count: int) -> list[dict[str, object]]:
    deadline = time.monotonic() + scaled(10)
    while True:
        answer = client.get(f"/api/streams/{stream}/events", params={"wait": 1})
        events: list[dict[str, object]] = answer.json()["events"]
        if len(events) >= count or time.monotonic() > deadline:
            return events


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def test_append_with_deliver_at_is_accepted_and_appended_at_that_time(
    client: httpx.Client,
) -> None:
    due = datetime.now(UTC) + timedelta(seconds=0.5)
    answer = client.post(
        "/api/streams/h1/events",
        params={"deliver_at": _iso(due)},
        json={"type": "t", "data": {"x": 1}, "id": "a"},
    )
    assert answer.status_code == 202
    [scheduled] = answer.json()["scheduled"]
    assert scheduled["id"] == "a"
    assert scheduled["new"] is True
    assert client.get("/api/streams/h1/events").json()["events"] == []
    [event] = _events(client, "h1", 1)
    assert event["id"] == "a"
    assert msgspec.convert(event["time"], datetime) >= due


def test_delay_and_idempotency_key(client: httpx.Client) -> None:
    first = client.post(
        "/api/streams/h2/events",
        params={"delay": "0.2"},
        json={"type": "t"},
        headers={"Idempotency-Key": "k-1"},
    )
    again = client.post(
        "/api/streams/h2/events",
        params={"delay": "0.2"},
        json={"type": "t"},
        headers={"Idempotency-Key": "k-1"},
    )
    assert [first.status_code, again.status_code] == [202, 202]
    assert again.json()["scheduled"][0]["new"] is False
    assert [e["id"] for e in _events(client, "h2", 1)] == ["k-1"]
    time.sleep(0.3)
    assert len(client.get("/api/streams/h2/events").json()["events"]) == 1


def test_cloudevents_carry_their_own_due_times(client: httpx.Client) -> None:
    soon = _iso(datetime.now(UTC) + timedelta(seconds=0.3))
    batch = [
        {"specversion": "1.0", "id": "late", "source": "s", "type": "t", "delay": "0.6"},
        {"specversion": "1.0", "id": "early", "source": "s", "type": "t", "deliverat": soon},
    ]
    answer = client.post(
        "/api/streams/h3/events",
        content=msgspec.json.encode(batch),
        headers={"Content-Type": "application/cloudevents-batch+json"},
    )
    assert answer.status_code == 202
    assert [s["id"] for s in answer.json()["scheduled"]] == ["late", "early"]
    assert [e["id"] for e in _events(client, "h3", 2)] == ["early", "late"]


def test_list_page_and_cancel(client: httpx.Client) -> None:
    for i in range(5):
        client.post(
            "/api/streams/h4/events",
            params={"delay": str(3600 + i)},
            json={"type": f"t{i % 2}", "id": f"c{i}"},
        ).raise_for_status()
    first = client.get("/api/schedules", params={"stream": "h4", "limit": 2}).json()
    assert [s["id"] for s in first["schedules"]] == ["c0", "c1"]
    rest = client.get(
        "/api/schedules", params={"stream": "h4", "after": first["next"], "limit": 10}
    ).json()
    assert [s["id"] for s in rest["schedules"]] == ["c2", "c3", "c4"]
    assert rest["next"] is None
    odd = client.get("/api/schedules", params={"stream": "h4", "type": "t1"}).json()
    assert [s["id"] for s in odd["schedules"]] == ["c1", "c3"]
    assert client.get("/api/schedules/h4/c2").json()["type"] == "t0"
    assert client.delete("/api/schedules/h4/c2").status_code == 204
    gone = client.delete("/api/schedules/h4/c2")
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "schedule_not_found"
    assert client.get("/api/schedules/h4/c2").status_code == 404
    left = client.get("/api/schedules", params={"stream": "h4"}).json()["schedules"]
    assert [s["id"] for s in left] == ["c0", "c1", "c3", "c4"]


def test_past_deliver_at_appends_now(client: httpx.Client) -> None:
    answer = client.post(
        "/api/streams/h5/events",
        params={"deliver_at": "2001-01-01T00:00:00Z"},
        json={"type": "t", "id": "past"},
    )
    assert answer.status_code == 202
    assert [e["id"] for e in _events(client, "h5", 1)] == ["past"]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"deliver_at": "tomorrow"}, "invalid_parameter"),
        ({"deliver_at": "2026-12-06T14:00:00"}, "invalid_parameter"),  # no offset
        ({"deliver_at": "2026-13-06T14:00:00Z"}, "invalid_parameter"),
        ({"delay": "-1"}, "invalid_parameter"),
        ({"delay": "nan"}, "invalid_parameter"),
        ({"delay": "1_0"}, "invalid_parameter"),
        ({"delay": " 10"}, "invalid_parameter"),
        ({"delay": "infinity"}, "invalid_parameter"),
        ({"delay": "1", "deliver_at": "2026-12-06T14:00:00Z"}, "invalid_parameter"),
        ({"delay": "90000"}, "invalid_schedule"),  # beyond the one-day horizon
        ({"deliver_at": "2999-01-01T00:00:00Z"}, "invalid_schedule"),
        ({"delay": "1", "expected_offset": "0"}, "invalid_parameter"),
    ],
)
def test_bad_due_times_are_400s(client: httpx.Client, params: dict[str, str], code: str) -> None:
    answer = client.post("/api/streams/h6/events", params=params, json={"type": "t"})
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == code
    assert client.get("/api/schedules", params={"stream": "h6"}).json()["schedules"] == []


def test_bad_due_time_messages_say_what_is_accepted(client: httpx.Client) -> None:
    def message(params: dict[str, str]) -> str:
        answer = client.post("/api/streams/h6/events", params=params, json={"type": "t"})
        assert answer.status_code == 400, answer.text
        return str(answer.json()["error"]["message"])

    assert message({"delay": "99999999999"}) == (
        "delay must be a number of seconds from 0 to 10000000000, got '99999999999'"
    )
    assert message({"delay": "90000"}).endswith(
        "is further away than the schedule horizon (schedule_horizon: 1 day)"
    )


def test_bad_listing_parameters_are_400s(client: httpx.Client) -> None:
    bad = ({"after": "nope"}, {"limit": "0"}, {"until": "soon"}, {"stream": "no/pe"}, {"type": ""})
    for params in bad:
        answer = client.get("/api/schedules", params=params)
        assert answer.status_code == 400, params
        assert answer.json()["error"]["code"]
