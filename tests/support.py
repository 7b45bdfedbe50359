"""Shared test helpers: scalable timeouts, waiting for a condition, free ports."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Protocol

__all__ = [
    "TIMEOUT_SCALE",
    "Server",
    "free_port",
    "refused_port",
    "scaled",
    "wait_until",
    "wait_until_sync",
]

#: Multiply every test timeout by EVENTLOG_TEST_TIMEOUT_SCALE on slow machines.
TIMEOUT_SCALE = float(os.environ.get("EVENTLOG_TEST_TIMEOUT_SCALE", "1"))

#: Seconds between two looks at a condition.
POLL_INTERVAL = 0.02


class Server(Protocol):
    """What tests use of a running server, in a thread or in a process.

    (:class:`tests.serverthread.ServerThread`, :class:`tests.serverproc.ServerProcess`.)
    """

    port: int
    db: str

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        ...

    @property
    def ws_url(self) -> str:
        """``ws://127.0.0.1:<port>``."""
        ...

    def output(self) -> str:
        """What the server has logged so far."""
        ...


def scaled(seconds: float) -> float:
    """A timeout in the suite's one scalable unit."""
    return seconds * TIMEOUT_SCALE


async def wait_until(
    check: Callable[[], object | Awaitable[object]],
    timeout: float = 20.0,
    *,
    what: str = "condition",
) -> None:
    """Poll ``check`` (sync or async) until it returns something true.

    Raises:
        AssertionError: Not true within ``scaled(timeout)`` seconds (naming ``what``).
    """
    deadline = time.monotonic() + scaled(timeout)
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {scaled(timeout):g} s")
        await asyncio.sleep(POLL_INTERVAL)


def wait_until_sync(
    check: Callable[[], object], timeout: float = 20.0, *, what: str = "condition"
) -> None:
    """:func:`wait_until` for tests without an event loop (blocks the thread)."""
    deadline = time.monotonic() + scaled(timeout)
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {scaled(timeout):g} s")
        time.sleep(POLL_INTERVAL)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago.

    Another process may take it before the caller binds it: callers that pass
    it to a server retry with a new port when the bind fails
    (:class:`tests.serverproc.ServerProcess`, :class:`tests.pg.PgCluster`).
    In-process servers bind port 0 instead.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port that refuses connections for as long as the block runs.

    The port stays bound (never listening), so no other process can start
    serving on it meanwhile.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])
