"""Consumer runtime and the built-in consumers (firehose, webhooks, notifications).

Depends on :mod:`eventlog` only; the server depends on this package.
"""

from consumers.failure import FailurePolicy
from consumers.parking import ReplayResult
from consumers.runtime import (
    Backoff,
    ConsumerBusy,
    ConsumerManager,
    ConsumerStatus,
    Handler,
    TransactionalHandler,
    matches,
)

__all__ = [
    "Backoff",
    "ConsumerBusy",
    "ConsumerManager",
    "ConsumerStatus",
    "FailurePolicy",
    "Handler",
    "ReplayResult",
    "TransactionalHandler",
    "matches",
]
