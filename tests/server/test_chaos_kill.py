"""SIGKILL of a real ``eventlog serve`` under 64 connections of single and batch appends.

Rounds default to 3 (``EVENTLOG_CHAOS_ROUNDS`` sets more for a soak): each
starts the server on the same file, appends from 64 concurrent connections
(single events, with and without ids, and JSON arrays of three), kills it at a
random moment, and checks the file (:func:`tests.chaos.check_stored`).
"""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

import httpx
import pytest

from tests.chaos import Ack, check_stored
from tests.serverproc import ServerProcess
from tests.support import scaled

CONNECTIONS = 64


async def _producer(
    client: httpx.AsyncClient, p: int, acks: list[Ack], stop: asyncio.Event
) -> None:
    rng = random.Random(p)
    stream = "chaos-a" if p % 2 else "chaos-b"
    seq = 0
    while not stop.is_set():
        seq += 1
        kind = rng.randrange(4)
        body: object
        if kind == 0:
            body = [{"type": "many", "data": {"p": p, "s": seq, "i": i}} for i in range(3)]
        elif kind == 1:
            body = {"type": "id", "id": f"{p}-{seq}", "data": {"p": p, "s": seq}}
        else:
            body = {"type": "one", "data": {"p": p, "s": seq}}
        try:
            r = await client.post(f"/api/streams/{stream}/events", json=body)
        except httpx.TransportError:
            return  # the server died under us: this append was never acknowledged
        assert r.status_code == 201, r.text
        acks.append((p, seq, stream, r.json()["offsets"]))


@pytest.mark.slow
async def test_sigkill_of_serve_under_64_connections_loses_and_reorders_nothing(
    tmp_path: Path,
) -> None:
    db = tmp_path / "chaos.db"
    rng = random.Random(97)
    rounds = int(os.environ.get("EVENTLOG_CHAOS_ROUNDS", "3"))
    acks: list[Ack] = []
    stored = 0
    for n in range(rounds):
        server = ServerProcess.start(db=db)
        try:
            stop = asyncio.Event()
            limits = httpx.Limits(max_connections=CONNECTIONS)
            async with httpx.AsyncClient(
                base_url=server.url, timeout=scaled(20), limits=limits
            ) as client:
                first = n * 1000  # each round's producers apart from the last one's
                round_acks: list[Ack] = []
                tasks = [
                    asyncio.create_task(_producer(client, first + p, round_acks, stop))
                    for p in range(CONNECTIONS)
                ]
                await asyncio.sleep(rng.uniform(0.5, 2.0))
                await asyncio.to_thread(server.kill)
                stop.set()
                await asyncio.gather(*tasks)
        finally:
            server.close()
        assert server.proc is not None
        assert server.proc.returncode == -9
        assert round_acks, "the server acknowledged nothing before it was killed"
        acks += round_acks
        stored = await check_stored(db, ["chaos-a", "chaos-b"], acks)
    print(f"chaos serve: {rounds} kills, {len(acks)} acknowledged appends, {stored} events stored")
