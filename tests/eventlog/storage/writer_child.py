"""Child process of the multi-writer test: many concurrent appends into shared streams.

``python writer_child.py URL PROC N`` appends N events from PROC's many tasks
into streams ``s0``..``s2`` (some single appends, some batches), plus one
event per stream with an id every process uses (``shared-<stream>``), and
prints one JSON line ``[stream, offset, id]`` per acknowledged event.
"""

from __future__ import annotations

import asyncio
import json
import sys

from eventlog import EventLog, NewEvent

STREAMS = ["s0", "s1", "s2"]


async def main(url: str, proc: int, n: int) -> None:
    acks: list[tuple[str, int, str]] = []
    async with EventLog.open(url, retention_interval=0) as log:

        async def task(t: int) -> None:
            i = 0
            while i < n // 8:
                stream = STREAMS[(t + i) % len(STREAMS)]
                if i % 4 == 0:
                    ids = [f"p{proc}-t{t}-{i}-{j}" for j in range(3)]
                    batch = [NewEvent(type="b", data={"p": proc}, id=x) for x in ids]
                    offsets = await log.append_batch(stream, batch)
                    acks.extend((stream, o, x) for o, x in zip(offsets, ids, strict=True))
                    i += 3
                else:
                    event_id = f"p{proc}-t{t}-{i}"
                    offset = await log.append(stream, {"p": proc}, type="e", id=event_id)
                    acks.append((stream, offset, event_id))
                    i += 1

        async def shared(stream: str) -> None:
            event_id = f"shared-{stream}"
            offset = await log.append(stream, {"shared": True}, type="s", id=event_id)
            acks.append((stream, offset, event_id))

        await asyncio.gather(*(task(t) for t in range(8)), *(shared(s) for s in STREAMS))
    for ack in acks:
        sys.stdout.write(json.dumps(ack) + "\n")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
