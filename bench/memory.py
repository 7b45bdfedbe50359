"""Memory stays flat: append then read 5,000,000 events, sampling the RSS.

Reported: the RSS after the first million events and the peak over the whole
run, for the append and the read phase. Flat means the peak stays close to
the first-million figure instead of growing with the stream.
"""

from __future__ import annotations

import time

import msgspec
import psutil

from bench.common import payload, scratch_dir
from bench.report import Section
from eventlog import EventLog, NewEvent


def rss_mib() -> float:
    return psutil.Process().memory_info().rss / (1 << 20)


async def run(quick: bool) -> Section:
    total = 1_000_000 if quick else 5_000_000
    batch = [NewEvent(type="order.created", data=payload(i)) for i in range(1000)]
    samples_append: list[tuple[int, float]] = []
    samples_read: list[tuple[int, float]] = []
    start_rss = rss_mib()
    with scratch_dir() as d:
        async with EventLog.open(d / "mem.db", synchronous="normal") as log:
            t0 = time.perf_counter()
            for i in range(total // 1000):
                await log.append_batch("s", batch)
                if i % 100 == 0:
                    samples_append.append(((i + 1) * 1000, rss_mib()))
            append_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            n = 0
            decode = msgspec.json.decode
            async for event in log.scan("s"):
                decode(event.data)
                n += 1
                if n % 100_000 == 0:
                    samples_read.append((n, rss_mib()))
            read_s = time.perf_counter() - t0
            assert n == total
            size = (d / "mem.db").stat().st_size / (1 << 20)

    def at(samples: list[tuple[int, float]], count: int) -> float:
        return next((rss for c, rss in samples if c >= count), samples[-1][1])

    first = min(1_000_000, total)
    lines = [
        f"- RSS at start: {start_rss:.0f} MiB; database file: {size:,.0f} MiB.",
        f"- Append {total:,} events in batches of 1000: {total / append_s:,.0f} events/s; "
        f"RSS after {first:,}: {at(samples_append, first):.0f} MiB, "
        f"peak: {max(r for _, r in samples_append):.0f} MiB.",
        f"- Read them all back with `scan` + decode: {total / read_s:,.0f} events/s; "
        f"RSS after {first:,}: {at(samples_read, first):.0f} MiB, "
        f"peak: {max(r for _, r in samples_read):.0f} MiB.",
    ]
    return Section(
        key="memory",
        title=f"Memory while appending and reading {total:,} events",
        conditions="synchronous=NORMAL to keep the run short; RSS sampled with psutil.",
        extra=lines,
    )
