"""Crashes and shutdowns of a real server under load: no acknowledged event is lost."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx

from eventlog import EventLog
from tests.serverproc import ServerProcess
from tests.support import scaled, wait_until_sync


async def _producer(
    client: httpx.AsyncClient,
    name: str,
    acked: dict[str, int],
    stop: asyncio.Event,
    enough: tuple[int, asyncio.Event],
) -> None:
    seq = 0
    while not stop.is_set():
        event_id = f"{name}-{seq}"
        seq += 1
        try:
            r = await client.post(
                "/api/streams/load/events", json={"type": "t", "id": event_id, "data": event_id}
            )
        except httpx.TransportError:
            return  # the server died under us: this event was never acknowledged
        if r.status_code == 201:
            acked[event_id] = r.json()["offsets"][0]
            if len(acked) >= enough[0]:
                enough[1].set()


async def _load_then(server: ServerProcess, action: str, target: int) -> dict[str, int]:
    """Append from 16 concurrent clients; once ``target`` appends are acknowledged,
    ``kill`` (SIGKILL) or ``stop`` (SIGTERM) the server while they keep going."""
    acked: dict[str, int] = {}
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=16)
    async with httpx.AsyncClient(base_url=server.url, timeout=scaled(10), limits=limits) as c:
        enough = (target, asyncio.Event())
        tasks = [asyncio.create_task(_producer(c, f"p{i}", acked, stop, enough)) for i in range(16)]
        await asyncio.wait_for(enough[1].wait(), scaled(30))
        if action == "kill":
            await asyncio.to_thread(server.kill)
        else:
            code = await asyncio.to_thread(server.stop)
            assert code == 0, server.output()
        stop.set()
        await asyncio.gather(*tasks)
    return acked


async def _stored(db: Path) -> dict[str, tuple[int, object]]:
    async with EventLog.open(db) as log:
        return {e.id: (e.offset, e.json()) async for e in log.scan("load")}


async def test_sigkill_under_append_load_loses_no_acknowledged_event(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    server = ServerProcess.start(db=db)
    try:
        acked = await _load_then(server, "kill", 300)
    finally:
        server.close()
    assert server.proc is not None
    assert server.proc.returncode == -9
    assert len(acked) >= 300, "the load did not get going"
    stored = await _stored(db)
    missing = [i for i in acked if i not in stored]
    assert missing == []
    for event_id, offset in acked.items():
        assert stored[event_id] == (offset, event_id)
    assert sorted(offset for offset, _ in stored.values()) == list(range(len(stored)))


async def test_sigterm_under_load_exits_0_and_keeps_every_acknowledged_event(
    tmp_path: Path,
) -> None:
    db = tmp_path / "events.db"
    with ServerProcess.start(db=db) as server:
        acked = await _load_then(server, "stop", 300)
        assert "Application shutdown complete" in server.output()
    stored = await _stored(db)
    assert len(acked) >= 300
    assert all(stored[i][0] == offset for i, offset in acked.items())


def test_sigterm_ends_a_long_poll_promptly_and_exits_0(tmp_path: Path) -> None:
    server = ServerProcess.start(db=tmp_path / "events.db")
    result: dict[str, object] = {}

    def poll() -> None:
        r = httpx.get(
            f"{server.url}/api/streams/quiet/events",
            params={"from": 0, "wait": 60},
            timeout=scaled(70),
        )
        result["status"] = r.status_code
        result["events"] = r.json()["events"]

    thread = threading.Thread(target=poll)
    thread.start()
    # The server has accepted the poll (its request was sent with the connection):
    # it is parked before SIGTERM's shutdown, which starts at the loop's next tick.
    wait_until_sync(lambda: server.connections() == 1, what="the poll accepted")
    started = time.monotonic()
    code = server.stop()
    elapsed = time.monotonic() - started
    thread.join(scaled(10))
    server.close()
    assert code == 0
    assert elapsed < scaled(8)
    assert result == {"status": 200, "events": []}
