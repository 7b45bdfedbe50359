"""Three workers share one consumer: each event to one worker, per-key order, nack and retry.

Run it: python docs/examples/shared.py [path/to/events.db]
"""

from __future__ import annotations

import asyncio
import sys

from consumers.shared import SharedConsumer, SharedConsumers, SharedSpec
from eventlog import EventLog, NewEvent


async def work(
    mailer: SharedConsumer, worker: str, done: list[tuple[str, int]], all_done: asyncio.Event
) -> None:
    async for claim in mailer.claims(worker, max=2, wait=0.2):
        if claim.event.key == "bob" and claim.attempt == 1:
            await claim.nack(delay=0.1)  # a flaky send: try again in 0.1 s
            continue
        done.append((claim.event.key or "", claim.offset))
        await claim.ack()
        if len(done) == 6:
            all_done.set()


async def main(path: str) -> None:
    async with EventLog.open(path) as log:
        await log.append_batch(
            "mail",
            [NewEvent(type="mail.send", key=to, data={"to": to}) for to in ["ann", "bob"] * 3],
        )
        shared = SharedConsumers(log)
        await shared.open()
        mailer = await shared.declare("mailer", SharedSpec(stream="mail", ordered_by_key=True))
        done: list[tuple[str, int]] = []
        all_done = asyncio.Event()
        workers = [asyncio.create_task(work(mailer, f"w{i}", done, all_done)) for i in range(3)]
        await all_done.wait()
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        print("ann:", [o for k, o in done if k == "ann"])
        print("bob:", [o for k, o in done if k == "bob"])
        print("committed offset:", await log.committed_offset("mailer", "mail"))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "shared-example.db"))
