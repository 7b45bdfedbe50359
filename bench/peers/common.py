"""What the peer scripts share: eventlog's side of each comparison, and a skip."""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import time
from collections.abc import Awaitable, Callable

import msgspec

from bench.append import log_concurrent_singles
from bench.common import payload, scratch_dir
from eventlog import EventLog, NewEvent

__all__ = ["Missing", "log_batches", "log_producers", "log_read", "producers_rate", "require"]

PRODUCERS = 256


class Missing(Exception):
    """A peer's server or client is not installed: the scenario is skipped."""


def require(binary: str, module: str) -> str:
    """The path of ``binary``; raises :class:`Missing` naming what to install."""
    path = shutil.which(binary)
    if path is None:
        raise Missing(f"{binary} is not installed (not on PATH)")
    if importlib.util.find_spec(module) is None:
        raise Missing(f"the Python client {module!r} is missing: pip install -e '.[peers]'")
    return path


async def log_producers(per_producer: int) -> float:
    """Events/s of 256 producers each awaiting single durable appends."""
    rate, _ = await log_concurrent_singles(PRODUCERS, per_producer)
    return rate


async def producers_rate(send: Callable[[], Awaitable[object]], per_producer: int) -> float:
    """Events/s of 256 producers each awaiting ``send()`` ``per_producer`` times."""

    async def producer() -> None:
        for _ in range(per_producer):
            await send()

    start = time.perf_counter()
    await asyncio.gather(*(producer() for _ in range(PRODUCERS)))
    return PRODUCERS * per_producer / (time.perf_counter() - start)


async def log_batches(total: int, size: int) -> float:
    """Events/s of one producer awaiting durable batches of ``size``."""
    with scratch_dir() as d:
        async with EventLog.open(d / "log.db") as log:
            batch = [NewEvent(type="order.created", data=payload(i)) for i in range(size)]
            start = time.perf_counter()
            for _ in range(total // size):
                await log.append_batch("s", batch)
            return total / (time.perf_counter() - start)


async def log_read(total: int) -> float:
    """Events/s of reading ``total`` events in pages of 1000, each payload decoded."""
    decode = msgspec.json.decode
    with scratch_dir() as d:
        async with EventLog.open(d / "log.db", synchronous="off") as log:
            batch = [NewEvent(type="order.created", data=payload(i)) for i in range(5000)]
            for _ in range(total // 5000):
                await log.append_batch("s", batch)
            start = time.perf_counter()
            offset = 0
            while events := await log.read("s", offset, 1000):
                for event in events:
                    decode(event.data)
                offset = events[-1].offset + 1
            return total / (time.perf_counter() - start)
