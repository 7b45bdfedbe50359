"""The sans-I/O core of the firehose: frames, filters, per-client queues, the hub's fan-out.

Nothing here awaits, sleeps or touches a socket; :mod:`consumers.firehose`
pumps it. The rules it owns:

* **One encoding per event.** :func:`encode_frame` turns an :class:`~eventlog.Event`
  into its compact JSON text once; every client gets the same ``str`` object.
* **The catch-up-to-live hand-off.** A :class:`Subscriber` starts in
  ``CATCHING_UP`` at its ``from=`` offset and is fed pages (from storage or
  from the hub's in-memory :class:`Backlog`) only when its queue has room.
  :meth:`HubCore.try_join` moves it to ``LIVE`` in the same synchronous step
  that compares its position with the hub's: once ``subscriber.next_offset >=
  hub.next_offset`` every later event reaches it through
  :meth:`HubCore.publish`, and anything below its position is skipped, so the
  seam has neither a gap nor a duplicate.
* **Slow clients.** A live subscriber whose queue would exceed its bound
  (events or bytes) is marked ``OVERFLOWED``, its queue is dropped at once
  (memory is freed, the hub never waits), and it remembers the first offset
  it did not get on the wire: :attr:`Subscriber.resume_offset`.
"""

from __future__ import annotations

import enum
import fnmatch
import re
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import islice

import msgspec

from eventlog.errors import InvalidInput, InvalidPosition
from eventlog.model import BEGINNING, END, Beginning, End, Event, Offset

__all__ = [
    "MAX_BATCH",
    "MAX_TYPE_PATTERNS",
    "Backlog",
    "EventFilter",
    "Frame",
    "HubCore",
    "Limits",
    "Phase",
    "Start",
    "Subscriber",
    "encode_frame",
    "parse_batch",
    "parse_from",
    "parse_key",
    "parse_last_event_id",
    "parse_types",
]

#: Most glob patterns one ``types=`` parameter may carry.
MAX_TYPE_PATTERNS = 64
#: Largest ``batch=``.
MAX_BATCH = 1000
_MAX_PATTERN_LENGTH = 256
_MAX_KEY_LENGTH = 1024

_encoder = msgspec.json.Encoder()

Start = Beginning | End | Offset
"""Where a firehose client starts: ``BEGINNING``, ``END`` or ``Offset(n)``."""


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
    """Encode an event once; ``event.data`` (``msgspec.Raw``) is copied, never re-encoded."""
    raw = _encoder.encode(event)
    return Frame(event.offset, event.type, event.key, raw.decode(), len(raw))


# -- query parameters ----------------------------------------------------------


def parse_from(text: str | None) -> Start:
    """Parse ``from=``: an offset, ``beginning`` or ``end`` (the default when absent).

    Raises:
        InvalidPosition: Anything else (negative, not a number, empty).
    """
    if text is None:
        return END
    value = text.strip().lower()
    if value == "beginning":
        return BEGINNING
    if value == "end":
        return END
    if not value.isdigit() or not value.isascii() or len(value) > 19:
        raise InvalidPosition(
            f"from must be a non-negative offset, 'beginning' or 'end', got {text!r}"
        )
    return Offset(int(value))


def parse_last_event_id(text: str | None) -> int | None:
    """The offset to resume after from an SSE ``Last-Event-ID`` header (None if absent).

    Raises:
        InvalidPosition: Not a non-negative integer.
    """
    if text is None or not text.strip():
        return None
    value = text.strip()
    if not value.isdigit() or not value.isascii() or len(value) > 19:
        raise InvalidPosition(f"Last-Event-ID must be an event offset, got {text!r}")
    return int(value)


def parse_types(text: str | None) -> tuple[str, ...]:
    """Parse ``types=``: comma-separated glob patterns (``order.*,payment.failed``).

    ``*`` matches any run of characters (dots included), ``?`` one character,
    ``[...]`` a set, as in :func:`fnmatch.fnmatchcase`. Matching is case-sensitive.

    Raises:
        InvalidInput: An empty pattern, too many or too long patterns, control characters.
    """
    if text is None:
        return ()
    patterns = tuple(p.strip() for p in text.split(","))
    if any(not p for p in patterns):
        raise InvalidInput(f"types must be comma-separated non-empty glob patterns, got {text!r}")
    if len(patterns) > MAX_TYPE_PATTERNS:
        raise InvalidInput(f"types holds at most {MAX_TYPE_PATTERNS} patterns")
    for p in patterns:
        if len(p) > _MAX_PATTERN_LENGTH:
            raise InvalidInput(f"a types pattern is at most {_MAX_PATTERN_LENGTH} characters")
        if any(ord(c) < 32 or ord(c) == 127 for c in p):
            raise InvalidInput("types patterns must not contain control characters")
    return patterns


