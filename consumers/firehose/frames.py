"""Firehose frames: one encoding per event, client filters, limits, and the hub's backlog.

* **One encoding per event.** :func:`encode_frame` turns an :class:`~eventlog.Event`
  into its compact JSON text once; every client gets the same ``str`` object.
* Which frames a client wants is an :class:`~consumers.filter.EventFilter`
  (``types=`` and ``key=`` patterns, the dialect every consumer shares).
* :class:`Backlog` keeps the hub's most recent frames in memory, so that
  clients close to the head catch up without reading storage.
* :class:`Limits` bounds a client's queue and the backlog.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice

import msgspec

from consumers.filter import EventFilter
from eventlog.model import Event
from eventlog.repair import repair

__all__ = ["Backlog", "EventFilter", "Frame", "Limits", "encode_frame"]

_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds of one firehose client and of the hub's backlog.

    Attributes:
        queue_events: Events a client may have queued before it counts as slow.
        queue_bytes: Bytes a client may have queued before it counts as slow.
        page: Events per catch-up read (and per hub read).
        backlog_events: Recent events the hub keeps in memory so that clients
            close to the head catch up without reading storage.
        backlog_bytes: Byte bound of that backlog.
    """

    queue_events: int = 10_000
    queue_bytes: int = 16 << 20
    page: int = 1_000
    backlog_events: int = 10_000
    backlog_bytes: int = 16 << 20

    def __post_init__(self) -> None:
        for name in ("queue_events", "queue_bytes", "page", "backlog_events", "backlog_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"firehose limit {name} must be positive")


@dataclass(frozen=True, slots=True)
class Frame:
    """One event ready to send: its compact JSON text and what filters look at.

    Attributes:
        offset: The event's offset.
        type: The event's type (for ``types=`` filters).
        key: The event's key (for ``key=`` filters).
        text: The event as one compact JSON object (``data`` is the producer's bytes).
        size: Length of ``text`` in bytes.
    """

    offset: int
    type: str
    key: str | None
    text: str
    size: int


def encode_frame(event: Event) -> Frame:
    """Encode an event once; ``event.data`` (``msgspec.Raw``) is copied, never re-encoded.

    A stored event whose data is not UTF-8 (an older version could write one)
    is sent repaired, flagged by a header (:mod:`eventlog.repair`): one bad
    event never closes a client or stops the hub.
    """
    raw = _encoder.encode(event)
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raw = _encoder.encode(repair(event, "firehose"))
        text = raw.decode()
    return Frame(event.offset, event.type, event.key, text, len(raw))


# -- the backlog of recent frames ----------------------------------------------


class Backlog:
    """The hub's most recent frames, consecutive offsets, bounded by count and bytes."""

    def __init__(self, max_events: int, max_bytes: int) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._frames: deque[Frame] = deque()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def first_offset(self) -> int | None:
        """Offset of the oldest frame held, if any."""
        return self._frames[0].offset if self._frames else None

    def extend(self, frames: Iterable[Frame]) -> None:
        """Add newer frames, dropping the oldest beyond the bounds."""
        for frame in frames:
            if self._frames and frame.offset != self._frames[-1].offset + 1:
                self.clear()  # a jump (retention, stream reset): keep only what is consecutive
            self._frames.append(frame)
            self.bytes += frame.size
        while len(self._frames) > self.max_events or (
            self.bytes > self.max_bytes and len(self._frames) > 1
        ):
            self.bytes -= self._frames.popleft().size

    def clear(self) -> None:
        """Drop everything."""
        self._frames.clear()
        self.bytes = 0

    def page(self, offset: int, limit: int) -> list[Frame] | None:
        """Up to ``limit`` frames from ``offset`` on, or None if ``offset`` is not held."""
        first = self.first_offset
        if first is None or not first <= offset <= self._frames[-1].offset:
            return None
        start = offset - first
        return list(islice(self._frames, start, start + limit))
