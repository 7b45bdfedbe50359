"""Shared test helpers: scalable timeouts, waiting for a condition, ports, stored events."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import msgspec

from eventlog import Event
from eventlog.storage.base import Storage

__all__ = [
    "TIMEOUT_SCALE",
    "Server",
    "assert_imports_none_of",
    "opened",
    "refused_port",
    "scaled",
    "stored_event",
    "terminate",
    "wait_until",
    "wait_until_sync",
]

S = TypeVar("S", bound=Storage)

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


def assert_imports_none_of(modules: str, packages: tuple[str, ...]) -> None:
    """Import ``modules`` (comma-separated) in a fresh interpreter and fail if
    that loaded any module of ``packages``: a layering check."""
    code = (
        f"import sys, {modules};"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {packages!r}];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=scaled(30))


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port that refuses connections for as long as the block runs.

    The port stays bound (never listening), so no other process can start
    serving on it meanwhile.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


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


class Process(Protocol):
    """What :func:`terminate` needs of a child process (a Popen, or a tests.forked child)."""

    def poll(self) -> int | None: ...
    def terminate(self) -> None: ...
    def kill(self) -> None: ...
    def wait(self, timeout: float | None = None) -> int: ...


def terminate(proc: Process, timeout: float) -> None:
    """SIGTERM ``proc`` if it still runs, and wait; SIGKILL it after ``timeout`` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
