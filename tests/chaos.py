"""Checks of a log after a crash under mixed load (the chaos crash tests).

Producers report ``(producer, seq, stream, offsets)`` for each acknowledged
append, with ``{"p": producer, "s": seq, ...}`` as each event's payload;
:func:`check_stored` reopens the file and asserts what SIGKILL must not break.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eventlog import EventLog

#: An acknowledged append: producer, its sequence number, stream, the offsets it got.
Ack = tuple[int, int, str, list[int]]


def parse_acks(lines: list[str]) -> list[Ack]:
    """The ``ack <producer> <seq> <stream> <offset>...`` lines; a torn last line is skipped."""
    acks: list[Ack] = []
    for line in lines:
        parts = line.split()
        if len(parts) >= 5 and parts[0] == "ack" and all(x.isdigit() for x in parts[4:]):
            acks.append((int(parts[1]), int(parts[2]), parts[3], [int(x) for x in parts[4:]]))
    return acks


async def check_stored(db: Path | str, streams: list[str], acks: list[Ack]) -> int:
    """Assert that every acknowledged event is stored at its offset with its
    payload, that offsets are gapless and that each producer's events are in
    the order it appended them, in an SQLite file or a PostgreSQL database (its
    URL). Returns how many events are stored."""
    stored: dict[str, dict[int, Any]] = {}
    async with EventLog.open(db) as log:
        for stream in streams:
            events = [e async for e in log.scan(stream)]
            offsets = [e.offset for e in events]
            assert offsets == list(range(len(events))), f"{stream}: offsets are not gapless"
            stored[stream] = {e.offset: e.json() for e in events}
    for stream, events_at in stored.items():
        last: dict[int, tuple[int, int]] = {}
        for offset in sorted(events_at):
            data = events_at[offset]
            position = (data["s"], data.get("i", 0))
            assert last.get(data["p"], (0, -1)) < position, (
                f"{stream}: producer {data['p']} out of order at offset {offset}"
            )
            last[data["p"]] = position
    for producer, seq, stream, offsets in acks:
        for i, offset in enumerate(offsets):
            data = stored[stream].get(offset)
            assert data is not None, f"acknowledged {stream}@{offset} was lost"
            index = i if len(offsets) > 1 else None
            assert (data["p"], data["s"], data.get("i")) == (producer, seq, index), (
                f"{stream}@{offset} holds {data}, acknowledged as {producer}/{seq}/{index}"
            )
    return sum(len(e) for e in stored.values())
