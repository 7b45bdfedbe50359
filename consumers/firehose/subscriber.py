"""One firehose client's state machine (sans-I/O): phases, position, bounded queue.

A :class:`Subscriber` starts in ``CATCHING_UP`` at its ``from=`` offset and is
fed pages only when its queue has room; the hub
(:class:`~consumers.firehose.core.HubCore`) moves it to ``LIVE``. A live
subscriber whose queue would exceed its bound (events or bytes) is marked
``OVERFLOWED``, its queue is dropped at once (memory is freed, the hub never
waits), and it remembers the first offset it did not get on the wire:
:attr:`Subscriber.resume_offset`.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Sequence

from consumers.firehose.frames import EventFilter, Frame, Limits

__all__ = ["Phase", "Subscriber"]


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

    def close(self, reason: str = "", *, restarted: bool = False) -> None:
        """End the subscription (client gone, or hub ended with ``reason``).

        ``restarted``: the stream was deleted, so a client reconnecting later
        finds a new stream whose offsets start again at 0: resume from there.
        """
        if self.phase in (Phase.CLOSED, Phase.OVERFLOWED):
            return
        self._resume = 0 if restarted else self._after_in_flight()
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
