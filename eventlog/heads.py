"""Wake-ups on append: who is waiting for which stream to grow.

The writer (or a backend's cross-process notification) calls
:meth:`HeadWatcher.advance`; long-polls, consumers and firehose hubs await
:meth:`HeadWatcher.wait_beyond`. No busy loop: a waiter sleeps on an
:class:`asyncio.Event` that the next advance of its stream sets. A slow
periodic re-check (``recheck``) also catches appends made by another process
on a backend that cannot notify (several processes on one SQLite file).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

__all__ = ["HeadWatcher"]


class HeadWatcher:
    """Tracks known stream heads and wakes waiters when they move.

    Args:
        fetch_head: Reads a stream's current next offset from storage.
        recheck: Seconds between storage re-checks while waiting (None: never).
    """

    def __init__(
        self, fetch_head: Callable[[str], Awaitable[int]], *, recheck: float | None = 1.0
    ) -> None:
        self._fetch_head = fetch_head
        self._recheck = recheck
        self._heads: dict[str, int] = {}
        self._events: dict[str, asyncio.Event] = {}
        self._parked: dict[str, int] = {}
        self._closed = False

    def parked(self, stream: str) -> int:
        """How many waiters are asleep until ``stream`` grows (gauges, and tests that
        act once a reader has parked)."""
        return self._parked.get(stream, 0)

    def known_head(self, stream: str) -> int | None:
        """The last head seen for the stream, if any."""
        return self._heads.get(stream)

    def advance(self, stream: str, next_offset: int) -> None:
        """Record that ``stream``'s next offset is at least ``next_offset``; wake waiters.

        A negative ``next_offset`` means the stream was deleted (by another
        process): same as :meth:`reset`.
        """
        if next_offset < 0:
            self.reset(stream)
            return
        if next_offset > self._heads.get(stream, -1):
            self._heads[stream] = next_offset
        event = self._events.pop(stream, None)
        if event is not None:
            event.set()

    def reset(self, stream: str) -> None:
        """Forget a stream's head (it was deleted) and wake its waiters."""
        self._heads.pop(stream, None)
        event = self._events.pop(stream, None)
        if event is not None:
            event.set()

    def wake_all(self) -> None:
        """Wake every waiter and make further waits return False (the log is closing)."""
        self._closed = True
        for event in self._events.values():
            event.set()
        self._events.clear()

    async def wait_beyond(self, stream: str, offset: int, timeout: float | None) -> bool:
        """Wait until the stream holds an event at ``offset`` (head > offset).

        Returns True when it does, False when ``timeout`` seconds passed first.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        stale = False
        while not self._closed:
            event = self._events.get(stream)
            if event is None:
                event = self._events[stream] = asyncio.Event()
            head = self._heads.get(stream)
            if head is None or stale:
                # Storage is asked only for a head not known yet, or after a
                # re-check interval passed quietly; local appends and backend
                # notifications keep known heads current without a query.
                head = max(await self._fetch_head(stream), head or 0)
                self._heads[stream] = max(head, self._heads.get(stream, 0))
                stale = False
            if head > offset:
                return True
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return False
            wait = remaining
            if self._recheck is not None:
                wait = self._recheck if wait is None else min(wait, self._recheck)
            self._parked[stream] = self._parked.get(stream, 0) + 1
            try:
                await asyncio.wait_for(event.wait(), wait)
            except TimeoutError:
                stale = True  # re-read storage: another process may have appended
            else:
                if self._heads.get(stream) is None:
                    return True  # stream reset: let the caller re-read
            finally:
                if self._parked[stream] == 1:
                    del self._parked[stream]
                else:
                    self._parked[stream] -= 1
        return False
