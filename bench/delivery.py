"""Webhook delivery: deliveries/s to a loopback receiver with 50 in flight, next to the
bare HTTP client posting the same bodies in the same run.

The receiver is a bare ASGI app on uvicorn (uvloop, httptools) in its own
process that reads each body and answers 204. The baseline is one pooled
aiohttp session with 50 tasks posting the pre-encoded event bodies. eventlog
runs the whole engine in-process on an SQLite log (``synchronous=full``):
the feeder turns events into ledger rows atomically with the consumer
offset, the endpoint's pump claims them as its machine asks, each attempt is signed (Standard
Webhooks, fresh timestamp), sent, classified and recorded in group-committed
ledger transactions. httpx posting the same bodies with 50 in flight is
shown too: it is why the sender uses aiohttp.

Run the receiver alone with ``python -m bench.delivery PORT``.
"""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import subprocess
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import httpx
import msgspec

from bench.common import payload, receiver_process, scratch_dir, serve_on_argv_port
from bench.report import Figure, Section
from consumers.delivery.engine import DeliveryEngine
from consumers.delivery.stores import ledger_for
from consumers.webhook import WEBHOOK, EndpointSpec, build_endpoint
from eventlog import EventLog, NewEvent

IN_FLIGHT = 50


async def receiver_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Read the body, answer 204."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def start_receiver() -> tuple[subprocess.Popen[bytes], int]:
    """The receiver answering 204 at once, in its own process; its port."""
    return receiver_process("bench.delivery")


async def _pump(
    bodies: list[bytes], post: Callable[[bytes], Awaitable[None]]
) -> tuple[float, float]:
    queue = iter(bodies)

    async def worker() -> None:
        for body in queue:
            await post(body)

    gc.collect()  # neither side pays for the other's (or the set-up's) garbage
    start, cpu = time.perf_counter(), time.thread_time()
    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    return len(bodies) / (time.perf_counter() - start), _per(time.thread_time() - cpu, len(bodies))


def _per(seconds: float, count: int) -> float:
    """Microseconds per item."""
    return seconds / count * 1e6


async def bare_aiohttp(url: str, bodies: list[bytes]) -> tuple[float, float]:
    """Posts/s and the event loop thread's CPU µs per post."""
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def post(body: bytes) -> None:
            headers = {"Content-Type": "application/json"}
            async with session.post(url, data=body, headers=headers) as r:
                await r.read()
                assert r.status == 204

        return await _pump(bodies, post)


async def bare_httpx(url: str, bodies: list[bytes]) -> tuple[float, float]:
    limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    async with httpx.AsyncClient(limits=limits) as client:

        async def post(body: bytes) -> None:
            r = await client.post(url, content=body, headers={"Content-Type": "application/json"})
            assert r.status_code == 204

        return await _pump(bodies, post)


async def engine_rate(url: str, count: int) -> tuple[float, float, list[bytes]]:
    """Deliveries/s of the engine over ``count`` events already in the log, the event
    loop thread's CPU µs per delivery (the ledger's SQLite thread not included), and
    the bodies."""
    with scratch_dir() as tmp:
        async with EventLog.open(tmp / "events.db") as log:
            for i in range(0, count, 1000):
                batch = [
                    NewEvent(type="order.created", data=payload(n)) for n in range(i, i + 1000)
                ]
                await log.append_batch("events", batch)
            del batch  # not kept alive (and walked by the collector) while timed
            bodies = [msgspec.json.encode(e) for e in await log.read("events", 0, count)]
            done = asyncio.Event()
            delivered = 0

            def on_attempt(*args: Any) -> None:
                nonlocal delivered
                if args[3] == "delivered":
                    delivered += 1
                    if delivered == count:
                        done.set()

            engine = DeliveryEngine(
                log,
                ledger_for(log),
                kinds={"webhook": WEBHOOK},
                allow_private=True,
                on_attempt=on_attempt,
            )
            await engine.start()
            try:
                spec = EndpointSpec(url=url, id="bench", max_in_flight=IN_FLIGHT, start="beginning")
                endpoint = build_endpoint(spec, now=time.time(), head=count)
                gc.collect()
                start, cpu = time.perf_counter(), time.thread_time()
                await engine.put_endpoint(endpoint)
                await done.wait()  # every event got a 2xx (no polling: it would cost CPU)
                elapsed = time.perf_counter() - start
                cpu = time.thread_time() - cpu
                failed = await engine.store.deliveries("bench", status="failed", limit=1)
                assert not failed, failed
            finally:
                await engine.close()
    return count / elapsed, _per(cpu, count), bodies


