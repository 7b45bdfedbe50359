"""A poison event is parked, the rest handled in order, and the parked event replayed once fixed.

Run it: python docs/examples/parking.py [path/to/events.db]
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from consumers import Backoff, ConsumerManager
from eventlog import Event, EventLog, NewEvent


async def main(path: str) -> None:
    async with EventLog.open(path) as log:
        await log.append_batch(
            "orders", [NewEvent(type="order.paid", data={"total": n}) for n in (10, -1, 30)]
        )
        fixed = False
        handled: list[int] = []

        async def bill(events: list[Event]) -> None:
            if not fixed and any(b'"total":-1' in bytes(e.data) for e in events):
                raise ValueError("negative total")
            handled.extend(e.offset for e in events)

        manager = ConsumerManager(log, backoff=Backoff(base=0.01, cap=0.1))
        manager.add("billing", "orders", bill, max_attempts=3, on_failure="park")
        async with manager:
            while manager.status()[0].committed != 3:  # noqa: ASYNC110 - a demo's simple wait
                await asyncio.sleep(0.01)
            print("handled offsets:", handled)
            (parked,) = await log.read("billing.parked")
            print("parked:", {k: v for k, v in parked.headers.items() if k != "parked-time"})

            fixed = True  # the bug is fixed: hand the parked event back
            result = await manager.replay_parked("billing")
            print(f"replayed {result.replayed}, {result.remaining} still parked")
            print("handled offsets:", handled)


if __name__ == "__main__":
    path = sys.argv[1] if len(sys.argv) > 1 else "parking-example.db"
    if Path(path).exists():  # its output (and its waits) assume the events it appends come first
        sys.exit(f"{path} exists: this example needs a new database file")
    asyncio.run(main(path))
