"""How costs grow with the log: appends and random reads at 100k, 5M (and 20M) events.

One file per layout (every event in one stream, or spread over 1,000 streams)
grows through the sizes. At each size the same run measures, on that file:

- single durable appends (one awaited ``log.append`` at a time,
  synchronous=FULL) next to raw sqlite3 committing one event per transaction
  (read the head, insert, move the head, commit);
- batches of 1000 (``log.append_batch``) next to raw ``executemany`` of the
  same rows with the same head bookkeeping;
- reads of 100 events at random offsets (``log.read``) next to raw sqlite3
  reading the same offsets; each offset is read by both sides, the side going
  first alternating, so neither gets the other's warmed cache more often.

Appends take turns the same way, call by call, so that a moment of load on a
shared machine falls on both sides rather than on one side's whole run.

Raw sqlite3 writes the same rows eventlog writes (same schema, ids, head
updates) to the same file, so the log stays consistent while both grow it.
The growth of a figure is its value at the largest size over its value at
100k; eventlog's growth is compared with raw's. Files live under the system
temporary directory and are deleted at the end.
"""

from __future__ import annotations

import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import INSERT, encode, payload, raw_row
from bench.report import Section
from eventlog import EventLog, NewEvent

__all__ = ["run"]

SIZES = (100_000, 5_000_000)
LARGE = 20_000_000
SINGLES = 400  # single appends per side per round
BATCHES = 30  # batches of 1000 per side per round
READS = 5000  # random reads per side per round
ROUNDS = 5
READ_LIMIT = 100

_HEAD = "SELECT next_offset FROM streams WHERE name = ?"
_MOVE_HEAD = (
    "UPDATE streams SET next_offset = ?, bytes = bytes + ?, last_time_us = ? WHERE name = ?"
)
_READ = (
    "SELECT offset, id, type, key, time_us, headers, data FROM events "
    "WHERE stream = ? AND offset >= ? ORDER BY offset LIMIT ?"
)


@contextmanager
def scratch() -> Iterator[Path]:
    """A directory under the system temporary directory, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="eventlog-scale-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def stream_names(streams: int) -> list[str]:
    return ["s"] if streams == 1 else [f"s{i:04d}" for i in range(streams)]


_FILL = """WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM c WHERE x + 1 < ?3)
INSERT INTO events (stream, offset, id, type, key, time_us, headers, data)
SELECT ?1, ?2 + x, printf('%016x-%s', ?4 + x, lower(hex(randomblob(10)))), 'order.created',
    NULL, ?5, NULL, CAST(printf(?6, ?2 + x) AS BLOB)