def parse_key(text: str | None) -> str | None:
    """Parse ``key=``: an exact event key.

    Raises:
        InvalidInput: Empty or longer than 1024 characters.
    """
    if text is None:
        return None
    if not text or len(text) > _MAX_KEY_LENGTH:
        raise InvalidInput(f"key must be 1-{_MAX_KEY_LENGTH} characters")
    return text


def parse_batch(text: str | None) -> int:
    """Parse ``batch=``: events per frame, 1 (the default) to :data:`MAX_BATCH`.

    Raises:
        InvalidInput: Not an integer in range.
    """
    if text is None:
        return 1
    value = text.strip()
    if not value.isdigit() or not value.isascii() or not 1 <= int(value[:6]) <= MAX_BATCH:
        raise InvalidInput(f"batch must be an integer from 1 to {MAX_BATCH}, got {text!r}")
    return int(value)


class EventFilter:
    """Which events a client wants: type globs (any of them) and an exact key.

    An empty filter passes everything; :attr:`everything` lets the hub skip
    per-event checks for such clients.
    """

    def __init__(self, types: Sequence[str] = (), key: str | None = None) -> None:
        self.types = tuple(types)
        self.key = key
        self._type_re = (
            re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in self.types))
            if self.types
            else None
        )
        self.everything = self._type_re is None and key is None

    def matches(self, frame: Frame) -> bool:
        """True if the client wants this event."""
        if self.key is not None and frame.key != self.key:
            return False
        return self._type_re is None or self._type_re.match(frame.type) is not None

    def select(self, frames: Sequence[Frame]) -> Sequence[Frame]:
        """The frames the client wants, in order."""
        if self.everything:
            return frames
        return [f for f in frames if self.matches(f)]


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


# -- one client ----------------------------------------------------------------


class Phase(enum.Enum):
    """Where a subscriber is in its life."""

    CATCHING_UP = "catching_up"  # fed pages by its own reads, not by the hub
    LIVE = "live"  # fed by HubCore.publish
    OVERFLOWED = "overflowed"  # fell behind the bound; must be closed with resume_offset
    CLOSED = "closed"  # gone (disconnected, or the hub ended)


class Subscriber:
    """One client's position, filter and bounded queue (sans-I/O).

    The I/O shell takes frames with :meth:`take`, sends them, and reports each
    one on the wire with :meth:`sent`; so :attr:`resume_offset` is always the
    first offset the client has not been sent.

    Args:
        start: The first offset the client wants.
        event_filter: Which events it wants.
        limits: Its queue bounds.
        notify: Called (synchronously) when the queue becomes non-empty or the
            phase changes to ``OVERFLOWED`` / ``CLOSED``: wakes the sender.
    """

    def __init__(
        self,
        start: int,
        event_filter: EventFilter,
        limits: Limits,
        notify: Callable[[], None] = lambda: None,
    ) -> None:
        self.next_offset = start
        self.filter = event_filter
        self.limits = limits
        self.notify = notify
        self.phase = Phase.CATCHING_UP
        self.queue: deque[Frame] = deque()
        self.queued_bytes = 0
        self._in_flight: list[Frame] = []
        self._sent_count = 0
        self._resume: int | None = None
        self.reason = ""

    # The sender's side ---------------------------------------------------------

    def take(self, max_frames: int) -> list[Frame]:
        """Pop up to ``max_frames`` frames to send (they are in flight until :meth:`sent`)."""
        n = min(max_frames, len(self.queue))
        if n == 0:
            return []
        queue = self.queue
        frames = [queue.popleft() for _ in range(n)]
        self.queued_bytes -= sum(f.size for f in frames)
        self._in_flight = frames
        self._sent_count = 0
        return frames

    def sent(self, count: int) -> None:
        """Report that ``count`` more frames of the last :meth:`take` are on the wire."""
        self._sent_count += count

    @property
    def resume_offset(self) -> int:
        """The first offset the client has not been sent: where it should reconnect.

        Frames in flight when the subscription ends still count once the
        sender reports them with :meth:`sent`.
        """
        if self._sent_count < len(self._in_flight):
            return self._in_flight[self._sent_count].offset
        if self._resume is not None:
            return self._resume
        return self._after_in_flight()

    def _after_in_flight(self) -> int:
        """The first offset after the frames in flight: the queue's head, else the position."""
        if self.queue:
            return self.queue[0].offset
        return self.next_offset

    # The feeders' side ---------------------------------------------------------

    def feed(self, frames: Sequence[Frame]) -> None:
        """Catch-up: add a page read from storage or the backlog (from :attr:`next_offset`)."""
        if self.phase is not Phase.CATCHING_UP or not frames:
            return
        frames = _from(frames, self.next_offset)
        if not frames:
            return
        self.next_offset = frames[-1].offset + 1
        self._enqueue(self.filter.select(frames))

    def offer(self, frames: Sequence[Frame]) -> bool:
        """Live: add newly published frames; False if that overflows the client."""
        if self.phase is not Phase.LIVE:
            return True
        frames = _from(frames, self.next_offset)
        if not frames:
            return True
        selected = self.filter.select(frames)
        nbytes = sum(f.size for f in selected)
        if self.queue and (
            len(self.queue) + len(selected) > self.limits.queue_events
            or self.queued_bytes + nbytes > self.limits.queue_bytes
        ):
            self.next_offset = frames[0].offset
            self._overflow()
            return False
        self.next_offset = frames[-1].offset + 1
        self._enqueue(selected, nbytes)
        return True

    def _enqueue(self, frames: Sequence[Frame], nbytes: int | None = None) -> None:
        if not frames:
            return
        was_empty = not self.queue
        self.queue.extend(frames)
        self.queued_bytes += sum(f.size for f in frames) if nbytes is None else nbytes
        if was_empty:
            self.notify()

    def _overflow(self) -> None:
        self._resume = self._after_in_flight()
        self.phase = Phase.OVERFLOWED
        self.reason = (
            f"slow client: over {self.limits.queue_events} events or "
            f"{self.limits.queue_bytes} bytes queued"
        )
        self.queue.clear()
        self.queued_bytes = 0
        self.notify()

    def close(self, reason: str = "") -> None:
        """End the subscription (client gone, or hub ended with ``reason``)."""
        if self.phase in (Phase.CLOSED, Phase.OVERFLOWED):
            return
        self._resume = self._after_in_flight()
        self.phase = Phase.CLOSED
        self.reason = reason
        self.queue.clear()
        self.queued_bytes = 0
        self.notify()


