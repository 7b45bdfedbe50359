"""A client that stops reading during a flood: dropped with its resume offset, nobody else hurt."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator

import httpx
import msgspec
import psutil
import pytest
import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.frames import Close

from tests.consumers.firehose.clients import Websocat, append, wait_for_gauge
from tests.serverproc import ServerProcess
from tests.support import scaled

FLOOD = 100_000
PAYLOAD = 600  # bytes of padding per event: ~0.75 KB frames, ~75 MB if one queue held them all
BOUND = 10_000  # events a client may fall behind: ~7.5 MB, a tenth of the flood


@pytest.fixture(scope="module")
def fh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """This module's server: the slow-client bound is 10,000 events (not the other
    modules' 2,000), so that the reading clients, Python threads on a shared
    machine, never come near it while the flood is appended as fast as the log
    takes it; the stalled client passes it whatever the bound."""
    db = tmp_path_factory.mktemp("flood") / "events.db"
    env = {
        "EVENTLOG_FIREHOSE_QUEUE_EVENTS": str(BOUND),
        "EVENTLOG_FIREHOSE_BACKLOG_EVENTS": str(BOUND),
        "EVENTLOG_FIREHOSE_CLOSE_TIMEOUT": "2",
        "EVENTLOG_SYNCHRONOUS": "normal",
    }
    with ServerProcess.start(db=db, env=env) as proc:
        yield proc


class RssSampler:
    """Samples a process's resident memory in a thread; keeps the peak."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak: int = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.NoSuchProcess:  # the server is gone: the test reports why
                return

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


async def read_all(ws: ClientConnection, count: int) -> list[int]:
    offsets: list[int] = []
    async with asyncio.timeout(scaled(60)):
        while len(offsets) < count:
            offsets.append(msgspec.json.decode(await ws.recv())["offset"])
    return offsets


async def read_when_dropped(
    server: ServerProcess, ws: ClientConnection
) -> tuple[list[int], Close | None]:
    """Stay stalled until the server reports a slow-client drop, then read to the close."""
    await asyncio.to_thread(
        wait_for_gauge,
        server,
        "eventlog_firehose_slow_disconnects_total",
        '{transport="ws"}',
        1,
        60,
    )
    received = [0]  # offset 0 was read before the stall
    try:
        async with asyncio.timeout(scaled(30)):
            while True:
                received.append(msgspec.json.decode(await ws.recv())["offset"])
    except websockets.ConnectionClosed as exc:
        return received, exc.rcvd


async def test_one_stalled_client_is_closed_with_its_resume_offset_while_others_get_everything(
    fh_server: ServerProcess,
) -> None:
    http = httpx.Client(base_url=fh_server.url, timeout=scaled(30))
    append(http, "flood", 1)
    url = f"{fh_server.ws_url}/api/streams/flood/firehose?from=0"
    # The stalled client: its library stops reading the socket once a few
    # frames are buffered, so TCP pushes back on the server.
    stalled = await connect(url, max_queue=4, compression=None)
    fast = await connect(url, compression=None)
    with Websocat(url) as cli:
        assert msgspec.json.decode(await stalled.recv())["offset"] == 0
        await asyncio.to_thread(
            wait_for_gauge, fh_server, "eventlog_firehose_clients", '{transport="ws"}', 3
        )
        rss_before = psutil.Process(fh_server.pid).memory_info().rss
        sampler = RssSampler(fh_server.pid)
        fast_reader = asyncio.create_task(read_all(fast, FLOOD + 1))
        stalled_reader = asyncio.create_task(read_when_dropped(fh_server, stalled))
        started = time.monotonic()
        await asyncio.to_thread(append, http, "flood", FLOOD, payload=PAYLOAD)
        append_seconds = time.monotonic() - started
        fast_offsets = await fast_reader
        cli_offsets = [e["offset"] for e in await asyncio.to_thread(cli.read, FLOOD + 1, 60)]
        received, close = await stalled_reader
        rss_peak = sampler.stop()

        # Every other client got every event, in order, once.
        assert fast_offsets == list(range(FLOOD + 1))
        assert cli_offsets == list(range(FLOOD + 1))

        # The stalled client got what was already on the wire, then the close
        # frame naming the exact offset to resume from.
        assert close is not None
        assert close.code == 4008
        match = re.search(r"from=(\d+)", close.reason)
        assert match is not None, close.reason
        resume = int(match.group(1))
        assert received == list(range(resume))  # nothing lost before the resume offset
        assert resume < FLOOD

        # Resuming from there continues with no gap.
        async with connect(
            f"{fh_server.ws_url}/api/streams/flood/firehose?from={resume}",
            compression=None,
            close_timeout=0.1,  # it leaves with ~95,000 events unread: no need to drain them
        ) as again:
            assert msgspec.json.decode(await again.recv())["offset"] == resume
    await fast.close()
    await asyncio.to_thread(http.close)

    # Memory stayed bounded: far below what queueing the flood for the stalled
    # client would take (FLOOD * ~0.75 KB ≈ 75 MB).
    growth_mb = (rss_peak - rss_before) / 2**20
    assert growth_mb < 40, f"server RSS grew {growth_mb:.0f} MB"
    assert append_seconds < scaled(60)