FROM c"""
_FILL_HEAD = (
    "INSERT INTO streams (name, next_offset, bytes, last_time_us) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (name) DO UPDATE SET next_offset = excluded.next_offset, "
    "bytes = bytes + excluded.bytes, last_time_us = excluded.last_time_us"
)


async def grow(path: Path, streams: list[str], target: int) -> None:
    """Add events until the file holds ``target``: rows like eventlog's (time-ordered
    unique ids, ~200 B JSON payloads, head bookkeeping) made by SQLite itself, so
    that 20M events take minutes, not tens of minutes."""
    async with EventLog.open(path):  # the schema, WAL, page size
        pass
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    heads = dict(conn.execute("SELECT name, next_offset FROM streams").fetchall())
    have = sum(heads.values())
    template = encode(payload(0)).decode().replace("ord-0000000000", "ord-%010d")
    size = len(template) - 4 + 10
    per_stream = max(1, (target - have) // len(streams))
    step = max(1, min(per_stream, 1_000_000 // len(streams)))
    done = 0
    while done < per_stream:
        n = min(step, per_stream - done)
        now_us = time.time_ns() // 1000
        conn.execute("BEGIN IMMEDIATE")
        for stream in streams:
            head = heads.get(stream, 0)
            conn.execute(_FILL, (stream, head, n, now_us * 16, now_us, template))
            conn.execute(_FILL_HEAD, (stream, head + n, n * size, now_us))
            heads[stream] = head + n
        conn.execute("COMMIT")
        done += n
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


# -- raw sqlite3 on the same file ---------------------------------------------------


def raw_connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA busy_timeout = 10000")
    return conn


def raw_write(conn: sqlite3.Connection, stream: str, datas: list[bytes]) -> None:
    """One transaction appending ``datas`` to ``stream`` as the log would."""
    now = time.time_ns() // 1000
    conn.execute("BEGIN IMMEDIATE")
    head = conn.execute(_HEAD, (stream,)).fetchone()[0]
    if len(datas) == 1:
        conn.execute(INSERT, raw_row(stream, head, datas[0], now))
    else:
        conn.executemany(INSERT, [raw_row(stream, head + i, d, now) for i, d in enumerate(datas)])
    conn.execute(_MOVE_HEAD, (head + len(datas), sum(map(len, datas)), now, stream))
    conn.execute("COMMIT")


async def appends(path: Path, streams: list[str], calls: int, size: int) -> tuple[float, float]:
    """Events/s of ``calls`` awaited appends of ``size`` events (1: ``log.append``),
    eventlog's and raw's, call by call on the same file, the side going first
    alternating: both meet the same moments of a shared machine. Safe on one
    stream: eventlog's writer finds that raw moved the head it remembered (its
    guarded statement is refused) and writes the transaction again from the
    stored head, a cost raw's own appends put on each of eventlog's here."""
    conn = raw_connect(path)
    datas = [encode(payload(i)) for i in range(size)]
    batch = [NewEvent(type="order.created", data=payload(i)) for i in range(size)]
    data = payload(0)
    spent = [0.0, 0.0]
    clock = time.perf_counter
    async with EventLog.open(path) as log:
        for i in range(calls):
            stream = streams[i % len(streams)]
            for side in (0, 1) if i % 2 else (1, 0):
                start = clock()
                if side:
                    raw_write(conn, stream, datas)
                elif size == 1:
                    await log.append(stream, data, type="order.created")
                else:
                    await log.append_batch(stream, batch)
                spent[side] += clock() - start
    conn.close()
    return calls * size / spent[0], calls * size / spent[1]


async def reads(path: Path, targets: list[tuple[str, int]]) -> tuple[list[float], list[float]]:
    """Latencies (µs) of reading each target with ``log.read`` and with raw sqlite3."""
    raw = sqlite3.connect(path)
    ours: list[float] = []
    theirs: list[float] = []
    clock = time.perf_counter
    async with EventLog.open(path) as log:
        for i, (stream, offset) in enumerate(targets):
            for side in (0, 1) if i % 2 else (1, 0):
                start = clock()
                if side:
                    rows = raw.execute(_READ, (stream, offset, READ_LIMIT)).fetchall()
                    theirs.append((clock() - start) * 1e6)
                    assert len(rows) == READ_LIMIT
                else:
                    events = await log.read(stream, offset, READ_LIMIT)
                    ours.append((clock() - start) * 1e6)
                    assert len(events) == READ_LIMIT
    raw.close()
    return ours, theirs


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- one layout through the sizes ---------------------------------------------------


@dataclass
class Point:
    """Figures at one size: eventlog's and raw's, medians of the rounds."""

    size: int
    figures: dict[str, tuple[float, float]] = field(default_factory=dict)
    # eventlog's cost over raw's, the median of the rounds' pairs: steadier than
    # the two medians when the machine's load moves between sizes
    relative: dict[str, float] = field(default_factory=dict)


METRICS = {
    "single": ("single durable appends", "events/s", True),
    "batch": ("batches of 1000", "events/s", True),
    "p50": ("random read of 100, p50", "µs", False),
    "p99": ("random read of 100, p99", "µs", False),
}


async def measure(path: Path, streams: list[str], rounds: int, scale_n: float) -> Point:
    per_stream = min([(await bounds(path, s))[1] for s in streams])
    got: dict[str, list[tuple[float, float]]] = {m: [] for m in METRICS}
    rng = random.Random(7)
    singles, batches, n_reads = (max(20, int(x * scale_n)) for x in (SINGLES, BATCHES, READS))
    for _ in range(rounds):
        got["single"].append(await appends(path, streams, singles, 1))
        got["batch"].append(await appends(path, streams, batches, 1000))
        targets = [
            (rng.choice(streams), rng.randrange(0, per_stream - READ_LIMIT + 1))
            for _ in range(n_reads)
        ]
        ours, theirs = await reads(path, targets)
        got["p50"].append((quantile(ours, 0.5), quantile(theirs, 0.5)))
        got["p99"].append((quantile(ours, 0.99), quantile(theirs, 0.99)))
    point = Point(sum([(await bounds(path, s))[1] for s in streams]))
    for metric, pairs in got.items():
        point.figures[metric] = (
            statistics.median(p[0] for p in pairs),
            statistics.median(p[1] for p in pairs),
        )
        higher_better = METRICS[metric][2]
        point.relative[metric] = statistics.median(
            r / o if higher_better else o / r for o, r in pairs
        )
    return point


async def bounds(path: Path, stream: str) -> tuple[int, int]:
    async with EventLog.open(path) as log:
        return await log.bounds(stream)


async def layout(streams: int, sizes: tuple[int, ...], rounds: int, n: float) -> list[Point]:
    names = stream_names(streams)
    points = []
    with scratch() as d:
        path = d / "scale.db"
        for size in sizes:
            start = time.perf_counter()
            await grow(path, names, size)
            grown = time.perf_counter() - start
            point = await measure(path, names, rounds, n)
            points.append(point)
            print(
                f"scale: {streams} stream(s), {point.size:,} events (grown in {grown:.0f} s): "
                + ", ".join(f"{m} {o:,.0f}/{r:,.0f}" for m, (o, r) in point.figures.items()),
                flush=True,
            )
    return points


def _growth(first: Point, last: Point, metric: str, side: int, higher_better: bool) -> float:
    """Growth of a cost: time per event for rates, the latency itself for reads."""
    a, b = first.figures[metric][side], last.figures[metric][side]
    return a / b if higher_better else b / a


def growth_rows(streams: int, points: list[Point]) -> list[str]:
    """Markdown rows: each metric at each size, eventlog / raw, and the growth."""
    first, last = points[0], points[-1]
    rows = []
    for metric, (label, unit, higher_better) in METRICS.items():
        cells = [f"{p.figures[metric][0]:,.0f} / {p.figures[metric][1]:,.0f}" for p in points]

        ours, raw = (_growth(first, last, metric, side, higher_better) for side in (0, 1))
        relative = last.relative[metric] / first.relative[metric]
        verdict = "met" if relative <= 1.2 else "**not met**"
        rows.append(
            f"| {streams:,} | {label} ({unit}) | {' | '.join(cells)} "
            f"| {ours:.2f}× | {raw:.2f}× | {relative:.2f}× | {verdict} |"
        )
    return rows


async def run(quick: bool, large: bool = False, streams: tuple[int, ...] = (1, 1000)) -> Section:
    """The scenario: each layout through the sizes (20M only with ``large``)."""
    sizes = (100_000, 300_000) if quick else SIZES + ((LARGE,) if large else ())
    rounds = 1 if quick else ROUNDS
    n = 0.25 if quick else 1.0
    header = " | ".join(f"{s:,}" for s in sizes)
    lines = [
        f"| streams | figure (eventlog / raw sqlite3) | {header} "
        f"| eventlog's cost growth {sizes[0]:,}→{sizes[-1]:,} | raw's "
        "| eventlog's over raw's, paired | ≤ raw's + 20% |",
        "|---|---|" + "---|" * len(sizes) + "---|---|---|---|",
    ]
    for count in streams:
        lines += growth_rows(count, await layout(count, sizes, rounds, n))
    noun = "stream" if streams == (1,) else "streams"
    key = "scale" if streams == (1, 1000) else "scale-" + "-".join(map(str, streams))
    if large:
        key += "-large"
    return Section(
        key=key,
        title="How cost grows with the log"
        + ("" if streams == (1, 1000) else f" ({', '.join(map(str, streams))} {noun})"),
        conditions=(
            f"One SQLite file per layout grows through the sizes; at each size, "
            f"{rounds} round{'s' if rounds != 1 else ''} of: {SINGLES} single durable "
            f"appends (synchronous=FULL, one awaited at a time), {BATCHES} batches of 1000, "
            f"{READS} reads of "
            f"{READ_LIMIT} events at random offsets; eventlog next to raw sqlite3 writing "
            "the same rows (and head updates) to the same file and reading the same offsets, "
            "call by call (each append, batch and offset done by both, which side goes first "
            "alternating, so both meet the same moments of the machine). Medians of the "
            "rounds. Growth is the cost (time per event, or latency) at the largest size "
            "over the cost at the smallest; the verdict takes eventlog's cost over raw's in "
            "each round (the pair measured in the same moments), the median of the rounds, "
            "and compares that at the largest size with the smallest. `python -m bench scale` "
            "(add `--large` for 20,000,000 events)."
        ),
        extra=[*lines, ""],
    )
