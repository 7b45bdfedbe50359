"""Every way of reading says what retention removed before it was read: never silent.

Long-poll reads, the WebSocket firehose and SSE refuse an offset below the
retained range with a 416 naming the first retained offset and the count
skipped; ``tail`` warns with both and goes on; the webhook feeder and the
consumer runtime record ``consumer.truncated`` on the system stream.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
import websockets

from consumers.delivery.feeder import Feeder
from consumers.delivery.machine import DeliveryMachine
from consumers.delivery.recorder import Recorder
from consumers.delivery.stores import ledger_for
from consumers.webhook import EndpointSpec, build_endpoint
from eventlog import EventLog, HoldPolicy, NewEvent, Retention
from tests.server.cli.conftest import eventlog
from tests.serverproc import ServerProcess
from tests.support import wait_until

EXPLAINED = {"first_offset": 40, "skipped": 37}


@pytest.fixture(scope="module")
def trimmed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose stream ``t`` had 50 events, of which retention kept 40-49."""

    async def prepare(db: Path) -> None:
        async with EventLog.open(db) as log:
            await log.append_batch("t", [NewEvent(type="n", data=i) for i in range(50)])
            await log.set_retention("t", Retention(max_count=10))
            assert await log.enforce_retention() == 40

    db = tmp_path_factory.mktemp("trunc") / "e.db"
    asyncio.run(prepare(db))
    with ServerProcess.start(db=db) as server:
        yield server


def explained(error: dict[str, object]) -> dict[str, object]:
    assert error["code"] == "offset_out_of_range"
    assert "37 events removed by retention" in str(error["message"])
    return {k: error[k] for k in EXPLAINED}


@pytest.mark.parametrize("wait", [None, "1"])
def test_read_and_long_poll_answer_416_with_what_was_lost(
    trimmed: ServerProcess, wait: str | None
) -> None:
    params = {"from": "3"} | ({"wait": wait} if wait else {})
    r = httpx.get(f"{trimmed.url}/api/streams/t/events", params=params)
    assert r.status_code == 416
    assert explained(r.json()["error"]) == EXPLAINED


async def test_websocket_firehose_is_refused_with_what_was_lost(trimmed: ServerProcess) -> None:
    with pytest.raises(websockets.InvalidStatus) as info:
        async with websockets.connect(f"{trimmed.ws_url}/api/streams/t/firehose?from=3"):
            pass
    assert info.value.response.status_code == 416
    assert explained(msgspec.json.decode(info.value.response.body)["error"]) == EXPLAINED


def test_sse_is_refused_with_what_was_lost(trimmed: ServerProcess) -> None:
    r = httpx.get(f"{trimmed.url}/api/streams/t/sse", params={"from": "3"})
    assert r.status_code == 416
    assert explained(r.json()["error"]) == EXPLAINED
    # Last-Event-ID resumes count too: offset 9 was the last one the client saw.
    resumed = httpx.get(f"{trimmed.url}/api/streams/t/sse", headers={"Last-Event-ID": "9"})
    assert resumed.status_code == 416
    assert resumed.json()["error"]["skipped"] == 30


def test_tail_warns_with_the_count_and_goes_on(trimmed: ServerProcess) -> None:
    tail = eventlog("tail", "--url", trimmed.url, "t", "--from", "3")
    assert tail.returncode == 0, tail.stderr
    assert "offsets 3-39 were removed by retention" in tail.stderr
    assert "(37 events lost, resuming at 40)" in tail.stderr
    assert len(tail.stdout.splitlines()) == 10


