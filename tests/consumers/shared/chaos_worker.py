"""A worker of the shared-consumer chaos tests (run as a process; SIGKILLed at random).

``python -m tests.consumers.shared.chaos_worker URL CONSUMER WORKER FILE``: claims
batches over HTTP with :mod:`eventlog.client`; for every claim it first records
``P <offset> <key> <time>`` (its side effect, idempotent by offset), then acks the
batch (one request; claim by claim if the batch is refused, e.g. one expired) and
records ``A <offset> <time>`` for each ack the server took. Lines are written
with one ``write`` each on an ``O_APPEND`` file, so a SIGKILL loses none written.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from eventlog.client import AsyncClient
from eventlog.client.shared import Claim
from eventlog.errors import Conflict, NotFound, Unavailable


def record(fd: int, line: str) -> None:
    os.write(fd, f"{line} {time.time():.6f}\n".encode())


async def ack(
    client: AsyncClient, consumer: str, worker: str, claims: list[Claim], fd: int
) -> None:
    try:
        await client.ack(consumer, claims, worker=worker)
    except (Conflict, NotFound):  # one claim expired or was redelivered: ack the others
        for claim in claims:
            try:
                await client.ack(consumer, [claim], worker=worker)
            except (Conflict, NotFound):
                continue
            record(fd, f"A {claim.offset}")
        return
    for claim in claims:
        record(fd, f"A {claim.offset}")


async def main(url: str, consumer: str, worker: str, path: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    async with AsyncClient.open(url, timeout=10, retry_for=60) as client:
        while True:
            try:
                claims = await client.claim(consumer, worker=worker, max=50, wait=2)
            except (OSError, Unavailable):
                await asyncio.sleep(0.2)
                continue
            for claim in claims:
                record(fd, f"P {claim.offset} {claim.event.key}")
            if claims:
                await ack(client, consumer, worker, claims, fd)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
