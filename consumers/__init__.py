"""Consumer runtime and the built-in consumers (firehose, webhooks, notifications).

Depends on :mod:`eventlog` only; the server depends on this package.
"""

__all__: list[str] = []
