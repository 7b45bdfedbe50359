"""A handler whose writes commit in the same transaction as its consumer's offset.

Run it: python docs/examples/exactly_once.py [path/to/events.db]
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path

from consumers import ConsumerManager
from eventlog import Event, EventLog, NewEvent, OffsetTransaction


async def main(path: str) -> None:
    async with EventLog.open(path) as log:
        await log.append_batch(
            "orders", [NewEvent(type="order.paid", data={"total": t}) for t in (10, 25, 7)]
        )
        # The handler's own table, in the log's own database file.
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE IF NOT EXISTS revenue (offset INTEGER, total INTEGER)")
        db.close()

        manager = ConsumerManager(log)

        @manager.consumer("revenue", "orders", transactional=True)
        async def book(events: list[Event], tx: OffsetTransaction) -> None:
            for event in events:
                total = event.json()["total"]
                await tx.execute("INSERT INTO revenue VALUES (?, ?)", event.offset, total)
            # Returning commits these rows and the consumer's offset together.

        async with manager:
            while manager.status()[0].committed != 3:  # noqa: ASYNC110 - a demo's simple wait
                await asyncio.sleep(0.01)

        db = sqlite3.connect(path)
        print("rows:", db.execute("SELECT * FROM revenue").fetchall())
        db.close()
        print("committed offset:", manager.status()[0].committed)


if __name__ == "__main__":
    path = sys.argv[1] if len(sys.argv) > 1 else "exactly-once-example.db"
    if Path(path).exists():  # its output (and its waits) assume the events it appends come first
        sys.exit(f"{path} exists: this example needs a new database file")
    asyncio.run(main(path))