async def test_webhook_feeder_records_what_retention_removed_before_delivery(
    sqlite_log: EventLog,
) -> None:
    log = sqlite_log
    store = ledger_for(log)
    await store.open()
    ep = build_endpoint(EndpointSpec(url="http://127.0.0.1:9/hook"), now=time.time(), head=0)
    await store.put_endpoint(ep)
    await log.append_batch("events", [NewEvent(type="t", data=i) for i in range(30)])
    log.set_hold_policy(ep.consumer_name, HoldPolicy(protect=False))
    await log.set_retention("events", Retention(max_count=10))
    assert await log.enforce_retention() == 20
    recorder = Recorder(store)
    recorder.start()
    feeder = Feeder(log, store, recorder, page=100, clock=time.time)
    machine = DeliveryMachine(ep, max_backlog=100)
    task = asyncio.create_task(feeder.run(ep, machine, asyncio.Event(), lambda: None))
    try:

        async def fed() -> bool:
            return len(await store.deliveries(ep.id, limit=100)) == 10

        await wait_until(fed)
        (notice,) = await log.read("system")
        assert notice.type == "consumer.truncated"
        assert msgspec.json.decode(bytes(notice.data)) == {
            "stream": "events",
            "offset": 0,
            "first_offset": 20,
            "skipped": 20,
            "resumed_at": 20,
            "consumer": ep.consumer_name,
        }
        assert sorted(d.offset for d in await store.deliveries(ep.id, limit=100)) == list(
            range(20, 30)
        )
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await recorder.close()


CATCH_UP = 20_000
"""Events a catching-up client is behind: far more than the socket buffers hold."""


@pytest.fixture(scope="module")
def catching_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with small firehose pages and queues, streams ``sse`` and ``ws`` full."""

    async def prepare(db: Path) -> None:
        async with EventLog.open(db) as log:
            for stream in ("sse", "ws"):
                for _ in range(CATCH_UP // 5000):
                    events = [NewEvent(type="n", data="x" * 300) for _ in range(5000)]
                    await log.append_batch(stream, events)

    db = tmp_path_factory.mktemp("catchup") / "e.db"
    asyncio.run(prepare(db))
    env = {
        "EVENTLOG_FIREHOSE_QUEUE_EVENTS": "50",
        "EVENTLOG_FIREHOSE_PAGE": "10",
        "EVENTLOG_FIREHOSE_BACKLOG_EVENTS": "10",
    }
    with ServerProcess.start(db=db, env=env) as server:
        yield server


async def trim(db: str, stream: str) -> None:
    async with EventLog.open(db) as log:
        await log.set_retention(stream, Retention(max_count=10))
        assert await log.enforce_retention() == CATCH_UP - 10


def test_sse_client_catching_up_is_told_what_retention_removed(catching_up: ServerProcess) -> None:
    url = f"{catching_up.url}/api/streams/sse/sse"
    with httpx.stream("GET", url, params={"from": "0"}, timeout=30) as response:
        lines = response.iter_lines()
        assert next(line for line in lines if line.startswith("id:")) == "id: 0"
        asyncio.run(trim(catching_up.db, "sse"))
        last = 0
        for line in lines:
            if line.startswith("id:"):
                last = int(line[3:])
            if line == "event: closed":
                closed = msgspec.json.decode(next(lines).removeprefix("data: "))
                break
        else:
            raise AssertionError("the stream ended without a closed event")
    # Retention trims in chunks: the first retained offset is where it stood when the hub read.
    first = closed["first_offset"]
    assert last + 1 < first <= CATCH_UP - 10
    assert closed["code"] == 4416
    assert closed["resume_from"] == first
    assert closed["skipped"] == first - (last + 1)  # everything between what it got and first
    assert f"({closed['skipped']} events skipped); resume from={first}" in closed["reason"]


async def test_websocket_client_catching_up_is_closed_with_what_retention_removed(
    catching_up: ServerProcess,
) -> None:
    url = f"{catching_up.ws_url}/api/streams/ws/firehose?from=0"
    async with websockets.connect(url, max_queue=1) as ws:
        assert msgspec.json.decode(await ws.recv())["offset"] == 0
        await trim(catching_up.db, "ws")
        last = 0
        try:
            async for message in ws:
                last = msgspec.json.decode(message)["offset"]
        except websockets.ConnectionClosedError:
            pass  # a close code other than 1000/1001 ends the iteration with this
        assert ws.close_code == 4416
    reason = ws.close_reason or ""
    first = int(reason.rsplit("=", 1)[1])
    assert last + 1 < first <= CATCH_UP - 10
    skipped = first - (last + 1)
    assert reason == (
        f"offsets {last + 1}-{first - 1} were removed by retention ({skipped} events skipped); "
        f"resume from={first}"
    )
