"""Appending and reading over HTTP against a real ``eventlog serve`` process."""

from __future__ import annotations

import threading
import time
import uuid

import httpx

from tests.serverthread import ServerThread
from tests.support import scaled, wait_until_sync

JSON = {"content-type": "application/json"}


def _stream() -> str:
    return f"s-{uuid.uuid4().hex[:12]}"


def _events(client: httpx.Client, stream: str, start: int = 0) -> list[dict[str, object]]:
    r = client.get(f"/api/streams/{stream}/events", params={"from": start, "limit": 1000})
    assert r.status_code == 200, r.text
    events: list[dict[str, object]] = r.json()["events"]
    return events


def test_single_event_is_appended_and_read_back_with_raw_data(client: httpx.Client) -> None:
    s = _stream()
    body = b'{"type": "order.created", "key": "t7:o1", "data": {"id": 7,  "total": 9.50}}'
    r = client.post(f"/api/streams/{s}/events", content=body, headers=JSON)
    assert r.status_code == 201
    assert r.json() == {"stream": s, "offsets": [0], "written": 1, "next_offset": 1}
    raw = client.get(f"/api/streams/{s}/events").content
    # data goes out exactly as the producer sent it, spacing and 9.50 included
    assert b'"data":{"id": 7,  "total": 9.50}' in raw
    (event,) = _events(client, s)
    assert event["type"] == "order.created"
    assert event["key"] == "t7:o1"
    assert event["offset"] == 0
    assert set(event) == {"stream", "offset", "id", "type", "key", "time", "headers", "data"}


def test_json_array_is_one_atomic_batch_with_consecutive_offsets(client: httpx.Client) -> None:
    s = _stream()
    batch = [{"type": "a", "data": i} for i in range(5)]
    r = client.post(f"/api/streams/{s}/events", json=batch)
    assert r.status_code == 201
    assert r.json()["offsets"] == [0, 1, 2, 3, 4]
    # one invalid event: nothing of the batch is written
    r = client.post(f"/api/streams/{s}/events", json=[{"type": "ok"}, {"type": ""}])
    assert r.status_code == 422
    assert r.json()["error"]["path"] == "$[1].type"
    assert [e["data"] for e in _events(client, s)] == [0, 1, 2, 3, 4]


def test_ndjson_body_appends_each_line(client: httpx.Client) -> None:
    s = _stream()
    body = b'{"type": "a", "data": 1}\n\n{"type": "b", "data": [2]}\n'
    r = client.post(
        f"/api/streams/{s}/events", content=body, headers={"content-type": "application/x-ndjson"}
    )
    assert r.status_code == 201, r.text
    assert r.json()["offsets"] == [0, 1]
    assert [(e["type"], e["data"]) for e in _events(client, s)] == [("a", 1), ("b", [2])]


