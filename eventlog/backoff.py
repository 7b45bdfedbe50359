"""How long to wait after a failure: the one backoff policy of eventlog (sans-I/O).

:class:`Backoff` never sleeps, reads a clock or draws a random number of its
own: the caller counts consecutive failures and passes the randomness in, so
the policy is tested without an event loop. Every retry loop uses it:

=============================================  ===================================================
who waits                                      policy
=============================================  ===================================================
handler consumers (``consumers.runtime``)      ``Backoff(base=0.5, cap=60)``: full jitter
webhook / notification retries                 ``Backoff(steps=schedule, jitter=0.2)`` (see
(``consumers.delivery.retry``)                 :class:`~consumers.delivery.retry.RetryPolicy`)
the delivery ledger's recorder                 ``Backoff(steps=(0.5,), jitter=0)``: 0.5 s, again
a failed delivery worker loop (the engine)     ``Backoff(base=0.1, cap=5, jitter=0)``
the PostgreSQL head listener's reconnect       ``Backoff(base=0.1, cap=5, jitter=0)``
``eventlog tail -f`` across a server restart   ``Backoff(base=0.25, cap=5, jitter=0)``
=============================================  ===================================================

The delay after failure *n* (1-based) starts from a ceiling: ``steps[n-1]``
when a schedule of steps is given (past its end the last step repeats), else
``min(cap, base * factor ** (n-1))``. Jitter then spreads it:

* ``jitter="full"``: uniform in ``[0, ceiling]`` (spreads a crowd of retries best);
* ``jitter=j`` (0 to 1): uniform in ``[ceiling * (1-j), ceiling * (1+j)]``;
* ``jitter=0``: exactly the ceiling.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = ["Backoff"]


@dataclass(frozen=True)
class Backoff:
    """Delay after the n-th consecutive failure; exponential, or a schedule of steps.

    Attributes:
        base: The first delay's ceiling, seconds (exponential form).
        cap: The largest ceiling, seconds (exponential form).
        factor: Growth of the ceiling per failure (exponential form).
        steps: A schedule of ceilings, one per failure; when given, it replaces
            ``base``, ``factor`` and ``cap``. Empty: the exponential form.
        jitter: ``"full"`` or a fraction from 0 to 1 (see the module docstring).
    """

    base: float = 0.5
    cap: float = 60.0
    factor: float = 2.0
    steps: tuple[float, ...] = ()
    jitter: Literal["full"] | float = "full"

    def __post_init__(self) -> None:
        if not (self.base >= 0 and self.cap >= 0 and self.factor >= 1):  # also rejects NaN
            raise ValueError("backoff needs base >= 0, cap >= 0 and factor >= 1")
        if any(not step >= 0 for step in self.steps):
            raise ValueError("backoff steps must be >= 0 seconds")
        if self.jitter != "full" and not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be 'full' or a fraction from 0 to 1")

    def ceiling(self, failures: int) -> float:
        """The un-jittered delay after ``failures`` consecutive failures (1-based)."""
        n = max(failures, 1)
        if self.steps:
            return float(self.steps[min(n, len(self.steps)) - 1])
        try:
            grown = self.base * self.factor ** (n - 1)
        except OverflowError:  # a very long outage: the cap was reached long ago
            return float(self.cap)
        return float(min(self.cap, grown))

    def delay(self, failures: int, rand: float | Callable[[], float] = random.random) -> float:
        """Seconds to wait after ``failures`` consecutive failures (1-based).

        Args:
            failures: Failures in a row so far, this one included.
            rand: A uniform number in [0, 1), or a function returning one
                (tests pass a constant for a deterministic delay).
        """
        ceiling = self.ceiling(failures)
        if self.jitter == 0:
            return ceiling
        r = rand() if callable(rand) else rand
        if self.jitter == "full":
            return ceiling * r
        return max(0.0, ceiling * (1 + self.jitter * (2 * r - 1)))
