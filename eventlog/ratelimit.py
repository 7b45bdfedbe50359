"""A token bucket (sans-I/O): the one rate limit of eventlog.

The delivery machine paces an endpoint's ``rate_limit`` with it
(:mod:`consumers.delivery.machine`), and the server's tenant quotas limit
appends with it (:mod:`server.quotas`).
"""

from __future__ import annotations

__all__ = ["TokenBucket"]


class TokenBucket:
    """``rate`` tokens a second, bursts of up to ``burst`` (default ``rate``; at least
    one); ``now`` is passed in."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        if not rate > 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = max(1.0, burst if burst is not None else rate)
        self._tokens = self.burst
        self._stamp: float | None = None

    def take(self, now: float, count: int = 1) -> float:
        """Take ``count`` tokens: 0.0 when taken, else the seconds until they would
        be there (none taken). A count over ``burst`` is never taken at once: its
        wait is the time to fill a whole bucket."""
        if self._stamp is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if count <= self._tokens:
            self._tokens -= count
            return 0.0
        if count > self.burst:
            return self.burst / self.rate
        return (count - self._tokens) / self.rate
