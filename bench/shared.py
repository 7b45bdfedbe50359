"""Shared consumers: claim+ack throughput over HTTP with 1, 4 and 16 workers, next to
Redis Streams ``XREADGROUP`` + ``XACK`` with the same workers and batch size, in the same run.

``python -m bench shared``. eventlog runs as ``eventlog serve`` (a subprocess, SQLite
with its defaults: ``synchronous=FULL``); the stream is filled first, then one shared
consumer per worker count is declared from the beginning and its workers (asyncio tasks
of one process, each with its own worker name, all through one
:class:`eventlog.client.AsyncClient`) loop ``claim(max=BATCH)`` then one ``ack`` of
the whole batch until every event is acked. Redis (``bench/peers/redis_groups.py``)
does the same with ``XREADGROUP COUNT BATCH`` and one ``XACK`` per batch, in one
consumer group, on ``redis-server`` with ``appendfsync always``. The rate is
events acked per second from the first claim to the last ack; "scaling" is the
rate with N workers over the rate with one.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time

from bench.common import eventlog_serve, free_port, payload, scratch_dir, server_process
from bench.report import Figure, Section
from eventlog import NewEvent
from eventlog.client import AsyncClient

__all__ = ["BATCH", "WORKERS", "run"]

WORKERS = (1, 4, 16)
BATCH = 100


async def fill(client: AsyncClient, stream: str, total: int) -> None:
    """Append ``total`` events of ~200 B in batches of 1000."""
    for start in range(0, total, 1000):
        await client.append_batch(
            stream,
            [NewEvent(type="job.created", data=payload(i)) for i in range(start, start + 1000)],
        )


async def claim_ack(client: AsyncClient, consumer: str, workers: int, total: int) -> float:
    """Events/s of ``workers`` workers claiming ``BATCH`` at a time and acking each batch."""
    acked = 0

    async def worker(name: str) -> None:
        nonlocal acked
        while acked < total:
            claims = await client.claim(consumer, worker=name, max=BATCH, wait=0.5)
            if claims:
                done = await client.ack(consumer, claims, worker=name)
                acked += done  # not `acked += await ...`: that reads acked before awaiting

    start = time.perf_counter()
    await asyncio.gather(*(worker(f"w{i}") for i in range(workers)))
    return total / (time.perf_counter() - start)


async def eventlog_rates(total: int) -> dict[int, float]:
    """The claim+ack rate of each worker count, on one ``eventlog serve``."""
    rates: dict[int, float] = {}
    with scratch_dir() as d:
        port = free_port()
        with server_process(eventlog_serve(d / "bench.db", port), port, d / "server.log") as url:
            async with AsyncClient(url, timeout=120) as client:
                for workers in WORKERS:
                    stream = f"jobs-{workers}"
                    await fill(client, stream, total)
                    consumer = f"workers-{workers}"
                    await client.declare_shared(consumer, stream, ack_wait=120, start="beginning")
                    rates[workers] = await claim_ack(client, consumer, workers, total)
                    info = await client.shared_info(consumer)
                    if info.ack_floor != total:
                        raise RuntimeError(f"{consumer}: ack floor {info.ack_floor} != {total}")
    return rates


async def run(quick: bool) -> Section:
    """eventlog's shared consumer and Redis consumer groups, each worker count in one run."""
    from bench.peers.common import Missing
    from bench.peers.redis_groups import redis_rates

    total, runs = (4_000, 1) if quick else (20_000, 3)
    load = os.getloadavg()[0]
    ours_runs: list[dict[int, float]] = []
    theirs_runs: list[dict[int, float]] = []
    extra: list[str] = []
    for _ in range(runs):  # alternating, so both sides see the same load on a shared machine
        ours_runs.append(await eventlog_rates(total))
        if not extra:
            try:
                theirs_runs.append(await redis_rates(total, WORKERS, BATCH))
            except Missing as exc:
                extra = [f"Redis skipped: {exc}.", ""]
    ours = {w: statistics.median(r[w] for r in ours_runs) for w in WORKERS}
    theirs = (
        {w: statistics.median(r[w] for r in theirs_runs) for w in WORKERS} if theirs_runs else {}
    )
    figures = [
        Figure(
            f"claim {BATCH} + ack, {w} worker{'s' if w > 1 else ''}",
            ours[w],
            theirs.get(w, float("nan")),
            note=f"scaling ×{ours[w] / ours[1]:.2f}"
            + (f"; Redis ×{theirs[w] / theirs[1]:.2f}" if theirs else ""),
        )
        for w in WORKERS
    ]
    return Section(
        key="shared",
        title="Shared consumers: claim + ack over HTTP, next to Redis consumer groups",
        conditions=(
            f"Medians of {runs} alternating runs; {total:,} events of ~200 B per worker "
            "count; workers are asyncio tasks of one client process (eventlog.client over "
            f"HTTP; redis-py's asyncio client), each claiming {BATCH} at a time and acking "
            "each batch in one request. eventlog: `eventlog serve` on SQLite, "
            f"synchronous=FULL. Baseline: Redis Streams XREADGROUP COUNT {BATCH} + XACK in "
            "one consumer group, `appendfsync always`. Client, server and Redis share the "
            "machine's cores. `python -m bench shared`."
        ),
        figures=figures,
        extra=[
            *extra,
            f"Load average when the run began: {load:.1f} on {os.cpu_count()} cores.",
            "",
        ],
    )


if __name__ == "__main__":
    section = asyncio.run(run("--quick" in sys.argv))
    section.print()
