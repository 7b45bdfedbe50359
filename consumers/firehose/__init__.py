"""The firehose: per-stream fan-out of the log to WebSocket and SSE clients.

:mod:`~consumers.firehose.hub` is the I/O shell (one hub task per stream);
:mod:`~consumers.firehose.core` is the sans-I/O fan-out it drives, built from
:mod:`~consumers.firehose.params` (query parameters),
:mod:`~consumers.firehose.frames` (frames, filters, limits, the backlog) and
:mod:`~consumers.firehose.subscriber` (one client's state machine).
"""

from consumers.firehose.core import HubCore
from consumers.firehose.frames import Backlog, EventFilter, Frame, Limits, encode_frame
from consumers.firehose.hub import (
    Firehose,
    FirehoseFull,
    FirehoseHub,
    Subscription,
    SubscriptionEnded,
)
from consumers.firehose.params import (
    MAX_BATCH,
    MAX_TYPE_PATTERNS,
    Start,
    parse_batch,
    parse_from,
    parse_key,
    parse_last_event_id,
    parse_types,
)
from consumers.firehose.subscriber import Phase, Subscriber

__all__ = [
    "MAX_BATCH",
    "MAX_TYPE_PATTERNS",
    "Backlog",
    "EventFilter",
    "Firehose",
    "FirehoseFull",
    "FirehoseHub",
    "Frame",
    "HubCore",
    "Limits",
    "Phase",
    "Start",
    "Subscriber",
    "Subscription",
    "SubscriptionEnded",
    "encode_frame",
    "parse_batch",
    "parse_from",
    "parse_key",
    "parse_last_event_id",
    "parse_types",
]