def test_cloudevents_structured_and_batch_map_to_events(client: httpx.Client) -> None:
    s = _stream()
    ce = {
        "specversion": "1.0",
        "id": "ce-1",
        "source": "/shop",
        "type": "order.paid",
        "subject": "order-7",
        "time": "2024-01-01T00:00:00Z",
        "data": {"ok": True},
        "tenant": "t7",
        "attempt": 2,
    }
    r = client.post(
        f"/api/streams/{s}/events",
        json=ce,
        headers={"content-type": "application/cloudevents+json; charset=utf-8"},
    )
    assert r.status_code == 201, r.text
    batch = [{**ce, "id": "ce-2"}, {**ce, "id": "ce-3", "data_base64": "aGk=", "data": None}]
    r = client.post(
        f"/api/streams/{s}/events",
        json=batch,
        headers={"content-type": "application/cloudevents-batch+json"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["offsets"] == [1, 2]
    events = _events(client, s)
    first = events[0]
    assert (first["id"], first["type"], first["key"], first["data"]) == (
        "ce-1",
        "order.paid",
        "order-7",
        {"ok": True},
    )
    headers = first["headers"]
    assert isinstance(headers, dict)
    assert headers["ce-source"] == "/shop"
    assert headers["ce-specversion"] == "1.0"
    assert headers["ce-tenant"] == "t7"
    assert headers["ce-attempt"] == "2"
    assert events[2]["data"] == "aGk="
    # the CloudEvent id deduplicates a redelivery
    r = client.post(
        f"/api/streams/{s}/events",
        json=ce,
        headers={"content-type": "application/cloudevents+json"},
    )
    assert r.json()["offsets"] == [0]
    assert r.json()["written"] == 0


def test_idempotent_retry_returns_same_offsets_and_writes_nothing(client: httpx.Client) -> None:
    s = _stream()
    url = f"/api/streams/{s}/events"
    first = client.post(url, json={"type": "pay"}, headers={"Idempotency-Key": "req-1"})
    client.post(url, json={"type": "other"})
    retry = client.post(url, json={"type": "pay"}, headers={"Idempotency-Key": "req-1"})
    assert first.status_code == retry.status_code == 201
    assert retry.json()["offsets"] == first.json()["offsets"] == [0]
    assert retry.json()["written"] == 0
    events = _events(client, s)
    assert len(events) == 2
    assert events[0]["id"] == "req-1"
    # per-event ids in a batch, and the key applied to a batch as <key>.<index>
    batch = [{"type": "x", "id": "e-1"}, {"type": "y"}]
    a = client.post(url, json=batch, headers={"Idempotency-Key": "b-1"})
    b = client.post(url, json=batch, headers={"Idempotency-Key": "b-1"})
    assert a.json()["offsets"] == b.json()["offsets"] == [2, 3]
    assert b.json()["written"] == 0
    assert [e["id"] for e in _events(client, s, 2)] == ["e-1", "b-1.1"]


def test_idempotency_key_that_contradicts_the_event_id_is_422(client: httpx.Client) -> None:
    s = _stream()
    r = client.post(
        f"/api/streams/{s}/events", json={"type": "a", "id": "x"}, headers={"Idempotency-Key": "y"}
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "idempotency_conflict"
    assert client.get(f"/api/streams/{s}").status_code == 404


def test_expected_offset_conflict_is_409_and_writes_nothing(client: httpx.Client) -> None:
    s = _stream()
    url = f"/api/streams/{s}/events"
    assert client.post(url, params={"expected_offset": 0}, json={"type": "a"}).status_code == 201
    assert client.post(url, params={"expected_offset": 1}, json={"type": "b"}).status_code == 201
    r = client.post(url, params={"expected_offset": 1}, json={"type": "c"})
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "expected_offset_mismatch"
    assert [e["type"] for e in _events(client, s)] == ["a", "b"]


def test_long_poll_returns_as_soon_as_an_event_is_appended(
    client: httpx.Client, shared_server: ServerThread
) -> None:
    s = _stream()
    url = f"/api/streams/{s}/events"

    def append_later() -> None:
        wait_until_sync(lambda: shared_server.log.heads.parked(s) > 0, what="the poll parked")
        httpx.post(f"{shared_server.url}{url}", json={"type": "late"}, timeout=scaled(10))

    thread = threading.Thread(target=append_later)
    started = time.monotonic()
    thread.start()
    r = client.get(url, params={"from": 0, "wait": 20}, timeout=scaled(30))
    elapsed = time.monotonic() - started
    thread.join()
    assert r.status_code == 200
    assert [e["type"] for e in r.json()["events"]] == ["late"]
    assert r.json()["next_offset"] == 1
    assert elapsed < scaled(10)


def test_long_poll_ends_empty_after_wait(client: httpx.Client) -> None:
    s = _stream()
    started = time.monotonic()
    r = client.get(f"/api/streams/{s}/events", params={"from": 0, "wait": "0.3"})
    assert time.monotonic() - started >= 0.25
    assert r.json() == {"stream": s, "events": [], "next_offset": 0}


def test_read_pages_with_from_and_limit(client: httpx.Client) -> None:
    s = _stream()
    client.post(f"/api/streams/{s}/events", json=[{"type": "t", "data": i} for i in range(10)])
    r = client.get(f"/api/streams/{s}/events", params={"from": 3, "limit": 4}).json()
    assert [e["offset"] for e in r["events"]] == [3, 4, 5, 6]
    assert r["next_offset"] == 7


def test_correlation_id_is_echoed_and_stored_in_event_headers(client: httpx.Client) -> None:
    s = _stream()
    r = client.post(
        f"/api/streams/{s}/events", json={"type": "a"}, headers={"X-Correlation-Id": "req-42"}
    )
    assert r.headers["x-correlation-id"] == "req-42"
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    r = client.post(f"/api/streams/{s}/events", json={"type": "b"}, headers={"traceparent": trace})
    assert r.headers["x-correlation-id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    r = client.post(f"/api/streams/{s}/events", json={"type": "c"})
    generated = r.headers["x-correlation-id"]
    assert len(generated) == 32
    headers = [e["headers"] for e in _events(client, s)]
    assert headers[0] == {"correlation-id": "req-42"}
    assert headers[1] == {
        "correlation-id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "traceparent": trace,
    }
    assert headers[2] == {"correlation-id": generated}


def test_stream_list_info_and_delete(client: httpx.Client) -> None:
    s = _stream()
    client.post(f"/api/streams/{s}/events", json=[{"type": "t"}, {"type": "t"}])
    info = client.get(f"/api/streams/{s}").json()
    assert (info["name"], info["next_offset"], info["first_offset"], info["count"]) == (s, 2, 0, 2)
    names = [i["name"] for i in client.get("/api/streams").json()["streams"]]
    assert s in names
    assert client.delete(f"/api/streams/{s}").status_code == 204
    r = client.get(f"/api/streams/{s}")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "stream_not_found"
    assert client.delete(f"/api/streams/{s}").status_code == 404


def test_consumers_list_get_and_seek(client: httpx.Client) -> None:
    s = _stream()
    client.post(f"/api/streams/{s}/events", json=[{"type": "t"}] * 5)
    name = f"c-{s}"
    r = client.put(f"/api/consumers/{name}", json={"stream": s, "position": 2})
    assert r.status_code == 200, r.text
    assert r.json()["streams"][0] == {
        "stream": s,
        "offset": 2,
        "lag": 3,
        "updated": r.json()["streams"][0]["updated"],
    }
    r = client.put(f"/api/consumers/{name}", json={"stream": s, "position": "end"})
    assert r.json()["streams"][0]["offset"] == 5
    r = client.put(f"/api/consumers/{name}", json={"stream": s, "position": "beginning"})
    assert r.json()["streams"][0]["lag"] == 5
    r = client.put(
        f"/api/consumers/{name}", json={"stream": s, "position": {"time": "2000-01-01T00:00:00Z"}}
    )
    assert r.json()["streams"][0]["offset"] == 0
    rows = client.get("/api/consumers").json()["consumers"]
    assert {"name": name, "stream": s, "offset": 0, "lag": 5} in [
        {k: v for k, v in row.items() if k != "updated"} for row in rows
    ]
    assert client.get(f"/api/consumers/{name}").json()["name"] == name
    missing = client.get("/api/consumers/nobody")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "consumer_not_found"
    future = client.put(f"/api/consumers/{name}", json={"stream": s, "position": 6})
    assert future.status_code == 422
    assert future.json()["error"]["code"] == "invalid_position"
    assert client.get(f"/api/consumers/{name}").json()["streams"][0]["offset"] == 0
    bad = client.put(f"/api/consumers/{name}", json={"stream": s, "position": -1})
    assert bad.status_code == 422
    assert bad.json()["error"]["path"].startswith("$.position")


def test_consumer_seek_errors_say_what_is_wrong(client: httpx.Client) -> None:
    s = _stream()
    client.post(f"/api/streams/{s}/events", json={"type": "t"})
    typo = client.put("/api/consumers/c-typo", json={"stream": f"{s}x", "position": 0})
    assert typo.status_code == 404
    assert typo.json()["error"]["code"] == "stream_not_found"
    assert client.get("/api/consumers/c-typo").status_code == 404  # nothing was committed
    word = client.put("/api/consumers/c-typo", json={"stream": s, "position": "start"})
    assert word.status_code == 422
    assert word.json()["error"]["path"] == "$.position"
    assert '"beginning", "end", an offset' in word.json()["error"]["message"]
    missing = client.put("/api/consumers/c-typo", json={"stream": s})
    assert missing.status_code == 422
    assert missing.json()["error"]["path"] == "$"
    assert missing.json()["error"]["message"].endswith("`position` - at `$`")


def test_system_endpoints(client: httpx.Client) -> None:
    s = _stream()
    client.post(f"/api/streams/{s}/events", json={"type": "t"})
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    text = client.get("/metrics").text
    assert f'eventlog_appended_events_total{{stream="{s}"}} 1.0' in text
    assert "eventlog_append_latency_seconds_bucket" in text
    assert "eventlog_append_batch_size_bucket" in text
    assert 'route="/api/streams/{stream}/events",status="201"' in text
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    page = client.get("/docs")
    assert page.headers["content-type"].startswith("text/html")
