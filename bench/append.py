"""Append throughput on SQLite (synchronous=FULL) next to raw stdlib sqlite3.

Cases:
- one producer appending batches of 1000 events (~200 B JSON each), against
  raw ``executemany`` of the same rows, 1000 per transaction;
- 256 concurrent producers each awaiting single-event durable appends (group
  commit), against raw sqlite3 committing one event per transaction.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from bench.common import (
    INSERT,
    concurrent_singles,
    encode,
    payload,
    raw_connection,
    raw_row,
    scratch_dir,
)
from bench.report import Figure, Section
from eventlog import EventLog, NewEvent
from eventlog.ids import uuid7s

PRODUCERS = 256


def raw_batches(total: int, batch: int, encode_each: bool = False) -> float:
    """Events/s of raw ``executemany`` batches; the payloads encoded once up front,
    or (``encode_each``) from the same Python values for every batch, as eventlog does."""
    with scratch_dir() as d:
        conn = raw_connection(d / "raw.db")
        values = [payload(i) for i in range(batch)]
        datas = [encode(v) for v in values]
        start = time.perf_counter()
        offset = 0
        while offset < total:
            if encode_each:
                datas = [encode(v) for v in values]
            now = time.time_ns() // 1000
            conn.execute("BEGIN IMMEDIATE")
            rows = zip(datas, uuid7s(len(datas)), strict=True)  # ids made as eventlog makes them
            conn.executemany(
                INSERT, [raw_row("s", offset + i, d_, now, id_) for i, (d_, id_) in enumerate(rows)]
            )
            conn.execute(
                "INSERT INTO streams (name, next_offset) VALUES ('s', ?) "
                "ON CONFLICT (name) DO UPDATE SET next_offset = excluded.next_offset",
                (offset + batch,),
            )
            conn.execute("COMMIT")
            offset += batch
        elapsed = time.perf_counter() - start
        conn.close()
    return total / elapsed


def raw_single_commits(total: int) -> float:
    with scratch_dir() as d:
        conn = raw_connection(d / "raw.db")
        data = encode(payload(0))
        start = time.perf_counter()
        for offset in range(total):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(INSERT, raw_row("s", offset, data, time.time_ns() // 1000))
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - start
        conn.close()
    return total / elapsed


async def log_batches(total: int, batch: int, as_dicts: bool = False) -> float:
    with scratch_dir() as d:
        async with EventLog.open(d / "log.db") as log:
            events: list[NewEvent] | list[dict[str, object]]
            if as_dicts:
                events = [{"type": "order.created", "data": payload(i)} for i in range(batch)]
            else:
                events = [NewEvent(type="order.created", data=payload(i)) for i in range(batch)]
            start = time.perf_counter()
            for _ in range(total // batch):
                await log.append_batch("s", events)
            return total / (time.perf_counter() - start)


@dataclass
class BatchRound:
    """One interleaved round of the batch case (events/s)."""

    raw: float
    new_events: float
    dicts: float
    raw_encoding: float


async def batch_rounds(rounds: int, total: int) -> list[BatchRound]:
    """Interleaved rounds: raw executemany, NewEvent batches, dict batches."""
    out = []
    for _ in range(rounds):
        raw = raw_batches(total, 1000)
        new_events = await log_batches(total, 1000)
        dicts = await log_batches(total, 1000, True)
        out.append(BatchRound(raw, new_events, dicts, raw_batches(total, 1000, True)))
    return out


def spread(ratios: list[float]) -> str:
    """``median× (min–max)`` of per-round ratios."""
    return f"{statistics.median(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f})"


async def log_concurrent_singles(producers: int, per_producer: int) -> tuple[float, float]:
    """Events/s of ``producers`` tasks each awaiting ``per_producer`` single appends,
    and the events per transaction the group commit made of them."""
    with scratch_dir() as d:
        async with EventLog.open(d / "log.db") as log:
            return await concurrent_singles(log, producers, per_producer)


def on_uvloop(producers: int, per_producer: int) -> tuple[float, float]:
    """:func:`log_concurrent_singles` on a uvloop event loop (the loop ``eventlog serve`` runs)."""
    import uvloop

    return uvloop.run(log_concurrent_singles(producers, per_producer))


@contextmanager
def cpu_burner() -> Iterator[None]:
    """A process spinning on one core (pinned to the first CPU) while the block runs."""
    code = "import os\nos.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\nwhile True: pass"
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        yield
    finally:
        proc.kill()
        proc.wait()


async def burner_rounds(rounds: int, singles: int, per_producer: int) -> list[tuple[float, float]]:
    """Interleaved rounds of (raw, eventlog) events/s with a CPU burner beside them."""
    out = []
    with cpu_burner():
        for _ in range(rounds):
            raw = raw_single_commits(singles)
            ours, _ = await log_concurrent_singles(PRODUCERS, per_producer)
            out.append((raw, ours))
    return out


@dataclass
class Round:
    """One interleaved round of the 256-producer case (events/s)."""

    raw: float
    asyncio: float
    uvloop: float
    per_txn: float


async def singles_rounds(rounds: int, singles: int, per_producer: int) -> list[Round]:
    """Interleaved rounds: raw commit-per-event, eventlog on asyncio's loop, on uvloop.

    Interleaving puts a neighbour's burst on every side instead of on one.
    """
    out = []
    for _ in range(rounds):
        raw = raw_single_commits(singles)
        ours, per_txn = await log_concurrent_singles(PRODUCERS, per_producer)
        uv, _ = await asyncio.to_thread(on_uvloop, PRODUCERS, per_producer)
        out.append(Round(raw, ours, uv, per_txn))
    return out


async def run(quick: bool) -> Section:
    total = 50_000 if quick else 200_000
    runs = 1 if quick else 5
    batches = await batch_rounds(runs, total)
    raw_batch = statistics.median(b.raw for b in batches)
    ours_batch = statistics.median(b.new_events for b in batches)
    ours_dicts = statistics.median(b.dicts for b in batches)
    raw_encoding = statistics.median(b.raw_encoding for b in batches)

    rounds = 1 if quick else 5
    per_producer = 40 if quick else 200
    results = await singles_rounds(rounds, 2_000 if quick else 5_000, per_producer)
    raw_single = max(r.raw for r in results)
    ours_single = max(r.asyncio for r in results)
    ours_uv = max(r.uvloop for r in results)
    per_txn = statistics.median(r.per_txn for r in results)
    burned = await burner_rounds(rounds, 2_000 if quick else 5_000, per_producer)
    events = PRODUCERS * per_producer

    def median_ratio(side: Callable[[Round], float]) -> str:
        return f"{statistics.median(side(r) / r.raw for r in results):.2f}×"

    return Section(
        key="append",
        title="Append throughput (SQLite, synchronous=FULL)",
        conditions=(
            f"Payload ~200 B JSON. The baseline is stdlib sqlite3 writing the same rows into "
            "the same schema (primary key and id index) with the same durability (WAL, "
            "synchronous=FULL), so the ratio is eventlog's own overhead. Batches: medians of "
            f"{runs} interleaved rounds (raw, `NewEvent`s, dicts). 256 producers: best of "
            f"{rounds} interleaved rounds, each running the baseline, eventlog on asyncio's "
            "default event loop, then eventlog on uvloop."
        ),
        figures=[
            Figure(
                "1 producer, batches of 1000 `NewEvent`s",
                ours_batch,
                raw_batch,
                target=0.9,
                note=(
                    f"{total:,} events; baseline: executemany 1000 per commit; medians of "
                    f"{runs} interleaved rounds; per-round ratios "
                    f"{spread([b.new_events / b.raw for b in batches])}"
                ),
            ),
            Figure(
                "1 producer, batches of 1000 dicts",
                ours_dicts,
                raw_batch,
                target=0.9,
                note=(
                    '`[{"type": ..., "data": ...}]`; per-round ratios '
                    f"{spread([b.dicts / b.raw for b in batches])}"
                ),
            ),
            Figure(
                "1 producer, batches of 1000 `NewEvent`s, vs raw encoding each payload",
                ours_batch,
                raw_encoding,
                note=(
                    "baseline: the same executemany, each batch's payloads JSON-encoded from "
                    "the same Python values (as eventlog must); per-round ratios "
                    f"{spread([b.new_events / b.raw_encoding for b in batches])}"
                ),
            ),
            Figure(
                "256 producers, single durable appends",
                ours_single,
                raw_single,
                target=20,
                note=(
                    f"asyncio's default loop; {events:,} events, {per_txn:.0f} events per "
                    f"commit (group commit); baseline: one commit per event; median of the "
                    f"rounds' ratios {median_ratio(lambda r: r.asyncio)}"
                ),
            ),
            Figure(
                "256 producers, single durable appends, on uvloop",
                ours_uv,
                raw_single,
                target=20,
                note=(
                    "the loop `eventlog serve` runs; median of the rounds' ratios "
                    f"{median_ratio(lambda r: r.uvloop)}"
                ),
            ),
        ],
        extra=[
            "With a CPU burner (a process spinning on one core, pinned to it) beside the "
            "benchmark: 256 producers on asyncio's loop vs raw commit-per-event, per-round "
            f"ratios {spread([o / r for r, o in burned])} (target ≥ 12×); rounds (events/s) "
            + ", ".join(f"{r:,.0f} / {o:,.0f}" for r, o in burned)
            + ".",
            "",
            "Each round, baseline / asyncio / uvloop (events/s): "
            + ", ".join(f"{r.raw:,.0f} / {r.asyncio:,.0f} / {r.uvloop:,.0f}" for r in results)
            + ".",
            "",
        ],
    )
