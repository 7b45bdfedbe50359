"""Child process of the exclusive-consumer test.

``python consumer_child.py URL`` runs the named consumer ``audit`` over the
stream ``orders`` under the lease ``consumer:audit``: only while this process
holds the lease. Prints ``running <pid>`` when it starts consuming, then
``got <offset>`` for each event before committing it (at-least-once).
"""

from __future__ import annotations

import asyncio
import os
import sys

from eventlog import EventLog
from eventlog.storage.leases import leases_for, run_exclusively


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def main(url: str) -> None:
    async with EventLog.open(url, retention_interval=0) as log:

        async def consume() -> None:
            say(f"running {os.getpid()}")
            consumer = log.consumer("audit", "orders")
            while True:
                events = await consumer.poll(100, timeout=5)
                for event in events:
                    say(f"got {event.offset}")
                if events:
                    await consumer.commit()

        await run_exclusively(leases_for(log.storage), "consumer:audit", consume, retry=0.2)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
