"""Per-target pacing for chat targets: serialised sends that respect rate-limit answers.

The engine reschedules the delivery that got a ``429``; this module keeps every
*other* request to that target back until the wait is over, and slows down
before a 429 (``docs/notifications.md``, "Rate limits"). A target is its URL
without the query string (Discord's bucket is the webhook).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import urlsplit

from consumers.delivery.retry import AttemptResult, parse_retry_after
from consumers.delivery.sender import Sender
from consumers.notify import discord

__all__ = ["Pacer", "PacingSender", "target_of"]

#: Longest pause a rate-limit answer can impose on a target, in seconds (the
#: engine's default ``max_retry_after``, so a held target and its rescheduled
#: delivery wait alike).
MAX_PAUSE = 6 * 3600.0

AltTransport = Callable[[str, bytes, float], Awaitable[AttemptResult]]
"""Sends to URLs that are not HTTP (Apprise): ``(url, body, timeout) -> result``."""


def target_of(url: str) -> str:
    """The pacing key of a URL: scheme, host and path, without query or fragment."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _host_of(target: str) -> str:
    return urlsplit(target).netloc


class Pacer:
    """When each target may be sent to next (sans-I/O)."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._host_until: dict[str, float] = {}

    def delay(self, target: str, now: float) -> float:
        """Seconds to wait before the next request to ``target`` (0 if it may go now)."""
        until = max(self._until.get(target, 0.0), self._host_until.get(_host_of(target), 0.0))
        return max(0.0, until - now)

    def observe(self, target: str, result: AttemptResult, now: float) -> None:
        """Learn from one answer of ``target``."""
        if result.status == 429:
            wait, global_limit = discord.retry_after(result, now)
            # A 429 without a wait: back off a little rather than hammer.
            until = now + min(1.0 if wait is None else wait, MAX_PAUSE)
            if global_limit:
                _hold(self._host_until, _host_of(target), until)
            _hold(self._until, target, until)
            return
        remaining = result.headers.get("x-ratelimit-remaining")
        # Seconds, read like a Retry-After (a negative wait holds nothing).
        reset_after = parse_retry_after(result.headers.get("x-ratelimit-reset-after"), now)
        if remaining is not None and remaining.strip() == "0" and reset_after is not None:
            _hold(self._until, target, now + min(reset_after, MAX_PAUSE))


def _hold(holds: dict[str, float], key: str, until: float) -> None:
    holds[key] = max(holds.get(key, 0.0), until)


class PacingSender(Sender):
    """A :class:`Sender` that serialises and paces the targets registered with :meth:`pace`.

    Args:
        allow_private: As for :class:`Sender`.
        clock: Monotonic seconds (tests may pass their own).
        transports: Senders for URL prefixes that are not HTTP, e.g.
            ``{"apprise+": send_apprise}``; the prefix is stripped before the call.
    """

    def __init__(
        self,
        *,
        allow_private: bool = False,
        clock: Callable[[], float] = time.monotonic,
        transports: Mapping[str, AltTransport] | None = None,
    ) -> None:
        super().__init__(allow_private=allow_private)
        self.pacer = Pacer()
        self.clock = clock
        self.transports = dict(transports or {})
        self._paced: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}

    def pace(self, url: str) -> None:
        """Serialise and pace requests to ``url``'s target from now on."""
        self._paced.add(target_of(url))

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> AttemptResult:
        """Send like :meth:`Sender.post`; paced targets one at a time, when the pacer allows."""
        for prefix, transport in self.transports.items():
            if url.startswith(prefix):
                return await transport(url[len(prefix) :], body, timeout)
        target = target_of(url)
        if target not in self._paced:
            return await super().post(url, body, headers, timeout)
        lock = self._locks.setdefault(target, asyncio.Lock())
        async with lock:
            # A deadline, not an event: sleep until it, then look again (a Discord
            # global limit seen meanwhile on another target may have pushed it).
            while (wait := self.pacer.delay(target, self.clock())) > 0:  # noqa: ASYNC110
                await asyncio.sleep(wait)
            result = await super().post(url, body, headers, timeout)
            self.pacer.observe(target, result, self.clock())
            return result
