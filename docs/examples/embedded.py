"""The embedded log in one file: append, read, consume, retain.

Run it: python docs/examples/embedded.py [path/to/events.db]
"""

from __future__ import annotations

import asyncio
import sys

from consumers import ConsumerManager
from eventlog import BEGINNING, Event, EventLog, ExpectedOffsetMismatch, NewEvent, Retention


async def main(path: str) -> None:
    async with EventLog.open(path) as log:
        # Append: returns once the event is durable (fsynced).
        offset = await log.append(
            "orders", {"order_id": 42, "total": 1999}, type="order.created", key="customer-7"
        )
        print("appended at offset", offset)

        # A retry with the same id writes nothing and returns the original offset.
        first = await log.append("orders", {"order_id": 43}, type="order.created", id="ord-43")
        again = await log.append("orders", {"order_id": 43}, type="order.created", id="ord-43")
        print("idempotent retry:", first, "==", again)

        # An atomic batch gets consecutive offsets.
        offsets = await log.append_batch(
            "orders",
            [NewEvent(type="order.paid", data={"order_id": n}, key="customer-7") for n in (42, 43)],
        )
        print("batch offsets", offsets)

        # Optimistic concurrency: append only if nobody else did since we looked.
        head = (await log.stream_info("orders")).next_offset
        await log.append("orders", {"order_id": 44}, type="order.created", expected_offset=head)
        try:
            await log.append("orders", {"order_id": 45}, type="order.created", expected_offset=head)
        except ExpectedOffsetMismatch as exc:
            print("conflict:", exc)

        # Read a page, or scan a range page by page.
        for event in await log.read("orders", from_offset=0, limit=2):
            print(event.offset, event.type, event.json())
        paid = [e.offset async for e in log.scan("orders") if e.type == "order.paid"]
        print("paid events at", paid)

        # A named consumer: its committed offset lives in the log.
        consumer = log.consumer("invoices", "orders", start=BEGINNING)
        batch = await consumer.poll(max_events=100, timeout=1.0)
        await consumer.commit()
        print(f"consumer read {len(batch)} events, lag now {await consumer.lag()}")

        # Handlers run by the consumer runtime: poll, handle, commit, retry.
        manager = ConsumerManager(log)
        done = asyncio.Event()

        @manager.consumer("mailer", "orders", types=["order.paid"])
        async def send_receipts(events: list[Event]) -> None:
            for event in events:
                print("receipt for", event.json())
            done.set()

        async with manager:
            await asyncio.wait_for(done.wait(), 10)

        # Keep at most a million events or a week, whichever is smaller.
        await log.set_retention("orders", Retention(max_count=1_000_000, max_age=7 * 86400))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "events.db"))
