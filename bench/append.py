"""Append throughput on SQLite (synchronous=FULL) next to raw stdlib sqlite3.

Cases:
- one producer appending batches of 1000 events (~200 B JSON each), against
  raw ``executemany`` of the same rows, 1000 per transaction;
- 256 concurrent producers each awaiting single-event durable appends (group
  commit), against raw sqlite3 committing one event per transaction.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

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
from eventlog.encoding import BatchItem
from eventlog.ids import uuid7s
from server.serve import GIL_SWITCH_INTERVAL

PRODUCERS = 256


class RawBatches:
    """Raw ``executemany`` batches into a file of eventlog's schema, one per :meth:`step`.

    The payloads are encoded once up front, or (``encode_each``) from the same
    Python values for every batch, as eventlog must.
    """

    def __init__(self, path: Path, batch: int, encode_each: bool = False) -> None:
        self.conn = raw_connection(path)
        self.values = [payload(i) for i in range(batch)]
        self.datas = [encode(v) for v in self.values]
        self.encode_each = encode_each
        self.offset = 0

    def step(self) -> float:
        """Write one batch in one transaction; the seconds it took."""
        start = time.perf_counter()
        conn, offset = self.conn, self.offset
        datas = [encode(v) for v in self.values] if self.encode_each else self.datas
        now = time.time_ns() // 1000
        conn.execute("BEGIN IMMEDIATE")
        rows = zip(datas, uuid7s(len(datas)), strict=True)  # ids made as eventlog makes them
        conn.executemany(
            INSERT, [raw_row("s", offset + i, d_, now, id_) for i, (d_, id_) in enumerate(rows)]
        )
        conn.execute(
            "INSERT INTO streams (name, next_offset) VALUES ('s', ?) "
            "ON CONFLICT (name) DO UPDATE SET next_offset = excluded.next_offset",
            (offset + len(datas),),
        )
        conn.execute("COMMIT")
        self.offset += len(datas)
        return time.perf_counter() - start


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


def batch_items(batch: int, as_dicts: bool) -> list[NewEvent] | list[dict[str, object]]:
    """A batch of ``NewEvent``s, or of the plain dicts a Python user writes first."""
    if as_dicts:
        dicts: list[dict[str, object]] = [
            {"type": "order.created", "data": payload(i)} for i in range(batch)
        ]
        return dicts
    return [NewEvent(type="order.created", data=payload(i)) for i in range(batch)]


@dataclass
class BatchRound:
    """One interleaved round of the batch case (events/s)."""

    raw: float
    new_events: float
    dicts: float
    raw_encoding: float


async def batch_round(total: int, batch: int) -> BatchRound:
    """Raw executemany, ``NewEvent`` batches, dict batches and raw encoding each
    batch, each into its own new file, taking turns batch by batch in a rotating
    order: a neighbour's burst (or a slow disk flush) on this shared machine
    lands on all four instead of on whichever was running."""
    with scratch_dir() as d:
        raw = RawBatches(d / "raw.db", batch)
        raw_encoding = RawBatches(d / "raw-enc.db", batch, encode_each=True)
        async with EventLog.open(d / "new.db") as new_log, EventLog.open(d / "dicts.db") as dicts:
            new_items, dict_items = batch_items(batch, False), batch_items(batch, True)

            async def appended(log: EventLog, items: Sequence[BatchItem]) -> float:
                start = time.perf_counter()
                await log.append_batch("s", items)
                return time.perf_counter() - start

            spent = [0.0] * 4
            for turn in range(total // batch):
                for side in ((turn + k) % 4 for k in range(4)):
                    if side == 0:
                        spent[0] += raw.step()
                    elif side == 1:
                        spent[1] += await appended(new_log, new_items)
                    elif side == 2:
                        spent[2] += await appended(dicts, dict_items)
                    else:
                        spent[3] += raw_encoding.step()
        raw.conn.close()
        raw_encoding.conn.close()
    done = total // batch * batch
    return BatchRound(done / spent[0], done / spent[1], done / spent[2], done / spent[3])


async def batch_rounds(rounds: int, total: int) -> list[BatchRound]:
    """Rounds of :func:`batch_round`, batches of 1000."""
    return [await batch_round(total, 1000) for _ in range(rounds)]


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
    # the same two with ``eventlog serve``'s GIL switch interval (0.1 ms, not 5 ms)
    asyncio_switch: float
    uvloop_switch: float


async def singles_rounds(rounds: int, singles: int, per_producer: int) -> list[Round]:
    """Interleaved rounds: raw commit-per-event, eventlog on asyncio's loop, on uvloop.

    Interleaving puts a neighbour's burst on every side instead of on one.
    """
    out = []
    default = sys.getswitchinterval()
    for _ in range(rounds):
        raw = raw_single_commits(singles)
        ours, per_txn = await log_concurrent_singles(PRODUCERS, per_producer)
        uv, _ = await asyncio.to_thread(on_uvloop, PRODUCERS, per_producer)
        sys.setswitchinterval(GIL_SWITCH_INTERVAL)
        try:
            switched, _ = await log_concurrent_singles(PRODUCERS, per_producer)
            uv_switched, _ = await asyncio.to_thread(on_uvloop, PRODUCERS, per_producer)
        finally:
            sys.setswitchinterval(default)
        out.append(Round(raw, ours, uv, per_txn, switched, uv_switched))
    return out


async def run(quick: bool) -> Section:
    total = 50_000 if quick else 200_000
    runs = 1 if quick else 5
    load_before = os.getloadavg()[0]
    batches = await batch_rounds(runs, total)
    load_batches = os.getloadavg()[0]
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
            "synchronous=FULL) and the same kind of id (UUIDv7, made as eventlog makes them), "
            "so the ratio is eventlog's own overhead. Batches: medians of "
            f"{runs} rounds of {total:,} events per side; within a round raw, `NewEvent`s, "
            "dicts and raw-encoding-each-batch take turns batch by batch, in a rotating order "
            f"(load average {load_before:.1f} before the batches, {load_batches:.1f} after). "
            "256 producers: best of "
            f"{rounds} interleaved rounds, each running the baseline, eventlog on asyncio's "
            "default event loop, eventlog on uvloop, then both again with the GIL switch "
            "interval `eventlog serve` sets (0.1 ms instead of Python's 5 ms)."
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
            Figure(
                "256 producers, asyncio's loop, GIL switch interval 0.1 ms",
                max(r.asyncio_switch for r in results),
                raw_single,
                note=(
                    "`sys.setswitchinterval(0.0001)`, as `eventlog serve` sets it: the writer "
                    "thread gets the GIL back between its statements sooner; median of the "
                    f"rounds' ratios {median_ratio(lambda r: r.asyncio_switch)}"
                ),
            ),
            Figure(
                "256 producers, uvloop, GIL switch interval 0.1 ms (as `eventlog serve` runs)",
                max(r.uvloop_switch for r in results),
                raw_single,
                note=f"median of the rounds' ratios {median_ratio(lambda r: r.uvloop_switch)}",
            ),
        ],
        extra=[
            "With a CPU burner (a process spinning on one core, pinned to it) beside the "
            "benchmark: 256 producers on asyncio's loop vs raw commit-per-event, per-round "
            f"ratios {spread([o / r for r, o in burned])} (target ≥ 12×); rounds (events/s) "
            + ", ".join(f"{r:,.0f} / {o:,.0f}" for r, o in burned)
            + ".",
            "",
            "Each round, baseline / asyncio / uvloop / the two with a 0.1 ms switch interval "
            "(events/s): "
            + ", ".join(
                f"{r.raw:,.0f} / {r.asyncio:,.0f} / {r.uvloop:,.0f} / {r.asyncio_switch:,.0f} "
                f"/ {r.uvloop_switch:,.0f}"
                for r in results
            )
            + ".",
            "",
        ],
    )
