"""Retention keeps what a lagging consumer has not read, until its max_hold runs out.

Run it: python docs/examples/retention_holds.py [path/to/events.db]
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from eventlog import EventLog, HoldPolicy, NewEvent, Retention


async def main(path: str) -> None:
    async with EventLog.open(path) as log:
        await log.append_batch("orders", [NewEvent(type="order.paid", data=n) for n in range(10)])
        await log.consumer("ledger", "orders").commit(2)  # read 0-1, then stalled
        await log.set_retention("orders", Retention(max_count=4))  # keep the last 4 ...

        deleted = await log.enforce_retention()  # ... but not what "ledger" has not read
        first = (await log.stream_info("orders")).first_offset
        print("deleted", deleted, "- first retained:", first)
        for hold in (await log.retention_holds("orders")).holds:
            print(f"held by {hold.consumer}: {hold.events} events from offset {hold.offset}")

        # A consumer may hold retention only so long without committing.
        log.set_hold_policy("ledger", HoldPolicy(max_hold=3600))
        deleted = await log.enforce_retention(now=datetime.now(UTC) + timedelta(hours=2))
        print("two hours later: deleted", deleted)
        (notice,) = await log.read("system")
        print("system:", notice.type, json.loads(bytes(notice.data))["events_lost"], "events lost")

        consumer = log.consumer("ledger", "orders")
        events = await consumer.poll(10)
        assert consumer.truncation is not None  # set: the poll skipped removed events
        print("ledger resumes at", events[0].offset, "-", consumer.truncation.describe())


if __name__ == "__main__":
    path = sys.argv[1] if len(sys.argv) > 1 else "retention-example.db"
    if Path(path).exists():  # its output (and its waits) assume the events it appends come first
        sys.exit(f"{path} exists: this example needs a new database file")
    asyncio.run(main(path))
