"""``Client``: the blocking client, one ``AsyncClient`` on a loop in its own thread."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from eventlog import BEGINNING, NewEvent, StreamNotFound, Time
from eventlog.client import Client
from tests.serverthread import ServerThread
from tests.support import scaled


def test_the_sync_client_appends_reads_follows_and_raises_like_the_async_one(
    tmp_path: Path,
) -> None:
    with ServerThread.start(db=tmp_path / "s.db") as server, Client.open(server.url) as log:
        assert log.append("s", {"n": 0}, type="t") == 0
        assert log.append_batch("s", [NewEvent(type="t", data={"n": 1}), {"type": "u"}]) == [1, 2]
        assert [e.offset for e in log.read("s", 1)] == [1, 2]
        assert [e.type for e in log.scan("s")] == ["t", "t", "u"]
        assert (log.stream_info("s").next_offset, log.bounds("s")) == (3, (0, 3))
        with pytest.raises(StreamNotFound):
            log.stream_info("nope")
        followed = []
        for event in log.follow("s", "beginning", batch=2):
            followed.append(event.offset)
            if event.offset == 2:
                break  # closes the subscription on the client's loop
        assert followed == [0, 1, 2]
        assert log.wait("s", 3, timeout=0.05) is False
        later = threading.Timer(0.3, lambda: log.append("s", {"n": 3}, type="t"))
        later.start()
        try:
            assert [e.json() for e in log.read_wait("s", 3, timeout=scaled(20))] == [{"n": 3}]
        finally:
            later.join()
    assert log.closed
    log.close()  # idempotent


def test_the_sync_client_has_the_embedded_logs_consumer_and_offset_at_time(
    tmp_path: Path,
) -> None:
    with ServerThread.start(db=tmp_path / "s.db") as server, Client.open(server.url) as log:
        for _ in range(3):
            log.append("c", None, type="t")  # one at a time: each its own time
        middle = log.read("c", 1, 1)[0].time
        assert log.offset_at_time("c", middle) == 1
        consumer = log.consumer("billing", "c", start=Time(middle))
        assert [e.offset for e in consumer.poll(max_events=1)] == [1]
        consumer.commit()
        assert (consumer.committed, log.committed_offset("billing", "c")) == (2, 2)
        assert consumer.lag() == 1
        assert consumer.seek(BEGINNING) == 0
        seen = []
        for event in consumer:  # commits each page as the loop asks for the next
            seen.append(event.offset)
            if event.offset == 2:
                break
        assert seen == [0, 1, 2]
        again = log.consumer("billing", "c")
        assert [e.offset for e in again.poll(timeout=0)] == [2]  # the page in hand uncommitted
