"""Redis Streams beside eventlog: durable appends, batches, paged reads.

``python -m bench.peers.redis_streams`` (or ``python -m bench peers``). Starts
``redis-server`` on a loopback port with an append-only file, ``appendfsync
always`` (every write fsynced before the answer: eventlog's
``synchronous=FULL``) and then ``everysec``, and measures, next to eventlog in
the same run:

- 256 producers each awaiting one ``XADD`` at a time (eventlog: ``log.append``);
- one producer sending pipelines of 100 ``XADD`` (eventlog: ``append_batch`` of 100);
- reading the stream with ``XRANGE ... COUNT 1000``, each payload decoded
  (eventlog: ``log.read`` pages of 1000).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgspec

from bench.common import encode, free_port, payload
from bench.peers import common as peer
from bench.report import Figure, Section

__all__ = ["run"]


@contextmanager
def redis_server(fsync: str) -> Iterator[int]:
    """A redis-server with an append-only file fsynced ``fsync``; yields its port."""
    binary = peer.require("redis-server", "redis")
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    argv += ["--appendonly", "yes", "--appendfsync", fsync, "--dir"]
    with peer.peer_process(lambda d: [*argv, str(d)]) as proc:
        _wait_ready(port, proc)
        yield port


def _wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    import redis

    deadline = time.monotonic() + 20
    while True:
        try:
            if redis.Redis(port=port).ping():
                return
        except redis.ConnectionError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("redis-server did not start")
        time.sleep(0.05)


async def xadd_producers(port: int, per_producer: int) -> float:
    import redis.asyncio as aioredis

    client: Any = aioredis.Redis(port=port, max_connections=peer.PRODUCERS)
    data = encode(payload(0))
    rate = await peer.producers_rate(lambda: client.xadd("s", {"data": data}), per_producer)
    await client.aclose()
    return rate


async def xadd_pipelines(port: int, total: int, size: int) -> float:
    import redis.asyncio as aioredis

    client: Any = aioredis.Redis(port=port)
    datas = [encode(payload(i)) for i in range(size)]
    start = time.perf_counter()
    for _ in range(total // size):
        pipe = client.pipeline(transaction=False)
        for data in datas:
            pipe.xadd("p", {"data": data})
        await pipe.execute()
    rate = total / (time.perf_counter() - start)
    await client.aclose()
    return rate


async def xrange_read(port: int, total: int) -> float:
    import redis.asyncio as aioredis

    client: Any = aioredis.Redis(port=port)
    data = encode(payload(0))
    for _ in range(total // 1000):
        pipe = client.pipeline(transaction=False)
        for _ in range(1000):
            pipe.xadd("r", {"data": data})
        await pipe.execute()
    decode = msgspec.json.decode
    start = time.perf_counter()
    last = "-"
    n = 0
    while entries := await client.xrange("r", min=last, max="+", count=1000):
        for _, fields in entries:
            decode(fields[b"data"])
        n += len(entries)
        last = "(" + entries[-1][0].decode()
    rate = n / (time.perf_counter() - start)
    await client.aclose()
    return rate


async def run(quick: bool) -> Section:
    """eventlog and Redis Streams, each case in the same run."""
    per_producer, total = peer.sizes(quick)

    async def cases(figures: list[Figure]) -> None:
        for fsync in ("always", "everysec"):
            with redis_server(fsync) as port:
                theirs = await xadd_producers(port, per_producer)
                ours = await peer.log_producers(per_producer)
                figures.append(
                    Figure(f"256 producers, single appends (appendfsync {fsync})", ours, theirs)
                )
                theirs = await xadd_pipelines(port, total, 100)
                ours = await peer.log_batches(total, 100)
                figures.append(
                    Figure(f"batches / pipelines of 100 (appendfsync {fsync})", ours, theirs)
                )
                if fsync == "always":
                    theirs = await xrange_read(port, total)
                    ours = await peer.log_read(total)
                    figures.append(Figure("read in pages of 1000 + decode", ours, theirs))

    conditions = (
        "redis-server on loopback with an append-only file, `appendfsync always` "
        "(fsynced before the answer, like eventlog's synchronous=FULL) and `everysec`; "
        "redis-py's asyncio client; payload ~200 B JSON. eventlog on SQLite with its "
        "defaults (synchronous=FULL). The baseline column is Redis: a ratio above 1 "
        "means eventlog is faster. `python -m bench.peers.redis_streams`."
    )
    return await peer.compare(Section("peers-redis", "Peers: Redis Streams", conditions), cases)


if __name__ == "__main__":
    peer.main(run)
