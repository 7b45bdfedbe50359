"""A remote eventlog server with the embedded log's methods: ``AsyncClient`` and ``Client``.

``AsyncClient`` is for asyncio programs, ``Client`` for everything else (it
runs an ``AsyncClient`` on an event loop in a thread of its own). Both return
the embedded log's types (:class:`~eventlog.Event`, :class:`~eventlog.StreamInfo`,
...) and raise its errors; see ``docs/client.md``.
"""

from eventlog.client.aio import DEFAULT_URL, AsyncClient
from eventlog.client.shared import Claim, Claims, SharedConsumerInfo
from eventlog.client.sync import Client, SyncClaim
from eventlog.client.sync_consumer import SyncConsumer

__all__ = [
    "DEFAULT_URL",
    "AsyncClient",
    "Claim",
    "Claims",
    "Client",
    "SharedConsumerInfo",
    "SyncClaim",
    "SyncConsumer",
]
