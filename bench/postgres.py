"""PostgreSQL: append and read through eventlog next to raw asyncpg, same run, same server.

Uses ``EVENTLOG_BENCH_PG_URL`` (a database it may fill) if set, else starts a
throwaway PostgreSQL cluster from the machine's binaries with fsync on
(``tests/pg.py``). Cases:

- one producer appending batches of 1000 events, against raw asyncpg doing the
  same writes (lock the head row, insert 1000 rows, move the head, commit)
  with ``copy_records_to_table`` and with ``executemany``;
- 256 concurrent producers awaiting single durable appends (group commit),
  against raw asyncpg committing one row per transaction on 16 connections;
- HTTP appends (batches of 100, 48 concurrent clients) through one and through
  three ``eventlog serve`` processes sharing the database, against the same
  events written by raw asyncpg ``copy_records_to_table`` in batches of 100;
- sequential read with decoding through ``EventLog.scan``, against raw asyncpg
  paging the same rows; and HTTP reads through one and three servers;
- the three insert methods of the backend by rows per transaction (a table).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import TypeVar

import aiohttp
import asyncpg
import msgspec

from bench.common import (
    concurrent_singles,
    eventlog_serve,
    free_port,
    payload,
    scratch_dir,
    server_process,
)
from bench.pgcluster import PgCluster, find_bin_dir
from bench.report import Figure, Section
from eventlog import EventLog, NewEvent
from eventlog.ids import uuid7
from eventlog.storage.base import AppendRequest, PendingEvent
from eventlog.storage.postgres import InsertMethod, PostgresStorage

T = TypeVar("T")
PAGE = 1000
_encode = msgspec.json.encode
_COLUMNS = ("stream", "offset", "id", "type", "key", "time_us", "headers", "data")


@contextlib.contextmanager
def server_url() -> Iterator[tuple[str, str]]:
    """``(url of a scratch database creator, description)``."""
    given = os.environ.get("EVENTLOG_BENCH_PG_URL")
    if given:
        yield given, "the server at EVENTLOG_BENCH_PG_URL"
        return
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise SystemExit("bench postgres: no PostgreSQL binaries; set EVENTLOG_BENCH_PG_URL")
    cluster = PgCluster(bin_dir, fsync=True)
    cluster.start()
    try:
        yield cluster.url(), f"a throwaway PostgreSQL {bin_dir.parent.name} (fsync on)"
    finally:
        cluster.stop()


_counter = iter(range(1, 1_000_000))


@contextlib.contextmanager
def serve(url: str, n: int) -> Iterator[list[str]]:
    """``n`` ``eventlog serve`` processes on the database ``url``; their base URLs."""
    with contextlib.ExitStack() as stack, scratch_dir() as logs:
        bases = []
        for i in range(n):
            port = free_port()
            command = eventlog_serve(url, port, access_log=True)
            bases.append(stack.enter_context(server_process(command, port, logs / f"{i}.log")))
        yield bases


@contextlib.asynccontextmanager
async def scratch_db(admin_url: str) -> AsyncIterator[str]:
    """A fresh database, dropped afterwards."""
    name = f"bench_{os.getpid()}_{next(_counter)}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        base, _, _ = admin_url.rpartition("/")
        try:
            yield f"{base}/{name}"
        finally:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def prepared_schema(url: str) -> None:
    storage = PostgresStorage(url)
    await storage.open()
    await storage.close()


def rows(stream: str, first: int, datas: list[bytes], now_us: int) -> list[tuple[object, ...]]:
    return [
        (stream, first + i, uuid7(), "order.created", None, now_us, None, d)
        for i, d in enumerate(datas)
    ]


async def raw_batches(url: str, total: int, batch: int, method: str) -> float:
    """Raw asyncpg: the same transaction shape as eventlog's, no eventlog code."""
    await prepared_schema(url)
    conn = await asyncpg.connect(url)
    datas = [_encode(payload(i)) for i in range(batch)]
    insert = (
        'INSERT INTO eventlog.events (stream, "offset", id, type, key, time_us, headers, data) '
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    )
    await conn.execute("INSERT INTO eventlog.streams (name, next_offset) VALUES ('s', 0)")
    start = time.perf_counter()
    for _ in range(total // batch):
        async with conn.transaction():
            head = await conn.fetchval(
                "SELECT next_offset FROM eventlog.streams WHERE name = 's' FOR UPDATE"
            )
            records = rows("s", head, datas, time.time_ns() // 1000)
            if method == "copy":
                await conn.copy_records_to_table(
                    "events", records=records, columns=_COLUMNS, schema_name="eventlog"
                )
            else:
                await conn.executemany(insert, records)
            await conn.execute(
                "UPDATE eventlog.streams SET next_offset = $1 WHERE name = 's'", head + batch
            )
    elapsed = time.perf_counter() - start
    await conn.close()
    return total / elapsed


async def log_batches(url: str, total: int, batch: int) -> float:
    async with EventLog.open(url, retention_interval=0) as log:
        events = [NewEvent(type="order.created", data=payload(i)) for i in range(batch)]
        start = time.perf_counter()
        for _ in range(total // batch):
            await log.append_batch("s", events)
        return total / (time.perf_counter() - start)


async def raw_single_commits(url: str, total: int, connections: int) -> float:
    await prepared_schema(url)
    data = _encode(payload(0))
    conns = [await asyncpg.connect(url) for _ in range(connections)]
    insert = (
        'INSERT INTO eventlog.events (stream, "offset", id, type, key, time_us, headers, data) '
        "VALUES ($1, $2, $3, 'order.created', NULL, $4, NULL, $5)"
    )

    async def worker(n: int, conn: asyncpg.Connection) -> None:
        for offset in range(total // connections):
            await conn.execute(insert, f"s{n}", offset, uuid7(), time.time_ns() // 1000, data)

    start = time.perf_counter()
    await asyncio.gather(*(worker(n, c) for n, c in enumerate(conns)))
    elapsed = time.perf_counter() - start
    for conn in conns:
        await conn.close()
    return total / elapsed


async def log_concurrent_singles(url: str, producers: int, each: int) -> tuple[float, float]:
    async with EventLog.open(url, retention_interval=0) as log:
        return await concurrent_singles(log, producers, each)


async def http_appends(urls: list[str], total: int, batch: int, clients: int) -> float:
    body = _encode([{"type": "order.created", "data": payload(i)} for i in range(batch)])
    per_client = total // batch // clients
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=clients),
        headers={"content-type": "application/json"},
    ) as session:

        async def client(n: int) -> None:
            base = urls[n % len(urls)]
            for _ in range(per_client):
                async with session.post(f"{base}/api/streams/s/events", data=body) as r:
                    if r.status != 201:
                        raise RuntimeError(f"append failed: {r.status} {await r.text()}")

        start = time.perf_counter()
        await asyncio.gather(*(client(n) for n in range(clients)))
        return per_client * clients * batch / (time.perf_counter() - start)


async def http_reads(urls: list[str], total: int) -> float:
    """Each server's clients read a disjoint share of the stream, page by page."""
    share = total // len(urls)
    decode = msgspec.json.decode
    async with aiohttp.ClientSession() as session:

        async def reader(n: int) -> int:
            offset, stop, got = n * share, (n + 1) * share, 0
            while offset < stop:
                async with session.get(
                    f"{urls[n]}/api/streams/s/events",
                    params={"from": offset, "limit": min(PAGE, stop - offset)},
                ) as r:
                    page = decode(await r.read())
                got += len(page["events"])
                offset = page["next_offset"]
            return got

        start = time.perf_counter()
        counts = await asyncio.gather(*(reader(n) for n in range(len(urls))))
        return sum(counts) / (time.perf_counter() - start)


async def raw_read(url: str) -> tuple[float, int]:
    conn = await asyncpg.connect(url)
    decode = msgspec.json.decode
    start = time.perf_counter()
    offset, n = 0, 0
    while True:
        page = await conn.fetch(
            'SELECT "offset", id, type, key, time_us, headers, data FROM eventlog.events '
            'WHERE stream = $1 AND "offset" >= $2 ORDER BY "offset" LIMIT $3',
            "s",
            offset,
            PAGE,
        )
        if not page:
            break
        for row in page:
            decode(row[6])
        n += len(page)
        offset = page[-1][0] + 1
    elapsed = time.perf_counter() - start
    await conn.close()
    return n / elapsed, n


async def log_read(url: str) -> tuple[float, int]:
    decode = msgspec.json.decode
    async with EventLog.open(url, read_page=PAGE, retention_interval=0) as log:
        start = time.perf_counter()
        n = 0
        async for event in log.scan("s"):
            decode(event.data)
            n += 1
        return n / (time.perf_counter() - start), n


async def insert_rate(url: str, method: InsertMethod, size: int) -> float:
    """Backend ``append()`` rate with one insert method and ``size`` rows per transaction."""
    data = _encode(payload(0))
    storage = PostgresStorage(url, insert=method)
    await storage.open()
    try:
        total = max(size * 20, 2_000)
        start = time.perf_counter()
        for _ in range(total // size):
            events = [
                PendingEvent(id=uuid7(), id_given=False, type="t", key=None, headers={}, data=data)
                for _ in range(size)
            ]
            await storage.append([AppendRequest(stream="s", events=events)], datetime.now(UTC))
        return total // size * size / (time.perf_counter() - start)
    finally:
        await storage.close()


async def insert_methods(admin: str, sizes: list[int], runs: int) -> list[str]:
    """Backend append rate by insert method and rows per transaction (markdown lines).

    The methods take turns within each run, so a noisy neighbour hurts them alike.
    """
    methods: tuple[InsertMethod, ...] = ("unnest", "executemany", "copy")
    lines = [
        "Backend `append()` rate by insert method and rows per transaction "
        f"(events/s, one writer, best of {runs} interleaved runs):",
        "",
        "| rows per txn | unnest | executemany | copy |",
        "|---|---|---|---|",
    ]
    for size in sizes:
        rates = dict.fromkeys(methods, 0.0)
        for _ in range(runs):
            for method in methods:
                async with scratch_db(admin) as url:
                    rates[method] = max(rates[method], await insert_rate(url, method, size))
        lines.append(f"| {size} | {' | '.join(f'{rates[m]:,.0f}' for m in methods)} |")
    return [*lines, ""]


_LOCKS = {
    "head row `SELECT ... FOR UPDATE` (chosen)": (
        "SELECT next_offset FROM eventlog.streams WHERE name = $1 FOR UPDATE",
    ),
    "`pg_advisory_xact_lock(hash(stream))` + head row read": (
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        "SELECT next_offset FROM eventlog.streams WHERE name = $1",
    ),
    "`pg_advisory_xact_lock` + `max(offset)` from events": (
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        'SELECT coalesce(max("offset") + 1, 0) FROM eventlog.events WHERE stream = $1',
    ),
}


async def contended_rate(
    url: str, statements: tuple[str, ...], writers: int, batch: int, seconds: float
) -> float:
    """Events/s of ``writers`` connections appending to one stream under one locking scheme."""
    data = _encode(payload(0))
    insert = (
        'INSERT INTO eventlog.events (stream, "offset", id, type, key, time_us, headers, data) '
        "SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], "
        "$6::bigint[], $7::bytea[], $8::bytea[])"
    )
    await prepared_schema(url)
    conns = [await asyncpg.connect(url) for _ in range(writers)]
    await conns[0].execute("INSERT INTO eventlog.streams (name, next_offset) VALUES ('s', 0)")
    done = 0
    stop = time.perf_counter() + seconds

    async def writer(conn: asyncpg.Connection) -> None:
        nonlocal done
        while time.perf_counter() < stop:
            async with conn.transaction():
                head = 0
                for statement in statements:
                    head = await conn.fetchval(statement, "s")
                columns = list(zip(*rows("s", head, [data] * batch, 0), strict=True))
                await conn.execute(insert, *[list(c) for c in columns])
                await conn.execute(
                    "UPDATE eventlog.streams SET next_offset = $1 WHERE name = 's'", head + batch
                )
            done += batch

    start = time.perf_counter()
    await asyncio.gather(*(writer(c) for c in conns))
    rate = done / (time.perf_counter() - start)
    count = await conns[0].fetchval("SELECT count(*) FROM eventlog.events")
    assert count == done, "offsets collided"
    for conn in conns:
        await conn.close()
    return rate


async def locking_strategies(
    admin: str, writers: int, batch: int, seconds: float, runs: int
) -> list[str]:
    """Contended appends to one stream from several connections, per locking strategy
    (the strategies take turns within each run)."""
    lines = [
        f"Gapless offsets under contention: {writers} connections appending batches of "
        f"{batch} to one stream, {seconds:g} s per case (events/s, all committed; best of "
        f"{runs} interleaved runs):",
        "",
        "| per-stream lock | events/s |",
        "|---|---|",
    ]
    best_rates = dict.fromkeys(_LOCKS, 0.0)
    for _ in range(runs):
        for name, statements in _LOCKS.items():
            async with scratch_db(admin) as url:
                rate = await contended_rate(url, statements, writers, batch, seconds)
            best_rates[name] = max(best_rates[name], rate)
    lines += [f"| {name} | {rate:,.0f} |" for name, rate in best_rates.items()]
    return [*lines, ""]


async def best(runs: int, fn: Callable[[], Awaitable[float]]) -> float:
    """The best rate of several runs: the least disturbed by neighbours."""
    rates = [await fn() for _ in range(runs)]
    return max(rates)


async def interleaved(runs: int, *fns: Callable[[], Awaitable[float]]) -> list[float]:
    """The best rate of each function over ``runs`` rounds in which they take turns,
    so load from neighbours on the shared machine hits eventlog and baselines alike."""
    rates = [0.0] * len(fns)
    for _ in range(runs):
        for i, fn in enumerate(fns):
            rates[i] = max(rates[i], await fn())
    return rates


async def run(quick: bool) -> Section:
    runs = 1 if quick else 3
    total = 50_000 if quick else 200_000
    with server_url() as (admin, where):
        figures: list[Figure] = []

        async def fresh(fn: Callable[[str], Awaitable[T]]) -> T:
            async with scratch_db(admin) as url:
                return await fn(url)

        ours, copy, many = await interleaved(
            runs,
            lambda: fresh(lambda u: log_batches(u, total, 1000)),
            lambda: fresh(lambda u: raw_batches(u, total, 1000, "copy")),
            lambda: fresh(lambda u: raw_batches(u, total, 1000, "many")),
        )
        figures.append(Figure("1 producer, batches of 1000", ours, copy, note="baseline: raw COPY"))
        figures.append(
            Figure("1 producer, batches of 1000", ours, many, note="baseline: raw executemany")
        )

        singles = 4_000 if quick else 16_000
        each = singles // 256
        rate, per_txn, raw_single = 0.0, 0.0, 0.0
        for _ in range(runs):  # interleaved with the baseline
            r, t = await fresh(lambda u: log_concurrent_singles(u, 256, each))
            if r > rate:
                rate, per_txn = r, t
            raw_single = max(raw_single, await fresh(lambda u: raw_single_commits(u, singles, 16)))
        figures.append(
            Figure(
                "256 producers, single durable appends",
                rate,
                raw_single,
                note=f"group commit: {per_txn:.0f} events/txn; "
                "baseline: 1 row per commit on 16 connections",
            )
        )

        http_total = 20_000 if quick else 60_000
        read_total = 100_000 if quick else 300_000
        for n in (1, 3):
            async with scratch_db(admin) as url:
                await prepared_schema(url)
                with serve(url, n) as bases:
                    rate = copy100 = 0.0
                    for _ in range(runs):  # interleaved with the baseline
                        rate = max(rate, await http_appends(bases, http_total, 100, 48))
                        copy100 = max(
                            copy100,
                            await fresh(lambda u: raw_batches(u, http_total, 100, "copy")),
                        )
                figures.append(
                    Figure(
                        f"HTTP appends, {n} server process{'es' if n > 1 else ''}",
                        rate,
                        copy100,
                        note="batches of 100, 48 clients; baseline: raw COPY 100/txn",
                    )
                )

        async with scratch_db(admin) as url:
            async with EventLog.open(url, retention_interval=0) as log:
                batch = [NewEvent(type="order.created", data=payload(i)) for i in range(5000)]
                for _ in range(read_total // 5000):
                    await log.append_batch("s", batch)
            raw_r = ours_r = 0.0
            for _ in range(runs):
                raw_r = max(raw_r, (await raw_read(url))[0])
                ours_r = max(ours_r, (await log_read(url))[0])
            figures.append(
                Figure(
                    f"scan {read_total:,} events + decode",
                    ours_r,
                    raw_r,
                    note="baseline: raw asyncpg pages of 1000 + decode",
                )
            )
            for n in (1, 3):
                with serve(url, n) as bases:
                    rate = raw_n = 0.0
                    for _ in range(runs):  # interleaved with the baseline
                        rate = max(rate, await http_reads(bases, read_total))
                        raw_n = max(raw_n, (await raw_read(url))[0])
                figures.append(
                    Figure(
                        f"HTTP reads, {n} server process{'es' if n > 1 else ''}",
                        rate,
                        raw_n,
                        note="pages of 1000; baseline: raw asyncpg pages + decode",
                    )
                )
        table = await insert_methods(admin, [1, 10, 100, 1000] if not quick else [1, 1000], runs)
        table += await locking_strategies(admin, 4, 10, 2.0 if quick else 4.0, runs)
    return Section(
        key="postgres",
        title="PostgreSQL: append and read next to raw asyncpg",
        conditions=(
            f"Best of {runs} runs on {where}, each case interleaved with its baseline, over "
            "loopback TCP; clients, servers and "
            "PostgreSQL share the machine's cores. Payload ~200 B JSON. Baselines write the "
            "same rows into the same tables (primary key and id index) in the same run."
        ),
        figures=figures,
        extra=table,
    )
