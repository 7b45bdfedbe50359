"""What the peer scripts share: eventlog's side of each comparison, and a skip."""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec

from bench.append import log_concurrent_singles
from bench.common import payload, scratch_dir
from bench.report import Figure, Section
from eventlog import EventLog, NewEvent

__all__ = [
    "Missing",
    "compare",
    "log_batches",
    "log_producers",
    "log_read",
    "main",
    "peer_process",
    "producers_rate",
    "require",
    "sizes",
]

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


@contextmanager
def peer_process(argv: Callable[[Path], list[str]]) -> Iterator[subprocess.Popen[bytes]]:
    """A peer's server started with ``argv(data_dir)`` (a scratch directory), its
    output discarded; terminated when the block ends."""
    with scratch_dir() as d:
        proc = subprocess.Popen(argv(d), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            proc.terminate()
            proc.wait(30)


def sizes(quick: bool) -> tuple[int, int]:
    """``(per_producer, total)`` of a comparison: appends per producer, events per case."""
    return (10, 20_000) if quick else (40, 100_000)


async def compare(section: Section, cases: Callable[[list[Figure]], Awaitable[None]]) -> Section:
    """``section`` with the figures ``cases`` adds to it; if the peer is not
    installed (:class:`Missing`), with a line saying so instead."""
    try:
        await cases(section.figures)
    except Missing as exc:
        section.extra = [f"Skipped: {exc}.", ""]
    return section


def main(run: Callable[[bool], Coroutine[Any, Any, Section]]) -> None:
    """``python -m bench.peers.<peer> [--quick]``: run the comparison and print it."""
    section = asyncio.run(run("--quick" in sys.argv))
    section.print()


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
