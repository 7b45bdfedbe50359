"""A batch of far more events than the server takes is refused before its events
are built: a 16 MiB body of ~1.3M tiny events is a clear 422 and costs the server
tens of MiB, not the ~280 MiB that building them took."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import psutil
import pytest

from tests.serverproc import ServerProcess
from tests.support import scaled

ITEMS = 1_290_000  # 13 bytes each: just under the default 16 MiB body limit
TINY = b'{"type":"a"}'
CE = b'{"specversion":"1.0","id":"1","source":"s","type":"t"}'
#: Peak RSS growth allowed while refusing one such body (today: ~46 MiB; before: ~280).
MAX_GROWTH = 120 << 20


def _array(item: bytes, count: int) -> bytes:
    return b"[" + (item + b",") * (count - 1) + item + b"]"


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with ServerProcess.start() as proc:
        yield proc


class PeakRss:
    """The highest RSS of a process while the block runs, sampled every 2 ms."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.base = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.002)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return self.peak - self.base


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (_array(TINY, ITEMS), "application/json"),
        ((TINY + b"\n") * ITEMS, "application/x-ndjson"),
        (_array(b"{}", ITEMS * 13 // 3), "application/json"),  # 5.6M empty objects
        (_array(CE, (16 << 20) // (len(CE) + 1) - 1), "application/cloudevents-batch+json"),
    ],
    ids=["json", "ndjson", "json-empty-objects", "cloudevents-batch"],
)
def test_a_16_mib_batch_of_tiny_events_is_refused_before_they_are_built(
    server: ServerProcess, body: bytes, content_type: str
) -> None:
    assert len(body) <= 16 << 20
    client = httpx.Client(base_url=server.url, timeout=scaled(60))
    with client, PeakRss(server.pid) as rss:
        r = client.post(
            "/api/streams/big/events", content=body, headers={"content-type": content_type}
        )
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "batch_too_large"
    assert "at most 10000 events" in error["message"]
    assert rss.growth < MAX_GROWTH, f"peak RSS grew {rss.growth >> 20} MiB"
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/api/streams/big").status_code == 404


def test_a_batch_at_the_limit_with_nested_objects_is_counted_and_taken(
    server: ServerProcess,
) -> None:
    """More braces than the batch limit (nested data) is not more events: counted, accepted."""
    events = [{"type": "a", "data": {"x": {"y": {}}}}] * 10_000
    with httpx.Client(base_url=server.url, timeout=scaled(60)) as client:
        r = client.post("/api/streams/nested/events", json=events)
        assert r.status_code == 201, r.text
        assert r.json()["written"] == 10_000
        r = client.post("/api/streams/nested/events", json=[*events, events[0]])
        assert r.status_code == 422
        assert r.json()["error"]["code"] == "batch_too_large"


def test_a_non_array_batch_body_with_many_braces_is_a_validation_error(
    server: ServerProcess,
) -> None:
    body = b'{"a": ' + b'{"b": ' * 10_100 + b"1" + b"}" * 10_100 + b"}"
    with httpx.Client(base_url=server.url, timeout=scaled(60)) as client:
        r = client.post(
            "/api/streams/obj/events",
            content=body,
            headers={"content-type": "application/cloudevents-batch+json"},
        )
    assert r.status_code in (400, 422), r.text
    assert r.json()["error"]["code"] != "batch_too_large"
