"""Child process for the chaos crash test: 256 producers in a mix of appends until killed.

Each producer appends, one after another, to one of two streams: single events
(generated ids: the writer's packed path), batches of three, single events
with ids (the general path), and now and then an append with
``expected_offset`` (the head it last saw, refused when another producer
moved it). Cohorts and trickles alternate: a producer pauses now and then so
that small batches follow large ones. It prints
``ack <producer> <seq> <stream> <offset>...`` after each append returns; the
parent SIGKILLs it at a random moment and checks that every acknowledged
event is stored at its offset with its payload, in order per producer.
"""

from __future__ import annotations

import asyncio
import random
import sys

from eventlog import EventLog, ExpectedOffsetMismatch, NewEvent

PRODUCERS = 256


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def producer(log: EventLog, p: int) -> None:
    rng = random.Random(p)  # p counts on from the last round's (argv[2] * 1000)
    stream = "chaos-a" if p % 2 else "chaos-b"
    head = 0
    seq = 0
    while True:
        seq += 1
        kind = rng.randrange(10)
        data = {"p": p, "s": seq}
        if kind < 5:
            offsets = [await log.append(stream, data, type="one")]
        elif kind < 7:
            items = [NewEvent(type="many", data={**data, "i": i}) for i in range(3)]
            offsets = await log.append_batch(stream, items)
        elif kind < 9:
            offsets = [await log.append(stream, data, type="id", id=f"{p}-{seq}")]
        else:
            try:
                offsets = [await log.append(stream, data, type="exp", expected_offset=head)]
            except ExpectedOffsetMismatch:
                continue  # not appended: the next one takes this seq
        head = offsets[-1] + 1
        say(f"ack {p} {seq} {stream} {' '.join(map(str, offsets))}")
        if rng.randrange(8) == 0:
            await asyncio.sleep(rng.uniform(0, 0.01))  # cohorts break up into trickles


async def main(path: str, round_: int) -> None:
    async with EventLog.open(path) as log:
        say("ready")
        first = round_ * 1000
        await asyncio.gather(*(producer(log, p) for p in range(first, first + PRODUCERS)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
