"""Shared test helpers: scalable timeouts, polling, free ports, stored events."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec

from eventlog import Event
from eventlog.storage.base import Storage

__all__ = ["free_port", "opened", "scaled", "stored_event", "terminate", "wait_until"]

S = TypeVar("S", bound=Storage)

#: Multiply every test timeout by EVENTLOG_TEST_TIMEOUT_SCALE on slow machines.
TIMEOUT_SCALE = float(os.environ.get("EVENTLOG_TEST_TIMEOUT_SCALE", "1"))


def scaled(seconds: float) -> float:
    """A timeout in the suite's one scalable unit."""
    return seconds * TIMEOUT_SCALE


async def wait_until(check: Callable[[], object], timeout: float = 10.0) -> None:
    """Poll an (async or sync) condition until true."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for subprocess servers that cannot use port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stored_event(data: bytes = b"{}", **fields: Any) -> Event:
    """An :class:`~eventlog.Event` as a read returns it, with raw JSON ``data``.

    Defaults: stream ``s``, offset 0, id ``x``, type ``t``, 2026-01-01 UTC;
    ``fields`` override them (``key``, ``headers`` too).
    """
    defaults: dict[str, Any] = {
        "stream": "s",
        "offset": 0,
        "id": "x",
        "type": "t",
        "time": datetime(2026, 1, 1, tzinfo=UTC),
    }
    return Event(**(defaults | fields), data=msgspec.Raw(data))


@asynccontextmanager
async def opened(storage: S) -> AsyncIterator[S]:
    """``storage``, opened, and closed on the way out."""
    await storage.open()
    try:
        yield storage
    finally:
        await storage.close()


def terminate(proc: subprocess.Popen[Any], timeout: float) -> None:
    """SIGTERM ``proc`` if it still runs, and wait; SIGKILL it after ``timeout`` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