def _from(frames: Sequence[Frame], offset: int) -> Sequence[Frame]:
    """The frames at or after ``offset`` (frames hold consecutive offsets)."""
    if not frames or frames[0].offset >= offset:
        return frames
    if frames[-1].offset < offset:
        return ()
    return frames[offset - frames[0].offset :]


# -- the hub -------------------------------------------------------------------


class HubCore:
    """One stream's fan-out: the live subscribers, the backlog, the hub's position.

    Args:
        next_offset: The first offset the hub will publish (the head when it starts).
        limits: Backlog bounds.
    """

    def __init__(self, next_offset: int, limits: Limits) -> None:
        self.next_offset = next_offset
        self.backlog = Backlog(limits.backlog_events, limits.backlog_bytes)
        self.live: dict[int, Subscriber] = {}
        self.published = 0

    def try_join(self, sub: Subscriber) -> bool:
        """Move a catching-up subscriber to live if it has reached the hub's position."""
        if sub.phase is Phase.LIVE:
            return True
        if sub.phase is not Phase.CATCHING_UP or sub.next_offset < self.next_offset:
            return False
        sub.phase = Phase.LIVE
        self.live[id(sub)] = sub
        return True

    def catch_up_page(self, sub: Subscriber) -> list[Frame] | None:
        """The next page for a catching-up subscriber from the backlog (None: read storage)."""
        return self.backlog.page(sub.next_offset, sub.limits.page)

    def publish(self, frames: Sequence[Frame]) -> list[Subscriber]:
        """Fan out newly read frames (consecutive, from :attr:`next_offset`).

        Returns the subscribers that overflowed (already removed from the hub).
        """
        if not frames:
            return []
        self.backlog.extend(frames)
        self.next_offset = frames[-1].offset + 1
        self.published += len(frames)
        overflowed = [sub for sub in self.live.values() if not sub.offer(frames)]
        for sub in overflowed:
            del self.live[id(sub)]
        return overflowed

    def skip_to(self, offset: int) -> None:
        """Jump ahead (retention removed events the hub had not read yet)."""
        if offset > self.next_offset:
            self.next_offset = offset
            self.backlog.clear()
            for sub in self.live.values():
                sub.next_offset = max(sub.next_offset, offset)

    def leave(self, sub: Subscriber) -> None:
        """Forget a subscriber."""
        self.live.pop(id(sub), None)

    def close_all(self, reason: str) -> None:
        """End every live subscriber (the hub stops)."""
        for sub in list(self.live.values()):
            sub.close(reason)
        self.live.clear()
