"""SIGKILL of a real ``eventlog serve`` (SQLite, PostgreSQL) under 64 connections of appends.

Rounds default to 3 (``EVENTLOG_CHAOS_ROUNDS`` sets more for a soak, and
``EVENTLOG_CHAOS_SECONDS`` the longest a round appends, 2 by default): each
starts the server on the same file, appends from 64 concurrent connections
(single events, with and without ids, and JSON arrays of three), kills it at a
random moment, and checks the file (:func:`tests.chaos.check_stored`).
"""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

import aiohttp
import pytest

from tests.chaos import Ack, check_stored
from tests.serverproc import ServerProcess
from tests.support import scaled

CONNECTIONS = 64


async def _producer(
    client: aiohttp.ClientSession, p: int, acks: list[Ack], stop: asyncio.Event
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
            async with client.post(f"/api/streams/{stream}/events", json=body) as r:
                assert r.status == 201, await r.text()
                offsets = (await r.json())["offsets"]
        except aiohttp.ClientError:
            return  # the server died under us: this append was never acknowledged
        acks.append((p, seq, stream, offsets))


async def _rounds(db: Path | str) -> None:
    rng = random.Random(97)
    rounds = int(os.environ.get("EVENTLOG_CHAOS_ROUNDS", "3"))
    seconds = float(os.environ.get("EVENTLOG_CHAOS_SECONDS", "2"))
    acks: list[Ack] = []
    stored = 0
    for n in range(rounds):
        server = ServerProcess.start(db=db)
        try:
            stop = asyncio.Event()
            async with aiohttp.ClientSession(
                base_url=server.url,
                connector=aiohttp.TCPConnector(limit=CONNECTIONS),
                timeout=aiohttp.ClientTimeout(total=scaled(20)),
            ) as client:
                first = n * 1000  # each round's producers apart from the last one's
                round_acks: list[Ack] = []
                tasks = [
                    asyncio.create_task(_producer(client, first + p, round_acks, stop))
                    for p in range(CONNECTIONS)
                ]
                await asyncio.sleep(rng.uniform(seconds / 4, seconds))
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
    backend = "postgresql" if str(db).startswith("postgresql") else "sqlite"
    print(f"chaos serve on {backend}: {rounds} kills, {len(acks)} appends acked, {stored} events")


@pytest.mark.slow
async def test_sigkill_of_serve_under_64_connections_loses_and_reorders_nothing(
    tmp_path: Path,
) -> None:
    await _rounds(tmp_path / "chaos.db")


@pytest.mark.slow
async def test_on_postgres_sigkill_of_serve_under_64_connections_loses_nothing(
    pg_url: str,
) -> None:
    await _rounds(pg_url)
