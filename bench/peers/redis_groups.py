"""Redis Streams consumer groups: ``XREADGROUP`` + ``XACK`` throughput with N consumers.

The Redis side of ``python -m bench shared`` (:mod:`bench.shared`): a stream of
``total`` entries (~200 B), one consumer group read from the start, ``workers``
consumers (asyncio tasks of one process, one redis-py asyncio client) each
looping ``XREADGROUP GROUP g NAME COUNT batch STREAMS s >`` then one ``XACK`` of
what it got, until every entry is acked. ``redis-server`` runs with
``appendfsync always`` (:func:`bench.peers.redis_streams.redis_server`), like
eventlog's ``synchronous=FULL``: the group's reads and acks are fsynced writes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from bench.common import encode, payload
from bench.peers.redis_streams import redis_server

__all__ = ["redis_rates"]


async def _fill(client: Any, stream: str, total: int) -> None:
    for start in range(0, total, 1000):
        pipe = client.pipeline(transaction=False)
        for i in range(start, start + 1000):
            pipe.xadd(stream, {"data": encode(payload(i))})
        await pipe.execute()


async def _group_rate(client: Any, stream: str, workers: int, batch: int, total: int) -> float:
    import asyncio

    await client.xgroup_create(stream, "g", id="0")
    acked = 0

    async def worker(name: str) -> None:
        nonlocal acked
        while acked < total:
            got = await client.xreadgroup("g", name, {stream: ">"}, count=batch, block=500)
            if got:
                ids = [entry_id for entry_id, _ in got[0][1]]
                done = await client.xack(stream, "g", *ids)
                acked += done  # not `acked += await ...`: that reads acked before awaiting

    start = time.perf_counter()
    await asyncio.gather(*(worker(f"w{i}") for i in range(workers)))
    return total / (time.perf_counter() - start)


async def redis_rates(total: int, workers: Sequence[int], batch: int) -> dict[int, float]:
    """Entries acked per second for each worker count (raises ``Missing`` without Redis)."""
    with redis_server("always") as port:
        import redis.asyncio as aioredis

        client: Any = aioredis.Redis(port=port, max_connections=max(workers) + 4)
        try:
            rates: dict[int, float] = {}
            for n in workers:
                stream = f"jobs-{n}"
                await _fill(client, stream, total)
                rates[n] = await _group_rate(client, stream, n, batch, total)
            return rates
        finally:
            await client.aclose()
