"""The firehose over WebSocket and Server-Sent Events: the routes.

* ``WS  /api/events/firehose`` — the default stream, ``events``;
* ``WS  /api/streams/{stream}/firehose``;
* ``GET /api/streams/{stream}/sse``.

Query parameters: ``from`` (offset, ``beginning``, ``end``; default ``end``),
``types`` (comma-separated globs), ``key``, ``batch`` (events per frame).
Bad parameters, missing auth and unknown streams are answered before the
WebSocket upgrade with eventlog's JSON error body and a 4xx status. After the
upgrade, the close codes are (see docs/firehose.md):

====  ==========================================================================
1000  normal closure (the client closed)
1001  server shutting down, or the stream was deleted
1003  the client sent a message (the firehose is send-only)
1013  too many firehose clients; retry later
4008  slow client: its queue passed the bound; the reason names ``from=<offset>``
4416  retention removed events the client still needed; reconnect ``from=beginning``
====  ==========================================================================

The transports live in :mod:`server.api.firehose_ws` and
:mod:`server.api.firehose_sse`; what they share in :mod:`server.api.firehose_common`.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Route, WebSocketRoute

from server.api.firehose_common import CLOSE_CODES, firehose_of

# Explicit re-exports (``X as X``): these names used to live here.
from server.api.firehose_common import CLOSE_GONE as CLOSE_GONE
from server.api.firehose_common import CLOSE_SLOW as CLOSE_SLOW
from server.api.firehose_common import DEFAULT_STREAM as DEFAULT_STREAM
from server.api.firehose_common import Transport as Transport
from server.api.firehose_sse import sse as sse
from server.api.firehose_ws import FirehoseEndpoint

__all__ = ["CLOSE_CODES", "FirehoseEndpoint", "firehose_of", "routes"]

routes: list[BaseRoute] = [
    WebSocketRoute("/api/events/firehose", FirehoseEndpoint(DEFAULT_STREAM)),
    WebSocketRoute("/api/streams/{stream}/firehose", FirehoseEndpoint()),
    Route("/api/streams/{stream}/sse", sse, methods=["GET"]),
]
