"""The sans-I/O core of the firehose: the hub's fan-out.

Nothing here awaits, sleeps or touches a socket; :mod:`consumers.firehose.hub`
pumps it. This module owns :class:`HubCore`; the rest of the core lives in
:mod:`consumers.firehose.params` (query parameters),
:mod:`consumers.firehose.frames` (frames, filters, limits, the backlog) and
:mod:`consumers.firehose.subscriber` (one client's state machine), all
re-exported by :mod:`consumers.firehose`. The rules the core keeps:

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
* **Slow clients.** A live subscriber whose queue would exceed its bound is
  dropped, never waited for (:mod:`consumers.firehose.subscriber`).
"""

from __future__ import annotations

from collections.abc import Sequence

from consumers.firehose.frames import Backlog, Frame, Limits
from consumers.firehose.subscriber import Phase, Subscriber

__all__ = ["HubCore"]


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

    def close_all(self, reason: str, *, restarted: bool = False) -> None:
        """End every live subscriber (the hub stops; ``restarted``: the stream was deleted)."""
        for sub in list(self.live.values()):
            sub.close(reason, restarted=restarted)
        self.live.clear()
