"""Consumer runtime and the built-in consumers (firehose, webhooks, notifications).

Depends on :mod:`eventlog` only; the server depends on this package.
"""

from consumers.runtime import Backoff, ConsumerManager, ConsumerStatus, Handler, matches

__all__ = ["Backoff", "ConsumerManager", "ConsumerStatus", "Handler", "matches"]
