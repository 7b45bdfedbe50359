"""Webhook delivery on PostgreSQL: one endpoint sent by 1 and by 3 ``eventlog serve``
processes, next to the bare aiohttp client posting the same bodies in the same run.

Two receivers, each in its own process (uvicorn, 204): the one of
:mod:`bench.delivery`, which answers at once, and a slow one that answers
after 50 ms (``python -m bench.delivery_pg PORT 0.05``), where what counts is
how many requests are in flight at once. The baseline is the one of
:mod:`bench.delivery` (one aiohttp session, 50 tasks). Each eventlog
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
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec

from bench.common import (
    eventlog_serve,
    free_port,
    payload,
    receiver_process,
    scratch_dir,
    serve_on_argv_port,
    server_process,
)
from bench.delivery import IN_FLIGHT, bare_aiohttp, receiver_app, start_receiver
from bench.postgres import scratch_db, server_url
from bench.report import Figure, Section
from eventlog import EventLog, NewEvent

__all__ = ["run"]

PROCESSES = (1, 3)
#: The slow receiver's answer time.
SLOW = 0.05


def slow_app(delay: float) -> Any:
    """:func:`~bench.delivery.receiver_app` answering ``delay`` seconds after the body."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def answer_later(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                await asyncio.sleep(delay)
            await send(message)

        await receiver_app(scope, receive, answer_later)

    return app


def start_slow_receiver(delay: float) -> tuple[subprocess.Popen[bytes], int]:
    """The slow receiver in its own process; its port."""
    return receiver_process("bench.delivery_pg", str(delay), post_timeout=2)


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


async def measure(
    admin_url: str, target: str, count: int, rounds: int
) -> tuple[dict[int, list[float]], list[float]]:
    """Rounds of 1 and 3 processes and of the bare client against one receiver."""
    rates: dict[int, list[float]] = {n: [] for n in PROCESSES}
    bare: list[float] = []
    for i in range(rounds):
        # Alternate the order: the machine's load drifts.
        order = PROCESSES if i % 2 == 0 else PROCESSES[::-1]
        bodies: list[bytes] = []
        for n in order:
            rate, bodies = await serve_rate(admin_url, target, count, n)
            rates[n].append(rate)
        bare.append((await bare_aiohttp(target, bodies))[0])
    return rates, bare


def _processes(n: int) -> str:
    return f"{n} process{'es' if n > 1 else ''}"


async def run(quick: bool) -> Section:
    count = 2000 if quick else 10_000
    rounds = 1 if quick else 3
    results = []
    load = os.getloadavg()[0]
    with server_url() as (admin_url, where):
        for label, start in (("answers at once", start_receiver), ("answers in 50 ms", None)):
            proc, port = start() if start is not None else start_slow_receiver(SLOW)
            try:
                target = f"http://127.0.0.1:{port}/hook"
                n = count if start is not None else count // 2
                results.append((label, n, *await measure(admin_url, target, n, rounds)))
            finally:
                proc.terminate()
                proc.wait()
    figures = []
    extra = []
    for label, n, rates, bare in results:
        bare_median = statistics.median(bare)
        for p in PROCESSES:
            figures.append(
                Figure(
                    f"{_processes(p)} on PostgreSQL vs bare aiohttp; receiver {label}",
                    statistics.median(rates[p]),
                    bare_median,
                    unit="req/s",
                    note=f"{n:,} events; {IN_FLIGHT} in flight per process; range "
                    f"{min(rates[p]):,.0f}-{max(rates[p]):,.0f}",
                )
            )
        extra.append(
            f"Receiver {label}, each round (req/s): "
            + "; ".join(
                f"{_processes(p)} " + ", ".join(f"{r:,.0f}" for r in rates[p]) for p in PROCESSES
            )
            + "; bare aiohttp "
            + ", ".join(f"{b:,.0f}" for b in bare)
            + "."
        )
        extra.append("")
    cores = Path("/proc/cpuinfo").read_text().count("processor")
    scaling = ", ".join(
        f"{statistics.median(rates[3]) / statistics.median(rates[1]):.2f}× receiver {label}"
        for label, _, rates, _ in results
    )
    extra.append(
        f"3 processes against 1: {scaling}. Everything shares {cores} cores (the receiver, "
        f"PostgreSQL, the serve processes; load average {load:.1f} when the run started): "
        "where the CPU is the bound, more processes on the same cores add no throughput; "
        f"what each adds is {IN_FLIGHT} more requests in flight "
        "(tests/consumers/delivery/test_pg_scaleout_serve.py)."
    )
    extra.append("")
    return Section(
        key="delivery-pg",
        title="Webhook delivery on PostgreSQL (1 and 3 processes)",
        conditions=(
            "Events of ~200 bytes, one loopback receiver (uvicorn+uvloop+httptools, 204) in "
            f"another process, {where}; medians of {rounds} round(s). eventlog: "
            "`eventlog serve` processes on one database, the endpoint created through the "
            "first with start=beginning, timed until every ledger row is delivered (feeding, "
            "claiming with SKIP LOCKED, signing, recording included). Baseline: one aiohttp "
            f"session, {IN_FLIGHT} tasks, the same bodies, same run, same receiver."
        ),
        figures=figures,
        extra=extra,
    )


if __name__ == "__main__":
    serve_on_argv_port(slow_app(float(sys.argv[2])), lifespan="off")