async def run(quick: bool) -> Section:
    count = 2000 if quick else 10_000
    rounds = 1 if quick else 7
    load = os.getloadavg()[0]
    proc, port = start_receiver()
    url = f"http://127.0.0.1:{port}/hook"
    # As `eventlog serve` does once started (server/serve.py): what the imports
    # made lives as long as the process, out of the collector's reach. Both
    # sides run in this process.
    gc.collect()
    gc.freeze()
    try:
        ours, bare, via_httpx, cpu_ours, cpu_bare = [], [], [], [], []
        bodies: list[bytes] = []
        for i in range(rounds):
            # Alternate which side runs first: the machine's load drifts.
            if i % 2 and bodies:
                bare_rate, bare_cpu = await bare_aiohttp(url, bodies)
                rate, cpu, bodies = await engine_rate(url, count)
            else:
                rate, cpu, bodies = await engine_rate(url, count)
                bare_rate, bare_cpu = await bare_aiohttp(url, bodies)
            ours.append(rate)
            bare.append(bare_rate)
            cpu_ours.append(cpu)
            cpu_bare.append(bare_cpu)
            via_httpx.append((await bare_httpx(url, bodies[: count // 20]))[0])
    finally:
        proc.terminate()
        proc.wait()
    engine_median = statistics.median(ours)
    bare_median = statistics.median(bare)
    httpx_median = statistics.median(via_httpx)
    ratios = [a / b for a, b in zip(ours, bare, strict=True)]
    return Section(
        key="delivery",
        title="Webhook delivery",
        conditions=(
            f"{count:,} events of ~200 bytes, {IN_FLIGHT} in flight, one loopback receiver "
            "(uvicorn+uvloop+httptools, 204) in another process; medians of "
            f"{rounds} round(s), each side first in turn. eventlog: the whole engine on an "
            "SQLite log (synchronous=full), ledger rows, signing, classification and recorded "
            "attempts included. Both sides in one process, asyncio's event loop, the objects "
            "made by imports frozen out of the collector's reach as `eventlog serve` does."
        ),
        figures=[
            Figure(
                "deliveries, 50 in flight, vs bare aiohttp posting the same bodies",
                engine_median,
                bare_median,
                unit="req/s",
                target=0.8,
                note=(
                    "baseline: one aiohttp session, 50 tasks; per-round ratios "
                    f"{min(ratios):.2f}-{max(ratios):.2f}×, median {statistics.median(ratios):.2f}×"
                ),
            ),
            Figure(
                "bare httpx vs bare aiohttp, 50 in flight (why the sender uses aiohttp)",
                httpx_median,
                bare_median,
                unit="req/s",
                note=f"httpx posted {count // 20:,} of the bodies",
            ),
        ],
        extra=[
            "Each round, eventlog / bare aiohttp (req/s): "
            + ", ".join(
                f"{a:,.0f} / {b:,.0f} ({a / b:.2f}×)" for a, b in zip(ours, bare, strict=True)
            )
            + f". Load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end "
            "(2 cores shared with other work): single rounds swing with it, most when the "
            "bare client finds the cores free for a moment.",
            "",
            "Event loop thread CPU per delivery (`time.thread_time`, medians): eventlog "
            f"{statistics.median(cpu_ours):.0f} µs, bare aiohttp "
            f"{statistics.median(cpu_bare):.0f} µs per post: by that CPU alone eventlog would "
            f"run at {statistics.median(cpu_bare) / statistics.median(cpu_ours):.2f}× (the "
            "ledger's SQLite thread, which needs the GIL too, not counted). Each round: "
            + ", ".join(f"{a:.0f} / {b:.0f}" for a, b in zip(cpu_ours, cpu_bare, strict=True))
            + " µs.",
            "",
        ],
    )


if __name__ == "__main__":
    serve_on_argv_port(receiver_app, lifespan="off")
