"""Offsets follow the order appends were queued in, whatever mix reaches the writer.

Waves of appends are queued in one turn of the loop each, in a random mix:
single events, batches, events with ids (the general path), appends expecting
the head they were queued at, on two streams, small waves and cohorts of 128
or more; with small batches, so that several wait in the queue at once, on
real SQLite (two transactions in hand).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable
from pathlib import Path

import pytest

from eventlog import EventLog, LogConfig, NewEvent
from tests.support import scaled


@pytest.mark.parametrize("seed", range(6))
async def test_offsets_follow_queue_order_under_mixed_waves(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    config = LogConfig(
        retention_interval=0,
        recheck_interval=None,
        writer_batch_events=rng.choice([16, 64, 100]),
        synchronous="off",  # commits quick enough for two in hand, even on a busy machine
    )
    heads = {"a": 0, "b": 0}  # what each stream's head will be once the queued appends are in
    queued: list[tuple[str, int, asyncio.Future[object]]] = []  # stream, its head, the append
    async with EventLog.open(tmp_path / "order.db", config=config) as log:
        for wave in range(16):
            # Runs of plain appends (generated ids only: the fast path) and of a
            # mix, trickles and cohorts, so that batches of both kinds queue together.
            runs = [(rng.choice([1, 10, 70, 150]), rng.random() < 0.5) for _ in range(3)]
            kinds = [3 if plain else rng.randrange(8) for size, plain in runs for _ in range(size)]
            for i, kind in enumerate(kinds):
                stream = rng.choice("ab")
                pending: Awaitable[object]
                if kind == 0:
                    items = [NewEvent(type="t", data=i) for _ in range(rng.randint(2, 5))]
                    pending = log.append_batch(stream, items)
                    n = len(items)
                elif kind == 1:
                    pending = log.append(stream, i, type="t", id=f"{wave}-{i}")
                    n = 1
                elif kind == 2:
                    pending = log.append(stream, i, type="t", expected_offset=heads[stream])
                    n = 1
                else:
                    pending = log.append(stream, i, type="t")
                    n = 1
                queued.append((stream, heads[stream], asyncio.ensure_future(pending)))
                heads[stream] += n
            await asyncio.sleep(rng.choice([0, 0, 0.001]))  # the next wave meets the last in hand
        for stream, first, appended in queued:
            result = await asyncio.wait_for(appended, scaled(20))
            offsets = result if isinstance(result, list) else [result]
            assert offsets[0] == first, f"{stream}: queued at {first}, written at {offsets[0]}"
