"""The same code on an embedded log and on a server: only the line that opens it differs.

python docs/examples/client.py demo.db                  # the embedded log, in this process
python docs/examples/client.py http://127.0.0.1:7432    # a running `eventlog serve`
"""

from __future__ import annotations

import asyncio
import sys

from eventlog import EventLog, NewEvent, StreamNotFound
from eventlog.client import AsyncClient


async def work(log: EventLog | AsyncClient) -> None:
    offset = await log.append("orders", {"id": 7}, type="order.created", key="c-1", id="order-7")
    again = await log.append("orders", {"id": 7}, type="order.created", key="c-1", id="order-7")
    print(f"appended at offset {offset}; the same id again: {again}")
    offsets = await log.append_batch(
        "orders",
        [
            NewEvent(type="order.paid", data={"id": 7, "total": 9.5}, key="c-1"),
            NewEvent(type="order.shipped", data={"id": 7}, key="c-1"),
        ],
    )
    print(f"batch at offsets {offsets}")
    for event in await log.read("orders", offset):
        print(f"  {event.offset} {event.type} {event.key} {event.json()}")
    info = await log.stream_info("orders")
    print(f"orders: {info.count} events, next offset {info.next_offset}")
    try:
        await log.stream_info("refunds")
    except StreamNotFound as exc:
        print(f"{type(exc).__name__}: {exc}")


async def main(target: str) -> None:
    if target.startswith(("http://", "https://")):
        async with AsyncClient.open(target) as remote:  # the one line that differs
            await work(remote)
    else:
        async with EventLog.open(target) as log:
            await work(log)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "demo.db"))
