"""Fan-out: 100 WebSocket clients on loopback, next to a bare ``websockets`` broadcast.

Two systems, measured one after the other in the same run, each against 100
WebSocket clients spread over two client processes:

* **eventlog** — a real ``eventlog serve`` subprocess; a producer appends over
  HTTP (small batches every 10 ms); clients read
  ``/api/streams/fanout/firehose``. Every event goes through the log (SQLite,
  ``synchronous=full``) and the firehose hub.
* **bare** — a ``websockets`` server process that encodes the same events and
  calls ``websockets.broadcast()`` at the same rate (no log, no queues, no
  backpressure).

Two phases per system:

1. *Flood* (twice per system, alternating; best kept): the producer asks for more
   than can be delivered (5,000
   events/s × 100 clients); the figure is the delivered events/s summed over all
   clients in a 3 s window: the maximum sustainable fan-out rate. (eventlog's
   per-client bound is raised for this phase so no client is dropped.)
2. *Sustainable*: steady rates stepping down from the flood rate (×0.7) until
   eventlog delivers ≥ 95 % of what is asked with p99 latency under 500 ms
   (queues not growing): its maximum sustainable rate.
3. *Steady*: half of that rate, for both systems, then once more for eventlog
   with one extra client that never reads (it must not slow the others); p50/p99
   append-to-receive latency (the producer stamps each batch with its send
   time; clients compare with their clock on receipt).

Clients are raw asyncio protocols that parse WebSocket frame headers and
decode one frame in ten for its timestamp, so that they can keep up with the
servers on a 2-core machine. The same processes run as ``python -m
bench.fanout clients|bare-server ...`` (roles of this module).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from bench.common import free_port, payload, scratch_dir
from bench.report import Figure, Section

CLIENTS = 100
CLIENT_PROCESSES = 2
FLOOD_RATE = 5_000  # events/s asked for in the flood phase
TICK = 0.01  # producer batch interval, seconds
SAMPLE_EVERY = 10  # clients decode one frame in this many for its timestamp
ROOT = Path(__file__).resolve().parent.parent


# -- the clients (role: clients) -------------------------------------------------


class RawClient(asyncio.Protocol):
    """A minimal WebSocket client: handshake, frame counting, timestamp sampling, pong."""

    def __init__(self, host: str, path: str, ready: asyncio.Future[None]) -> None:
        self.host = host
        self.path = path
        self.ready = ready
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.open = False
        self.frames = 0
        self.samples: list[float] = []
        self.log_samples: list[float] = []
        self.closes: list[int] = []
        self._until_sample = SAMPLE_EVERY

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.open:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[: buf.find(b"\r\n")])
            if b" 101 " not in status and not self.ready.done():
                self.ready.set_exception(RuntimeError(status.decode(errors="replace")))
                return
            del buf[: end + 4]
            self.open = True
            if not self.ready.done():
                self.ready.set_result(None)
        pos, size = 0, len(buf)
        now = time.time()
        while size - pos >= 2:
            b0, length = buf[pos], buf[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if size - pos < 4:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 4]), 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 10]), 10
            if size - pos < head + length:
                break
            opcode = b0 & 0x0F
            if opcode in (0, 1):
                self.frames += 1
                self._until_sample -= 1
                if self._until_sample == 0:
                    self._until_sample = SAMPLE_EVERY
                    self._sample(buf, pos + head, pos + head + length, now)
            elif opcode == 8:
                self.closes.append(int.from_bytes(buf[pos + head : pos + head + 2]) or 1005)
            elif opcode == 9 and self.transport is not None:  # ping: pong, masked with 0000
                body = bytes(buf[pos + head : pos + head + length])
                self.transport.write(bytes([0x8A, 0x80 | len(body)]) + b"\0\0\0\0" + body)
            pos += head + length
        del buf[:pos]

    def _sample(self, buf: bytearray, start: int, stop: int, now: float) -> None:
        at = buf.find(b'"t":', start, stop)
        if at >= 0:
            end = buf.find(b",", at, stop)
            with contextlib.suppress(ValueError):
                self.samples.append(now - float(buf[at + 4 : end]))
        at = buf.find(b'"time":"', start, stop)
        if at >= 0:
            end = buf.find(b'"', at + 8, stop)
            with contextlib.suppress(ValueError):
                appended = datetime.fromisoformat(buf[at + 8 : end].decode()).timestamp()
                self.log_samples.append(now - appended)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("connection lost during handshake"))


async def clients_main(port: int, path: str, count: int) -> None:
    """Connect ``count`` clients; answer ``reset``/``report``/``quit`` lines on stdin."""
    loop = asyncio.get_running_loop()
    clients: list[RawClient] = []
    for _ in range(count):
        ready: asyncio.Future[None] = loop.create_future()
        client = RawClient(f"127.0.0.1:{port}", path, ready)
        await loop.create_connection(lambda c=client: c, "127.0.0.1", port)  # type: ignore[misc]
        clients.append(client)
        await ready
    print("ready", flush=True)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().strip():
        if line == "reset":
            for c in clients:
                c.frames = 0
                c.samples.clear()
                c.log_samples.clear()
        elif line == "report":
            report = {
                "frames": sum(c.frames for c in clients),
                "samples": [s for c in clients for s in c.samples],
                "log_samples": [s for c in clients for s in c.log_samples],
                "closes": [code for c in clients for code in c.closes],
                "at": time.time(),
            }
            print(json.dumps(report), flush=True)
        elif line == "quit":
            break


# -- the bare broadcast server (role: bare-server) ---------------------------------


async def bare_server_main(port: int) -> None:
    """A ``websockets`` server broadcasting events on ``run <rate> <seconds>`` commands."""
    from websockets.asyncio.server import ServerConnection, broadcast, serve

    from eventlog import Event

    connections: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        connections.add(ws)
        try:
            await ws.wait_closed()
        finally:
            connections.discard(ws)

    encoder = msgspec.json.Encoder()
    async with serve(handler, "127.0.0.1", port, compression=None, max_queue=None):
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        offset = 0
        while line := (await reader.readline()).decode().split():
            if line[0] != "run":
                break
            rate, seconds = float(line[1]), float(line[2])
            start = loop.time()
            sent = 0
            while (elapsed := loop.time() - start) < seconds:
                due = int(rate * elapsed) - sent
                if due > 0:
                    now = time.time()
                    for _ in range(due):
                        data = encoder.encode({"t": now, **payload(offset)})
                        event = Event(
                            stream="fanout",
                            offset=offset,
                            id=f"{offset:032x}",
                            type="order.created",
                            time=_utc(now),
                            headers={},
                            data=msgspec.Raw(data),
                        )
                        broadcast(connections, encoder.encode(event), text=True)
                        offset += 1
                    sent += due
                await asyncio.sleep(TICK)
            print(f"done {sent}", flush=True)


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


# -- the driver ------------------------------------------------------------------


@dataclass
class Phase:
    """What the clients saw in one measurement window."""

    delivered: float  # events/s summed over all clients
    appended: float  # events/s the producer got acknowledged
    latencies: list[float] = field(default_factory=list)  # producer send -> client receive
    log_latencies: list[float] = field(default_factory=list)  # log append time -> receive
    ack_latencies: list[float] = field(default_factory=list)  # producer send -> append acked
    dropped: int = 0  # clients closed by the server

    def pct(self, q: int, which: str = "latencies") -> float:
        """The q-th percentile of a latency list, in milliseconds."""
        values: list[float] = getattr(self, which)
        if len(values) < 2:
            return float("nan")
        return 1000 * statistics.quantiles(values, n=100, method="inclusive")[q - 1]


async def _spawn(*args: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        limit=1 << 26,  # reports carry every latency sample on one line
    )


async def _line(proc: asyncio.subprocess.Process, timeout: float = 60) -> str:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout)
    if not line:
        raise RuntimeError(f"process {proc.pid} ended early")
    return line.decode().strip()


async def _command(procs: list[asyncio.subprocess.Process], text: str) -> None:
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(text.encode() + b"\n")
        await p.stdin.drain()


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


class Clients:
    """The client processes of one phase."""

    def __init__(self, port: int, path: str) -> None:
        self.port = port
        self.path = path
        self.procs: list[asyncio.subprocess.Process] = []

    async def __aenter__(self) -> Clients:
        per = CLIENTS // CLIENT_PROCESSES
        for _ in range(CLIENT_PROCESSES):
            self.procs.append(
                await _spawn("-m", "bench.fanout", "clients", str(self.port), self.path, str(per))
            )
        for p in self.procs:
            assert await _line(p) == "ready"
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            await _command(self.procs, "quit")
        for p in self.procs:
            await _stop(p)

    async def reset(self) -> float:
        await _command(self.procs, "reset")
        return time.time()

    async def report(self, since: float) -> Phase:
        await _command(self.procs, "report")
        reports = [json.loads(await _line(p)) for p in self.procs]
        seconds = max(r["at"] for r in reports) - since
        return Phase(
            delivered=sum(r["frames"] for r in reports) / seconds,
            appended=0.0,
            latencies=[s for r in reports for s in r["samples"]],
            log_latencies=[s for r in reports for s in r["log_samples"]],
            dropped=sum(len(r["closes"]) for r in reports),
        )


Load = tuple[int, list[float]]  # events sent or acknowledged, append ack latencies
LoadFn = Callable[[float, float], Coroutine[Any, Any, Load]]  # (rate, seconds) -> Load


async def _producer(url: str, rate: float, seconds: float) -> Load:
    """Append at ``rate`` events/s in batches every TICK over HTTP; events acknowledged."""
    acked = 0
    ack_latencies: list[float] = []
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as session:
        start = loop.time()
        sent = 0
        offset = 0
        inflight: set[asyncio.Task[None]] = set()

        async def post(body: bytes, n: int, sent_at: float) -> None:
            nonlocal acked
            async with session.post(
                url, data=body, headers={"content-type": "application/json"}
            ) as r:
                if r.status == 201:
                    acked += n
                    ack_latencies.append(time.time() - sent_at)
                else:
                    print(f"append failed: {r.status} {await r.text()}", file=sys.stderr)

        while (elapsed := loop.time() - start) < seconds:
            due = min(int(rate * elapsed) - sent, 5000)
            if due > 0 and len(inflight) < 8:
                now = time.time()
                body = msgspec.json.encode(
                    [
                        {"type": "order.created", "data": {"t": now, **payload(offset + i)}}
                        for i in range(due)
                    ]
                )
                task = asyncio.create_task(post(body, due, now))
                inflight.add(task)
                task.add_done_callback(inflight.discard)
                sent += due
                offset += due
            await asyncio.sleep(TICK)
        await asyncio.gather(*inflight)
    return acked, ack_latencies


WARMUP = 1.0
FLOOD_WINDOW = 3.0
STEADY_WINDOW = 4.0
PROBE_WINDOW = 2.0
SUSTAINED_P99 = 500.0  # ms: beyond this, queues are growing, the rate is not sustained


async def _phase(
    port: int, path: str, window: float, start_load: Callable[[float], Coroutine[Any, Any, Load]]
) -> Phase:
    """Connect clients, start the load, measure one window, stop."""
    async with Clients(port, path) as clients:
        load = asyncio.create_task(start_load(window + WARMUP + 0.5))
        await asyncio.sleep(WARMUP)
        since = await clients.reset()
        await asyncio.sleep(window)
        phase = await clients.report(since)
        sent, phase.ack_latencies = await load
    phase.appended = sent / (window + WARMUP + 0.5)
    return phase


class System:
    """One system under test: where its clients connect and how to load it."""

    def __init__(self, port: int, path: str, load: LoadFn):
        self.port = port
        self.path = path
        self.load = load

    async def phase(self, rate: float, window: float) -> Phase:
        return await _phase(self.port, self.path, window, lambda sec: self.load(rate, sec))


@contextlib.asynccontextmanager
async def _eventlog(db: Path) -> AsyncIterator[System]:
    """A real ``eventlog serve`` with HTTP appends."""
    port = free_port()
    env = {
        "EVENTLOG_ACCESS_LOG": "false",
        "EVENTLOG_LOG_LEVEL": "warning",
        # The flood queues far more than the default bound for every client.
        "EVENTLOG_FIREHOSE_QUEUE_EVENTS": "10000000",
        "EVENTLOG_FIREHOSE_QUEUE_BYTES": str(8 << 30),
    }
    args = ["-m", "server.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    server = await _spawn(*args, "--db", str(db), env=env)
    try:
        url = f"http://127.0.0.1:{port}/api/streams/fanout/events"
        async with aiohttp.ClientSession() as s:
            for _ in range(600):
                with contextlib.suppress(aiohttp.ClientError):
                    async with s.get(f"http://127.0.0.1:{port}/readyz") as r:
                        if r.status == 200:
                            break
                await asyncio.sleep(0.05)
            async with s.post(url, json={"type": "init"}) as r:
                assert r.status == 201, await r.text()

        async def produce(rate: float, seconds: float) -> Load:
            return await _producer(url, rate, seconds)

        yield System(port, "/api/streams/fanout/firehose", produce)
    finally:
        await _stop(server)


@contextlib.asynccontextmanager
async def _bare() -> AsyncIterator[System]:
    """The bare ``websockets`` broadcast server."""
    port = free_port()
    server = await _spawn("-m", "bench.fanout", "bare-server", str(port))
    try:
        assert await _line(server) == "ready"

        async def broadcast(rate: float, seconds: float) -> Load:
            await _command([server], f"run {rate} {seconds}")
            return int((await _line(server, seconds + 60)).split()[1]), []

        yield System(port, "/", broadcast)
    finally:
        with contextlib.suppress(Exception):
            await _command([server], "quit")
        await _stop(server)


@contextlib.asynccontextmanager
async def _stalled_client(port: int, path: str) -> AsyncIterator[None]:
    """One more client that completes the handshake and never reads again."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    client = RawClient(f"127.0.0.1:{port}", path, ready)
    transport, _ = await loop.create_connection(lambda: client, "127.0.0.1", port)
    await ready
    transport.pause_reading()
    try:
        yield
    finally:
        transport.abort()


