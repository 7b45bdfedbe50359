"""What both firehose transports share: the app's firehose, its metrics, request checks.

:func:`prepare` validates a firehose request (stream name, auth, ``from``,
``types``, ``key``, ``batch``, ``Last-Event-ID``) before the WebSocket upgrade
or the first SSE byte, so that every bad request gets a 4xx JSON error.
:data:`~server.errors.CLOSE_CODES` lists the close codes used after the upgrade;
:func:`ended_close` picks one when the hub ends a subscription.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from prometheus_client import Counter, Gauge
from starlette.requests import HTTPConnection

from consumers.firehose import EventFilter, Firehose, Limits, Subscription, SubscriptionEnded
from consumers.firehose.params import parse_query
from eventlog import EventLog, OffsetOutOfRange, StreamNotFound
from server.api.params import refuse_repeats, refuse_unknown
from server.config import ServerConfig
from server.errors import CLOSE_CODES, CLOSE_GONE, CLOSE_SLOW, shown_text, ws_close_code_for
from server.metrics import metrics_of
from server.tenancy import authorize, scope_of

__all__ = [
    "CLOSE_CODES",
    "CLOSE_GONE",
    "CLOSE_SLOW",
    "DEFAULT_STREAM",
    "FirehoseMetrics",
    "FirehoseRequest",
    "Transport",
    "ended_close",
    "firehose_of",
    "gone_reason",
    "prepare",
    "race",
    "stopping_task",
]

DEFAULT_STREAM = "events"
#: The query parameters of the SSE and WebSocket firehose: a misspelt filter
#: (``tpyes=``) is a 400, not an unfiltered feed. Browsers' WebSockets cannot
#: set headers, so the WebSocket also takes its key as ``access_token``.
SSE_PARAMS = ("from", "types", "key", "batch")
WS_PARAMS = (*SSE_PARAMS, "access_token")

Transport = Literal["ws", "sse"]


def firehose_of(conn: HTTPConnection) -> Firehose:
    """The app's :class:`Firehose`, created with the server's limits on first use."""
    state = conn.app.state
    firehose: Firehose | None = getattr(state, "firehose", None)
    if firehose is None:
        config: ServerConfig = state.config
        limits = Limits(
            queue_events=config.firehose_queue_events,
            queue_bytes=config.firehose_queue_bytes,
            page=config.firehose_page,
            backlog_events=config.firehose_backlog_events,
        )
        log: EventLog = state.log
        firehose = state.firehose = Firehose(log, limits, config.firehose_max_clients)
    return firehose


class FirehoseMetrics:
    """The firehose's metrics on the server's registry (labelled by transport)."""

    def __init__(self, conn: HTTPConnection) -> None:
        m = metrics_of(conn.app)
        self.clients: Gauge = m.gauge(
            "firehose_clients", "Connected firehose clients", ["transport"]
        )
        self.frames: Counter = m.counter(
            "firehose_frames_sent", "Firehose frames (messages) sent", ["transport"]
        )
        self.events: Counter = m.counter(
            "firehose_events_sent", "Events sent to firehose clients", ["transport"]
        )
        self.bytes: Counter = m.counter(
            "firehose_bytes_sent", "Payload bytes sent to firehose clients", ["transport"]
        )
        self.slow: Counter = m.counter(
            "firehose_slow_disconnects", "Firehose clients closed for falling behind", ["transport"]
        )
        self.refused: Counter = m.counter(
            "firehose_refused_clients",
            "Firehose clients refused at the client limit",
            ["transport"],
        )


@dataclass(frozen=True)
class FirehoseRequest:
    """A validated firehose request: the stream, the first offset, the filter, the batch.

    ``show`` rewrites a frame's stream as a tenant's key sees it (None: as stored;
    :mod:`server.tenancy`).
    """

    stream: str
    start: int
    filter: EventFilter
    batch: int
    show: Callable[[str], str] | None = None
    tenant: str | None = None


async def prepare(conn: HTTPConnection, stream: str, *, sse: bool) -> FirehoseRequest:
    """Validate everything before the upgrade: stream name, auth, parameters, start offset."""
    given = stream
    stream = authorize(conn, "read", given)
    scope = scope_of(conn)
    refuse_repeats(conn.scope["query_string"])  # the middleware does it for HTTP, not WS
    refuse_unknown(conn.query_params, SSE_PARAMS if sse else WS_PARAMS)
    query = parse_query(conn.query_params, conn.headers.get("last-event-id") if sse else None)
    log: EventLog = conn.app.state.log
    try:
        info = await log.stream_info(stream)
        first, head = info.first_offset, info.next_offset
    except StreamNotFound:
        if given != DEFAULT_STREAM:
            raise
        first = head = 0  # the default stream always exists, empty until the first append
    start = query.start(first, head)
    if start < first:
        raise OffsetOutOfRange(stream, start, first)
    show = None if scope.sees_all or scope.tenant is None else scope.frame
    return FirehoseRequest(stream, start, query.filter, query.batch, show, scope.tenant)


def ended_close(sub: Subscription, tenant: str | None = None) -> tuple[int, str]:
    """The close code and reason when the hub ended a subscription: slow client, or stopped.

    ``tenant``: the key's tenant, whose names the reason gives as it names them.
    """
    ended = SubscriptionEnded(
        sub.subscriber.phase, sub.resume_offset, sub.subscriber.reason or "firehose ended"
    )
    if ended.code == "slow_client":
        return ws_close_code_for(ended), f"slow client; reconnect with from={sub.resume_offset}"
    return ws_close_code_for(ended), shown_text(ended.reason, tenant)


def gone_reason(exc: OffsetOutOfRange) -> str:
    """The close reason when retention removed events the client needed."""
    return (
        f"offsets {exc.offset}-{exc.first - 1} were removed by retention ({exc.skipped} events "
        f"skipped); resume from={exc.first}"
    )


def stopping_task(conn: HTTPConnection) -> asyncio.Task[bool] | None:
    """A task that ends when the server starts shutting down (None without that event)."""
    stopping: asyncio.Event | None = getattr(conn.app.state, "stopping", None)
    return None if stopping is None else asyncio.create_task(stopping.wait())


async def race(
    conn: HTTPConnection,
    sub: Subscription,
    sender: asyncio.Task[Any],
    receiver: asyncio.Task[Any],
) -> asyncio.Task[bool] | None:
    """Run a transport's sender and receiver until one of them, or the server, stops.

    The subscription's end cancels the sender (a slow or ended client may be
    blocked in a send); every task is cancelled and awaited on the way out.
    Returns the shutdown watch (:func:`stopping_task`), so that the caller can
    tell a shutdown from the other endings.
    """
    sub.on_end = sender.cancel
    stopping = stopping_task(conn)
    tasks = {sender, receiver} | ({stopping} if stopping else set())
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        sub.on_end = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return stopping
