"""Webhook delivery on PostgreSQL: one endpoint sent by 1 and by 3 ``eventlog serve``
processes, next to the bare aiohttp client posting the same bodies in the same run.

The receiver is the one of :mod:`bench.delivery` (uvicorn, 204, its own
process) and so is the baseline (one aiohttp session, 50 tasks). Each eventlog
round takes a fresh database on a throwaway PostgreSQL (fsync on), appends the
events, starts the processes (not timed), then creates the endpoint through
the first process with ``start = beginning`` and times until every delivery
is ``delivered`` in the ledger (read every 50 ms). One process feeds the
endpoint (its lease); every process claims and sends, up to ``max_in_flight``
= 50 each.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import msgspec

from bench.common import eventlog_serve, free_port, payload, scratch_dir, server_process
from bench.delivery import IN_FLIGHT, bare_aiohttp, start_receiver
from bench.postgres import scratch_db, server_url
from bench.report import Figure, Section
from eventlog import EventLog, NewEvent

__all__ = ["run"]

PROCESSES = (1, 3)


@contextlib.contextmanager
def servers(url: str, n: int) -> Iterator[list[str]]:
    """``n`` ``eventlog serve`` processes on ``url`` that may post to loopback."""
    with contextlib.ExitStack() as stack, scratch_dir() as tmp:
        config = tmp / "eventlog.toml"
        config.write_text("[webhooks]\nallow_private_targets = true\n")
        bases = []
        for i in range(n):
            port = free_port()
            command = [*eventlog_serve(url, port), "--config", str(config)]
            bases.append(stack.enter_context(server_process(command, port, tmp / f"{i}.log")))
        yield bases


async def delivered(url: str, count: int, poll: float = 0.05) -> None:
    """Return once ``count`` deliveries are ``delivered``."""
    conn = await asyncpg.connect(url)
    try:
        while True:
            done = await conn.fetchval(
                "SELECT count(*) FROM eventlog.webhook_deliveries WHERE status = 'delivered'"
            )
            if done >= count:
                return
            await asyncio.sleep(poll)
    finally:
        await conn.close()


async def serve_rate(admin_url: str, target: str, count: int, n: int) -> tuple[float, list[bytes]]:
    """Deliveries/s of ``n`` serve processes over ``count`` logged events; and the bodies."""
    async with scratch_db(admin_url) as url:
        async with EventLog.open(url) as log:
            batch = [NewEvent(type="order.created", data=payload(i)) for i in range(count)]
            for i in range(0, count, 1000):
                await log.append_batch("events", batch[i : i + 1000])
            bodies = [msgspec.json.encode(e) for e in await log.read("events", 0, count)]
        with servers(url, n) as bases:
            spec = {"id": "bench", "url": target, "max_in_flight": IN_FLIGHT, "start": "beginning"}
            async with httpx.AsyncClient(timeout=30) as client:
                start = time.perf_counter()
                created = await client.post(f"{bases[0]}/api/webhooks", json=spec)
                assert created.status_code == 201, created.text
                await delivered(url, count)
                elapsed = time.perf_counter() - start
    return count / elapsed, bodies


async def run(quick: bool) -> Section:
    count = 2000 if quick else 10_000
    rounds = 1 if quick else 3
    proc, port = start_receiver()
    target = f"http://127.0.0.1:{port}/hook"
    rates: dict[int, list[float]] = {n: [] for n in PROCESSES}
    bare: list[float] = []
    try:
        with server_url() as (admin_url, where):
            for i in range(rounds):
                # Alternate the order: the machine's load drifts.
                order = PROCESSES if i % 2 == 0 else PROCESSES[::-1]
                bodies: list[bytes] = []
                for n in order:
                    rate, bodies = await serve_rate(admin_url, target, count, n)
                    rates[n].append(rate)
                bare.append(await bare_aiohttp(target, bodies))
    finally:
        proc.terminate()
        proc.wait()
    bare_median = statistics.median(bare)
    figures = [
        Figure(
            f"deliveries by {n} `eventlog serve` process{'es' if n > 1 else ''} on PostgreSQL "
            "vs bare aiohttp",
            statistics.median(rates[n]),
            bare_median,
            unit="req/s",
            note=f"{IN_FLIGHT} in flight per process; range "
            f"{min(rates[n]):,.0f}-{max(rates[n]):,.0f}",
        )
        for n in PROCESSES
    ]
    return Section(
        key="delivery-pg",
        title="Webhook delivery on PostgreSQL (1 and 3 processes)",
        conditions=(
            f"{count:,} events of ~200 bytes, one loopback receiver (uvicorn+uvloop+httptools, "
            f"204) in another process, {where}; medians of {rounds} round(s). eventlog: "
            "`eventlog serve` processes on one database, the endpoint created through the "
            "first with start=beginning, timed until every ledger row is delivered (feeding, "
            "claiming with SKIP LOCKED, signing, recording included). Baseline: one aiohttp "
            f"session, {IN_FLIGHT} tasks, the same bodies, same run."
        ),
        figures=figures,
        extra=[
            "Each round (req/s): "
            + "; ".join(
                f"{n} process{'es' if n > 1 else ''} " + ", ".join(f"{r:,.0f}" for r in rates[n])
                for n in PROCESSES
            )
            + "; bare aiohttp "
            + ", ".join(f"{b:,.0f}" for b in bare)
            + f". Machine: {Path('/proc/cpuinfo').read_text().count('processor')} cores, "
            "shared with the receiver and PostgreSQL.",
            "",
        ],
    )