def _best(phases: list[Phase]) -> Phase:
    return max(phases, key=lambda p: p.delivered)


async def run(quick: bool) -> Section:
    """The fan-out scenario. Both servers run side by side (the idle one costs
    nothing) and the phases alternate, so both see the same machine."""
    rounds = 1 if quick else 2
    with scratch_dir() as d:
        async with _eventlog(d / "fanout.db") as el, _bare() as bare:
            el_floods, bare_floods = [], []
            for _ in range(rounds):
                el_floods.append(await el.phase(FLOOD_RATE, FLOOD_WINDOW))
                bare_floods.append(await bare.phase(FLOOD_RATE, FLOOD_WINDOW))
            el_flood, bare_flood = _best(el_floods), _best(bare_floods)
            # The flood rate is measured with deep queues (large writes); small
            # steady batches cost more per delivery. Find the highest steady
            # rate eventlog keeps up with, stepping down from the flood rate.
            sustainable, ladder = 0.0, []
            rate = el_flood.delivered / CLIENTS
            for _ in range(6):
                rate *= 0.7
                probe = await el.phase(rate, PROBE_WINDOW)
                ladder.append(
                    f"{rate * CLIENTS:,.0f}/s → {probe.delivered:,.0f}/s, "
                    f"p99 {probe.pct(99):,.0f} ms"
                )
                if probe.delivered >= 0.95 * rate * CLIENTS and probe.pct(99) < SUSTAINED_P99:
                    sustainable = rate
                    break
            half = (sustainable or rate) / 2
            el_steady = await el.phase(half, STEADY_WINDOW)
            bare_steady = await bare.phase(half, STEADY_WINDOW)
            async with _stalled_client(el.port, el.path):
                el_stalled = await el.phase(half, STEADY_WINDOW)
    section = Section(
        key="fanout",
        title="Fan-out: 100 WebSocket clients",
        conditions=(
            f"{CLIENTS} WebSocket clients in {CLIENT_PROCESSES} processes on loopback; "
            "eventlog = `eventlog serve` (SQLite, synchronous=full) with HTTP appends every "
            "10 ms, clients on `/api/streams/fanout/firehose`; baseline = a bare `websockets` "
            "server calling `broadcast()` with the same event JSON. Flood: "
            f"{FLOOD_RATE:,} events/s asked for, delivered events/s summed over all clients "
            f"in a {FLOOD_WINDOW:g} s window, best of {rounds} alternating rounds. "
            "Maximum sustainable rate: the first steady rate, stepping down from the flood "
            "rate by 0.7×, at which eventlog delivers ≥ 95 % of what is asked with a p99 "
            f"latency under {SUSTAINED_P99:g} ms, i.e. without growing queues "
            f"(deliveries asked → delivered: {'; '.join(ladder)}). Steady: half of that "
            f"({half:,.0f} events/s appended, {half * CLIENTS:,.0f} deliveries/s asked for) "
            "for both; append-to-receive latency sampled on one frame in "
            f"{SAMPLE_EVERY} per client."
        ),
    )
    section.figures += [
        Figure(
            "flood: delivered events/s, all clients",
            el_flood.delivered,
            bare_flood.delivered,
            target=0.5,
        ),
        Figure(
            "steady at half max: delivered events/s",
            el_steady.delivered,
            bare_steady.delivered,
            note=f"asked for {half * CLIENTS:,.0f}/s",
        ),
        Figure(
            "steady: p50 append-to-receive latency",
            el_steady.pct(50),
            bare_steady.pct(50),
            unit="ms",
            note="lower is better",
        ),
        Figure(
            "steady: p99 append-to-receive latency",
            el_steady.pct(99),
            bare_steady.pct(99),
            unit="ms",
            note="lower is better; target < 100 ms: "
            + ("met" if el_steady.pct(99) < 100 else "**not met**"),
        ),
    ]
    section.figures.append(
        Figure(
            "steady, one more client stalled: delivered events/s to the others",
            el_stalled.delivered,
            el_steady.delivered,
            note=f"baseline: eventlog without it; p99 {el_stalled.pct(99):.0f} ms, appends "
            f"acknowledged {el_stalled.appended:,.0f} events/s "
            f"(p99 {el_stalled.pct(99, 'ack_latencies'):.0f} ms)",
        )
    )
    section.extra += [
        "Where eventlog's latency goes (steady phase, p50 / p99): producer send → append "
        f"acknowledged {el_steady.pct(50, 'ack_latencies'):.1f} / "
        f"{el_steady.pct(99, 'ack_latencies'):.1f} ms (HTTP, group commit, fsync); "
        "log append time → client receive "
        f"{el_steady.pct(50, 'log_latencies'):.1f} / {el_steady.pct(99, 'log_latencies'):.1f} ms "
        "(commit, hub read, fan-out, loopback, client).",
        "",
        f"Clients closed by the server: eventlog flood {el_flood.dropped}, steady "
        f"{el_steady.dropped}; bare flood {bare_flood.dropped}, steady {bare_steady.dropped}. "
        f"Producer rate acknowledged during the steady phase: eventlog "
        f"{el_steady.appended:,.0f} events/s, bare {bare_steady.appended:,.0f} events/s. "
        f"Flood latency p99 (queues full by design): eventlog {el_flood.pct(99):,.0f} ms, "
        f"bare {bare_flood.pct(99):,.0f} ms. Load average at the end: "
        f"{os.getloadavg()[0]:.1f} (the cores are shared).",
        "",
    ]
    return section


def main(argv: list[str]) -> None:
    """Entry point of the helper roles."""
    role = argv[0]
    if role == "clients":
        asyncio.run(clients_main(int(argv[1]), argv[2], int(argv[3])))
    elif role == "bare-server":
        asyncio.run(bare_server_main(int(argv[1])))
    else:
        raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
