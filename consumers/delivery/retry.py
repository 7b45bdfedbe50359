"""Retry policy and outcome classification (sans-I/O; ``now`` is passed in).

Outcome of one attempt (:func:`classify`), the table the engine applies:

==================================  ================  ==========================================
what the attempt got                verdict           what happens next
==================================  ================  ==========================================
2xx                                 ``delivered``     done
timeout, connection refused/reset,  ``retry``         the schedule's next step
DNS failure, malformed response
5xx                                 ``retry``         the schedule, or ``Retry-After`` on a 503
429                                 ``rate_limited``  ``Retry-After`` (else the schedule); does
                                                      *not* use up an attempt
                                                      (a ``Retry-After`` of 0 or a past date:
                                                      the schedule)
3xx                                 ``failed``        final: redirects are not followed
410 Gone                            ``disable``       final, and the endpoint is disabled
any other 4xx, 1xx                  ``failed``        final
target refused by the SSRF guard    ``failed``        final
==================================  ================  ==========================================

A ``retry`` after the last attempt becomes ``failed``; at most
:attr:`RetryPolicy.max_rate_limited` 429 waits are free
(:func:`consumers.delivery.machine_rules.outcome` applies both). Target kinds
may classify answers their own way, usually falling back to :func:`classify`.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping
from datetime import UTC
from typing import Literal

import msgspec

from eventlog.backoff import Backoff

__all__ = [
    "DEFAULT_SCHEDULE",
    "SHORT_SCHEDULE",
    "AttemptResult",
    "Classification",
    "ErrorKind",
    "RetryPolicy",
    "Verdict",
    "classify",
    "parse_retry_after",
]

#: Immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: about a day (27.6 h),
#: the schedule of the Standard Webhooks guidance and the established services.
DEFAULT_SCHEDULE: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
#: The short preset: retries 1 s, 2 s and 4 s after the first attempt.
SHORT_SCHEDULE: tuple[float, ...] = (1, 2, 4)

MAX_DELAY = 7 * 86400.0
MAX_SCHEDULE_STEPS = 50

ErrorKind = Literal["timeout", "connect", "dns", "reset", "protocol", "unsafe_target", "invalid"]
"""Why an attempt got no HTTP status: the first five are retryable, the last two final."""

Verdict = Literal["delivered", "retry", "rate_limited", "failed", "disable"]

_RETRYABLE_ERRORS = frozenset({"timeout", "connect", "dns", "reset", "protocol"})


def _between(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:  # also rejects NaN
        raise ValueError(f"{name} must be between {low:g} and {high:g}, got {value!r}")


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """When to try again.

    Attributes:
        schedule: Seconds to wait before retry 1, 2, ... (the first attempt is
            immediate); attempts past the end reuse the last delay.
        max_attempts: Attempts in all, the first included (default: one more
            than the schedule's steps).
        jitter: Each delay is spread uniformly by ± this fraction (0 to 1).
        max_retry_after: Longest ``Retry-After`` honoured, in seconds; longer
            answers are cut to it.
        max_rate_limited: Most 429 waits one delivery may take (they do not
            count as attempts).
    """

    schedule: tuple[float, ...] = DEFAULT_SCHEDULE
    max_attempts: int | None = None
    jitter: float = 0.2
    max_retry_after: float = 6 * 3600.0
    max_rate_limited: int = 100

    def __post_init__(self) -> None:
        if len(self.schedule) > MAX_SCHEDULE_STEPS:
            raise ValueError(f"a retry schedule has at most {MAX_SCHEDULE_STEPS} steps")
        for delay in self.schedule:
            _between("retry delays", delay, 0, MAX_DELAY)
        if self.max_attempts is not None:
            _between("max_attempts", self.max_attempts, 1, 100)
            if self.max_attempts > 1 and not self.schedule:
                raise ValueError("max_attempts > 1 needs a non-empty schedule")
        _between("jitter", self.jitter, 0, 1)
        _between("max_retry_after", self.max_retry_after, 0, MAX_DELAY)
        _between("max_rate_limited", self.max_rate_limited, 0, 10_000)

    @property
    def attempts(self) -> int:
        """Attempts in all, the first included."""
        return self.max_attempts if self.max_attempts is not None else len(self.schedule) + 1

    @property
    def backoff(self) -> Backoff:
        """The schedule as an :class:`~eventlog.backoff.Backoff` (± ``jitter``)."""
        return Backoff(steps=self.schedule or (0.0,), jitter=self.jitter)

    def delay(self, retry: int, rand: float) -> float:
        """Seconds before retry number ``retry`` (1-based), jittered by ``rand`` in [0, 1)."""
        return self.backoff.delay(retry, rand)

    @classmethod
    def preset(cls, name: str) -> RetryPolicy:
        """``"default"`` (about a day) or ``"short"`` (1 s, 2 s, 4 s)."""
        if name == "default":
            return cls()
        if name == "short":
            return cls(schedule=SHORT_SCHEDULE, jitter=0.0)
        raise ValueError(f"unknown retry preset {name!r}: use 'default' or 'short'")


class AttemptResult(msgspec.Struct, frozen=True, gc=False):
    """What one HTTP attempt produced (built by the sender).

    Attributes:
        status: HTTP status, or None when no response came.
        headers: Response headers (case-insensitive names; look them up in lower case).
        body: The start of the response body (at most the sender's ``READ_LIMIT``).
        error: Why there is no status.
        message: Human-readable error detail (never contains secrets).
        duration: Seconds from start of the request to the end of reading.
    """

    status: int | None
    headers: Mapping[str, str]
    body: bytes
    error: ErrorKind | None
    message: str
    duration: float

    @classmethod
    def failed(cls, error: ErrorKind, message: str, started: float) -> AttemptResult:
        """An attempt that got no response, timed from ``started`` (``time.monotonic()``)."""
        return cls(None, {}, b"", error, message, time.monotonic() - started)


class Classification(msgspec.Struct, frozen=True, gc=False):
    """The verdict on an attempt, with a ``Retry-After`` wait if the receiver asked for one."""

    verdict: Verdict
    reason: str
    retry_after: float | None = None


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date); None if absent,
    unparseable, or no wait at all (``0``, a date already past): then the schedule applies,
    so a receiver that keeps saying "now" is not asked again at once, a hundred times."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - now
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def classify(result: AttemptResult, now: float) -> Classification:
    """The default classification table (see the module docstring)."""
    status = result.status
    if status is None:
        kind = result.error or "protocol"
        verdict: Verdict = "retry" if kind in _RETRYABLE_ERRORS else "failed"
        return Classification(verdict, f"{kind}: {result.message}")
    if 200 <= status < 300:
        return Classification("delivered", f"HTTP {status}")
    retry_after = parse_retry_after(result.headers.get("retry-after"), now)
    if status == 429:
        return Classification("rate_limited", "HTTP 429", retry_after)
    if status >= 500:
        return Classification("retry", f"HTTP {status}", retry_after if status == 503 else None)
    if status == 410:
        return Classification("disable", "HTTP 410 Gone: the receiver asked to stop")
    if 300 <= status < 400:
        return Classification("failed", f"HTTP {status}: redirects are not followed")
    return Classification("failed", f"HTTP {status}")
