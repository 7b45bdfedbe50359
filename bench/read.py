"""Sequential read with JSON decoding, next to raw stdlib sqlite3 paging.

Both sides read the same 1,000,000 rows of the same file, 1000 per page, and
decode every payload with msgspec. eventlog also builds an ``Event`` per row
(with its time, headers and id). The sides take turns every few pages, so
that the noise of a shared machine falls on all of them alike.
"""

from __future__ import annotations

import os
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


#: Pages each side reads before the next side takes its turn.
CHUNK_PAGES = 20


def raw_read(conn: sqlite3.Connection, start: int, stop: int) -> float:
    """Seconds to page through offsets ``[start, stop)`` with stdlib sqlite3 and decode them."""
    decode = msgspec.json.decode
    began = time.perf_counter()
    offset = start
    while offset < stop:
        rows = conn.execute(
            "SELECT offset, id, type, key, time_us, headers, data FROM events "
            "WHERE stream = ? AND offset >= ? ORDER BY offset LIMIT ?",
            ("s", offset, min(PAGE, stop - offset)),
        ).fetchall()
        for row in rows:
            decode(row[6])
        offset = rows[-1][0] + 1
    return time.perf_counter() - began


async def log_read_pages(log: EventLog, start: int, stop: int) -> float:
    """The paging API, like the baseline: ``log.read`` a page at a time."""
    decode = msgspec.json.decode
    began = time.perf_counter()
    offset = start
    while offset < stop:
        events = await log.read("s", offset, min(PAGE, stop - offset))
        for event in events:
            decode(event.data)
        offset = events[-1].offset + 1
    return time.perf_counter() - began


async def log_scan(log: EventLog, start: int, stop: int) -> float:
    """The async iterator: one ``yield`` per event on top of the pages."""
    decode = msgspec.json.decode
    began = time.perf_counter()
    async for event in log.scan("s", start, stop):
        decode(event.data)
    return time.perf_counter() - began


async def read_round(path: Path, total: int) -> tuple[float, float, float, float]:
    """One round: every side reads all ``total`` events (events/s of raw, pages, scan),
    and the CPU time of raw over that of the pages (all of it on this thread).

    The sides take turns every :data:`CHUNK_PAGES` pages, in a rotating order,
    so that a neighbour's burst on this shared machine lands on all three
    instead of on whichever side was running: the ratio is what they cost.
    """
    spent = [0.0, 0.0, 0.0]
    cpu = [0.0, 0.0]
    conn = sqlite3.connect(path)
    try:
        async with EventLog.open(path, read_page=PAGE) as log:
            for turn, start in enumerate(range(0, total, CHUNK_PAGES * PAGE)):
                stop = min(total, start + CHUNK_PAGES * PAGE)
                for side in (turn % 3, (turn + 1) % 3, (turn + 2) % 3):
                    began = time.thread_time()
                    if side == 0:
                        spent[0] += raw_read(conn, start, stop)
                        cpu[0] += time.thread_time() - began
                    elif side == 1:
                        spent[1] += await log_read_pages(log, start, stop)
                        cpu[1] += time.thread_time() - began
                    else:
                        spent[2] += await log_scan(log, start, stop)
    finally:
        conn.close()
    raw, pages, scan = (total / s for s in spent)
    return raw, pages, scan, cpu[0] / cpu[1]


async def run(quick: bool) -> Section:
    total = 200_000 if quick else 1_000_000
    runs = 1 if quick else 5
    rounds: list[tuple[float, float, float, float]] = []
    load_before = os.getloadavg()[0]
    with scratch_dir() as d:
        path = d / "read.db"
        await fill(path, total)
        for _ in range(runs):
            rounds.append(await read_round(path, total))
    load_after = os.getloadavg()[0]

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
            f"`python -m bench read`. Medians of {runs} rounds over {total:,} events of "
            f"~200 B, pages of {PAGE}. Baseline: stdlib sqlite3 paging the same rows of the "
            "same file and decoding each payload with msgspec. eventlog builds an `Event` "
            "(time, headers, id) per row, on the loop's own connection (reads of up to 1000 "
            "events): `log.read` pages, and the `scan` async iterator. Within a round the "
            f"three take turns every {CHUNK_PAGES} pages, in a rotating order, so that a "
            "neighbour's burst on this shared machine lands on all of them."
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
        extra=[
            f"Load average (1 min) {load_before:.1f} at the start, {load_after:.1f} at the end. "
            "CPU time of raw paging over that of `log.read` pages (both run wholly on the "
            "benchmark's thread, so descheduling does not count): per round "
            + ", ".join(f"{r[3]:.2f}×" for r in rounds)
            + ".",
            "",
        ],
    )
