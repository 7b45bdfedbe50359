"""Storage backends behind one :class:`~eventlog.storage.base.Storage` protocol.

``memory`` (tests, ephemeral logs), ``sqlite`` (the embedded default) and
``postgres`` (several processes on several hosts).
"""

from eventlog.storage.base import Appended, AppendOutcome, AppendRequest, PendingEvent, Storage

__all__ = ["AppendOutcome", "AppendRequest", "Appended", "PendingEvent", "Storage"]
