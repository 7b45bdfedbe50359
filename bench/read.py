"""Sequential read with JSON decoding, next to raw stdlib sqlite3 paging.

Both sides read the same 1,000,000 rows of the same file, 1000 per page, and
decode every payload with msgspec. eventlog also builds an ``Event`` per row
(with its time, headers and id).
"""

from __future__ import annotations

import sqlite3
import statistics
import time
from pathlib import Path

import msgspec

from bench.common import payload, scratch_dir
from bench.report import Figure, Section
from eventlog import EventLog, NewEvent

PAGE = 1000


async def fill(path: Path, total: int) -> None:
    async with EventLog.open(path, synchronous="off") as log:
        batch = [NewEvent(type="order.created", data=payload(i)) for i in range(5000)]
        for _ in range(total // 5000):
            await log.append_batch("s", batch)


def raw_read(path: Path) -> tuple[float, int]:
    conn = sqlite3.connect(path)
    decode = msgspec.json.decode
    start = time.perf_counter()
    offset, n = 0, 0
    while True:
        rows = conn.execute(
            "SELECT offset, id, type, key, time_us, headers, data FROM events "
            "WHERE stream = ? AND offset >= ? ORDER BY offset LIMIT ?",
            ("s", offset, PAGE),
        ).fetchall()
        if not rows:
            break
        for row in rows:
            decode(row[6])
        n += len(rows)
        offset = rows[-1][0] + 1
    elapsed = time.perf_counter() - start
    conn.close()
    return n / elapsed, n


async def log_read_pages(path: Path) -> tuple[float, int]:
    """The paging API, like the baseline: ``log.read`` a page at a time."""
    decode = msgspec.json.decode
    async with EventLog.open(path, read_page=PAGE) as log:
        start = time.perf_counter()
        n = offset = 0
        while events := await log.read("s", offset, PAGE):
            for event in events:
                decode(event.data)
            n += len(events)
            offset = events[-1].offset + 1
        return n / (time.perf_counter() - start), n


async def log_scan(path: Path) -> tuple[float, int]:
    """The async iterator: one ``yield`` per event on top of the pages."""
    decode = msgspec.json.decode
    async with EventLog.open(path, read_page=PAGE) as log:
        start = time.perf_counter()
        n = 0
        async for event in log.scan("s"):
            decode(event.data)
            n += 1
        return n / (time.perf_counter() - start), n


async def run(quick: bool) -> Section:
    total = 200_000 if quick else 1_000_000
    runs = 1 if quick else 5
    rounds: list[tuple[float, float, float]] = []
    with scratch_dir() as d:
        path = d / "read.db"
        await fill(path, total)
        for _ in range(runs):  # interleaved, so a noisy neighbour hits all three
            raw, n = raw_read(path)
            assert n == total
            pages, n = await log_read_pages(path)
            assert n == total
            scan, n = await log_scan(path)
            assert n == total
            rounds.append((raw, pages, scan))

    def median(i: int) -> float:
        return statistics.median(r[i] for r in rounds)

    def spread(i: int) -> str:
        ratios = [r[i] / r[0] for r in rounds]
        return (
            f"per-round ratios: median {statistics.median(ratios):.2f}× "
            f"({min(ratios):.2f}–{max(ratios):.2f})"
        )

    return Section(
        key="read",
        title="Sequential read with JSON decoding (SQLite)",
        conditions=(
            f"Medians of {runs} interleaved rounds over {total:,} events of ~200 B, pages of "
            f"{PAGE}. Baseline: stdlib sqlite3 paging the same rows of the same file and "
            "decoding each payload with msgspec. eventlog builds an `Event` (time, headers, "
            "id) per row, on the loop's own connection (reads of up to 1000 events): "
            "`log.read` pages, and the `scan` async iterator."
        ),
        figures=[
            Figure(
                f"`log.read` pages, {total:,} events + decode",
                median(1),
                median(0),
                target=0.85,
                note=spread(1),
            ),
            Figure(
                f"`log.scan` iterator, {total:,} events + decode",
                median(2),
                median(0),
                note=f"adds one async-generator step per event; {spread(2)}",
            ),
        ],
    )
