"""Per-target pacing for chat targets: serialised sends that respect rate-limit answers.

Discord and Slack limit how fast one webhook may be called, and both punish
callers that keep hitting the limit. The delivery engine already reschedules
the delivery that got a ``429`` (``retry_after`` honoured, not counted as an
attempt); this module makes sure *no other* request to the same target goes
out before the wait is over, and that sends slow down before a 429 happens:

* :class:`Pacer` (sans-I/O, ``now`` passed in) keeps, per target, the
  earliest time the next request may be sent: after a ``429``, ``now +
  retry_after`` (Discord's JSON ``retry_after`` with its fraction, else
  ``Retry-After``; a Discord ``global`` limit holds every target on that
  host); after an answer with ``X-RateLimit-Remaining: 0``, ``now +
  X-RateLimit-Reset-After`` (Discord's bucket headers).
* :class:`PacingSender` is the engine's :class:`~consumers.delivery.sender.Sender`
  with one lock per paced target: requests to a target go one at a time, each
  waits until the pacer allows it, and its answer updates the pacer before
  the next one starts. Targets nobody registered (plain webhooks) pass
  straight through, unchanged.

A target is the URL without its query string (Discord's bucket is the
webhook, whatever ``?wait=true&thread_id=…`` is added).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import urlsplit

import msgspec

from consumers.delivery.retry import AttemptResult, parse_retry_after
from consumers.delivery.sender import Sender

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


def _float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    if number != number or number < 0 or number == float("inf"):
        return None
    return min(number, MAX_PAUSE)


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
        headers: Mapping[str, str] = result.headers
        if result.status == 429:
            wait, global_limit = _retry_after(result, now)
            if wait is None:
                wait = 1.0  # a 429 without a wait: back off a little rather than hammer
            wait = min(wait, MAX_PAUSE)
            if global_limit:
                host = _host_of(target)
                self._host_until[host] = max(self._host_until.get(host, 0.0), now + wait)
            self._until[target] = max(self._until.get(target, 0.0), now + wait)
            return
        remaining = headers.get("x-ratelimit-remaining")
        reset_after = _float(headers.get("x-ratelimit-reset-after"))
        if remaining is not None and remaining.strip() == "0" and reset_after is not None:
            self._until[target] = max(self._until.get(target, 0.0), now + reset_after)


def _retry_after(result: AttemptResult, now: float) -> tuple[float | None, bool]:
    try:
        data = msgspec.json.decode(result.body) if result.body else None
    except (msgspec.DecodeError, RecursionError):
        data = None
    global_limit = result.headers.get("x-ratelimit-global", "").lower() == "true"
    if isinstance(data, dict):
        global_limit = global_limit or data.get("global") is True
        wait = data.get("retry_after")
        if isinstance(wait, int | float) and not isinstance(wait, bool) and wait >= 0:
            return float(wait), global_limit
    return parse_retry_after(result.headers.get("retry-after"), now), global_limit


class PacingSender(Sender):
    """A :class:`Sender` that serialises and paces the targets registered with :meth:`pace`.

    Args:
        allow_private: As for :class:`Sender`.
        clock: Monotonic seconds (tests may pass their own).
        transports: Senders for URL prefixes that are not HTTP, e.g.
            ``{"apprise+": send_apprise}``; the prefix is stripped before the call.
        read_limit: As for :class:`Sender`.
        body_timeout: As for :class:`Sender`.
    """

    def __init__(
        self,
        *,
        allow_private: bool = False,
        clock: Callable[[], float] = time.monotonic,
        transports: Mapping[str, AltTransport] | None = None,
        read_limit: int = 64 << 10,
        body_timeout: float = 2.0,
    ) -> None:
        super().__init__(
            allow_private=allow_private, read_limit=read_limit, body_timeout=body_timeout
        )
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
