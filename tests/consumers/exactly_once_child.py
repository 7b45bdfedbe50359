"""Child of the exactly-once crash test: project events into a table, transactionally.

Usage: python -m tests.consumers.exactly_once_child TARGET TOTAL

Runs the consumer ``projector`` over stream ``s``: each event becomes one
row of ``projection`` written in the transaction that commits the offset.
Prints ``ready`` once consuming, exits 0 when TOTAL events are committed.
"""

from __future__ import annotations

import asyncio
import sys

from consumers import ConsumerManager
from eventlog import Event, EventLog, OffsetTransaction


async def main(target: str, total: int) -> None:
    async with EventLog.open(target) as log:
        manager = ConsumerManager(log, poll_timeout=0.2)

        async def project(events: list[Event], tx: OffsetTransaction) -> None:
            insert = "INSERT INTO projection (o) VALUES (" + (
                "$1)" if tx.kind == "postgres" else "?)"
            )
            for event in events:
                await tx.execute(insert, event.offset)
            await asyncio.sleep(0.01)  # some work while the transaction is open

        manager.add("projector", "s", project, transactional=True, batch_size=10)
        async with manager:
            print("ready", flush=True)
            while (manager.status()[0].committed or 0) < total:  # noqa: ASYNC110
                await asyncio.sleep(0.01)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
