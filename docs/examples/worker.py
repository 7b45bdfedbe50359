"""Two workers share one consumer of a server: each event is handled once, by one of them.

python docs/examples/worker.py http://127.0.0.1:7432
"""

from __future__ import annotations

import asyncio
import sys

from eventlog import NewEvent
from eventlog.client import AsyncClient


async def worker(client: AsyncClient, name: str, done: list[int]) -> None:
    async for claim in client.claims("mailer", worker=name, max=2, wait=1.0):
        print(
            f"{name} sends mail {claim.event.json()} (offset {claim.offset}, try {claim.attempt})"
        )
        await asyncio.sleep(0.5)  # the slow part: talking to the mail server
        await claim.ack()  # or: await claim.nack(delay=30); await claim.in_progress()
        done.append(claim.offset)
        if len(done) == 6:
            return


async def main(url: str) -> None:
    async with AsyncClient.open(url) as client:
        await client.append_batch(
            "signups", [NewEvent(type="user.signed_up", data={"user": i}) for i in range(6)]
        )
        info = await client.declare_shared("mailer", "signups", ack_wait=30, start="beginning")
        todo = info.head - info.ack_floor
        print(f"declared {info.name} on {info.stream}: {todo} events to hand out")
        done: list[int] = []
        workers = [asyncio.create_task(worker(client, f"w{i}", done)) for i in (1, 2)]
        await asyncio.wait(workers, return_when=asyncio.FIRST_COMPLETED)
        for task in workers:
            task.cancel()
        info = await client.shared_info("mailer")
        print(f"acked {sorted(done)}; ack floor {info.ack_floor}, pending {info.pending}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:7432"))
