"""Child process for the crash test: appends and consumes until it is killed.

Prints ``ack <offset> <id>`` after each append returns and ``commit <offset>``
after each consumer commit returns; the parent kills it with SIGKILL at a
random moment and checks that everything printed is in the file.
"""

from __future__ import annotations

import asyncio
import sys
import uuid

from eventlog import EventLog, NewEvent


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def producer(log: EventLog, n: int) -> None:
    i = 0
    while True:
        i += 1
        if i % 5 == 0:
            ids = [f"{uuid.uuid4()}" for _ in range(3)]
            offsets = await log.append_batch(
                "crash", [NewEvent(type="batch", data={"p": n, "i": i}, id=x) for x in ids]
            )
            for offset, event_id in zip(offsets, ids, strict=True):
                say(f"ack {offset} {event_id}")
        else:
            event_id = str(uuid.uuid4())
            offset = await log.append("crash", {"p": n, "i": i}, type="one", id=event_id)
            say(f"ack {offset} {event_id}")


async def consumer(log: EventLog) -> None:
    c = log.consumer("crash-consumer", "crash")
    while True:
        events = await c.poll(50, timeout=1.0)
        if events:
            await c.commit()
            say(f"commit {events[-1].offset + 1}")


async def main(path: str) -> None:
    async with EventLog.open(path) as log:
        say("ready")
        await asyncio.gather(*(producer(log, n) for n in range(8)), consumer(log))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
