"""NATS JetStream beside eventlog: durable publishes, publishes in flight, pull reads.

``python -m bench.peers.jetstream`` (or ``python -m bench peers``). Starts
``nats-server -js`` on a loopback port with file storage and measures, next to
eventlog in the same run:

- 256 producers each awaiting one publish acknowledgement at a time
  (eventlog: ``log.append``);
- one producer keeping 100 publishes in flight (eventlog: ``append_batch`` of 100);
- a pull consumer fetching 1000 at a time and acknowledging each message,
  each payload decoded (eventlog: ``log.read`` pages of 1000).

JetStream acknowledges a publish once it is written, before an fsync (its
``sync_interval`` flushes every two minutes by default), so it is measured
with less durability than eventlog's synchronous=FULL.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgspec

from bench.common import encode, free_port, payload
from bench.peers.common import (
    compare,
    log_batches,
    log_producers,
    log_read,
    main,
    peer_process,
    producers_rate,
    require,
    sizes,
)
from bench.report import Figure, Section

__all__ = ["run"]


@contextmanager
def nats_server() -> Iterator[str]:
    """A nats-server with JetStream on file storage; yields its URL."""
    binary = require("nats-server", "nats")
    port = free_port()
    argv = [binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd"]
    with peer_process(lambda d: [*argv, str(d)]) as proc:
        deadline = time.monotonic() + 20
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), 1):
                    break
            except OSError:
                time.sleep(0.05)
        yield f"nats://127.0.0.1:{port}"


async def _connect(url: str, subject: str) -> tuple[Any, Any]:
    import nats

    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(name=subject.upper(), subjects=[subject])
    return nc, js


async def publish_producers(url: str, per_producer: int) -> float:
    nc, js = await _connect(url, "s")
    data = encode(payload(0))
    rate = await producers_rate(lambda: js.publish("s", data), per_producer)
    await nc.close()
    return rate


async def publish_in_flight(url: str, total: int, in_flight: int) -> float:
    nc, js = await _connect(url, "p")
    datas = [encode(payload(i)) for i in range(in_flight)]
    start = time.perf_counter()
    for _ in range(total // in_flight):
        await asyncio.gather(*(js.publish("p", d) for d in datas))
    rate = total / (time.perf_counter() - start)
    await nc.close()
    return rate


async def pull_read(url: str, total: int) -> float:
    nc, js = await _connect(url, "r")
    data = encode(payload(0))
    for _ in range(total // 100):
        await asyncio.gather(*(js.publish("r", data) for _ in range(100)))
    sub = await js.pull_subscribe("r", durable="bench")
    decode = msgspec.json.decode
    start = time.perf_counter()
    n = 0
    while n < total:
        for msg in await sub.fetch(1000, timeout=10):
            decode(msg.data)
            await msg.ack()
            n += 1
    rate = n / (time.perf_counter() - start)
    await nc.close()
    return rate


async def run(quick: bool) -> Section:
    """eventlog and NATS JetStream, each case in the same run."""
    per_producer, total = sizes(quick)

    async def cases(figures: list[Figure]) -> None:
        with nats_server() as url:
            theirs = await publish_producers(url, per_producer)
            figures.append(
                Figure("256 producers, single appends", await log_producers(per_producer), theirs)
            )
            theirs = await publish_in_flight(url, total, 100)
            figures.append(
                Figure("batches of 100 / 100 in flight", await log_batches(total, 100), theirs)
            )
            theirs = await pull_read(url, total)
            figures.append(Figure("read 1000 at a time + decode", await log_read(total), theirs))

    conditions = (
        "nats-server -js on loopback, file storage (acknowledges before fsync); "
        "nats-py client; payload ~200 B JSON. eventlog on SQLite with its defaults "
        "(synchronous=FULL). The baseline column is JetStream: a ratio above 1 means "
        "eventlog is faster. `python -m bench.peers.jetstream`."
    )
    return await compare(Section("peers-jetstream", "Peers: NATS JetStream", conditions), cases)


if __name__ == "__main__":
    main(run)
