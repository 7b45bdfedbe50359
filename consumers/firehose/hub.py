"""The firehose: one hub per stream reads the log once and pushes to every client's queue.

This is the I/O shell around :mod:`consumers.firehose.core`. A
:class:`Firehose` owns the hubs of one log and the client count; a
:class:`FirehoseHub` runs one pump task per stream (``log.wait`` →
``log.read`` → encode once → :meth:`HubCore.publish`); each client holds a
:class:`Subscription` whose :meth:`~Subscription.frames` first catches up
(from the hub's backlog or from storage, one page at a time, only as fast as
the client drains its queue) and then returns what the hub pushed.

Producers never broadcast: everything a client sees came through the log.
The hub never waits for a client: a client whose queue passes its bound is
dropped from the hub at once and its transport is told to close it with the
offset to resume from.

::

    firehose = Firehose(log, Limits())
    async with await firehose.subscribe("orders", start=0) as sub:
        while True:
            for frame in await sub.frames(100):
                print(frame.text)
                sub.sent(1)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from consumers.firehose.core import HubCore
from consumers.firehose.frames import EventFilter, Frame, Limits, encode_frame
from consumers.firehose.subscriber import Phase, Subscriber
from eventlog.closing import AsyncClosing
from eventlog.errors import LogClosed, OffsetOutOfRange, StreamNotFound, Unavailable
from eventlog.log import EventLog

__all__ = ["Firehose", "FirehoseFull", "FirehoseHub", "Subscription", "SubscriptionEnded"]

logger = logging.getLogger("eventlog.firehose")


class FirehoseFull(Unavailable):
    """The configured maximum number of firehose clients is reached."""

    code = "too_many_clients"

    def __init__(self, limit: int) -> None:
        super().__init__(f"too many firehose clients (limit {limit}); retry later")
        self.limit = limit


class SubscriptionEnded(Unavailable):
    """A subscription is over: the client was too slow, or the hub stopped.

    Its code is ``slow_client`` for a client that fell behind, else
    ``subscription_ended``.

    Attributes:
        phase: ``Phase.OVERFLOWED`` (too slow) or ``Phase.CLOSED``.
        resume_offset: The first offset the client was not sent.
        reason: Why, for humans.
    """

    code = "subscription_ended"

    def __init__(self, phase: Phase, resume_offset: int, reason: str) -> None:
        super().__init__(reason, code="slow_client" if phase is Phase.OVERFLOWED else None)
        self.phase = phase
        self.resume_offset = resume_offset
        self.reason = reason

    @property
    def slow(self) -> bool:
        """True if the client was dropped for falling behind."""
        return self.phase is Phase.OVERFLOWED


class Subscription(AsyncClosing):
    """One client's feed. Get one from :meth:`Firehose.subscribe`; close it when done.

    Attributes:
        on_end: Called once (synchronously) when the subscription ends while
            the client may be blocked in a send (slow client, hub stopped):
            the transport cancels its sender there.
    """

    def __init__(self, hub: FirehoseHub, sub: Subscriber) -> None:
        self._hub = hub
        self.subscriber = sub
        self._wake = asyncio.Event()
        self.on_end: Callable[[], object] | None = None
        self._closed = False
        sub.notify = self._notify

    def _notify(self) -> None:
        self._wake.set()
        if self.subscriber.phase in (Phase.OVERFLOWED, Phase.CLOSED) and self.on_end:
            on_end, self.on_end = self.on_end, None
            on_end()

    @property
    def resume_offset(self) -> int:
        """The first offset the client has not been sent."""
        return self.subscriber.resume_offset

    async def frames(self, max_frames: int, idle_timeout: float | None = None) -> list[Frame]:
        """Wait for the next frames to send (at most ``max_frames``).

        Call :meth:`sent` for each one once it is on the wire. Returns ``[]``
        after ``idle_timeout`` seconds without events (time for a keepalive).

        Raises:
            SubscriptionEnded: The client was too slow, or the hub stopped.
            OffsetOutOfRange: Retention removed events the client still needed.
        """
        sub = self.subscriber
        while True:
            frames = sub.take(max_frames)
            if frames:
                return frames
            if sub.phase in (Phase.OVERFLOWED, Phase.CLOSED):
                raise SubscriptionEnded(sub.phase, sub.resume_offset, sub.reason)
            if sub.phase is Phase.CATCHING_UP:
                await self._hub.catch_up(sub)
                continue
            self._wake.clear()
            try:
                async with asyncio.timeout(idle_timeout):
                    await self._wake.wait()
            except TimeoutError:
                return []

    def sent(self, count: int = 1) -> None:
        """Report ``count`` frames of the last :meth:`frames` call as sent."""
        self.subscriber.sent(count)

    def close(self) -> None:
        """Leave the hub. Idempotent."""
        if not self._closed:
            self._closed = True
            self.on_end = None
            self.subscriber.close("client gone")
            self._hub.release(self.subscriber)

    async def _exit(self) -> None:
        self.close()


class FirehoseHub:
    """One stream's pump: reads the log once, publishes to the hub core.

    Started by :class:`Firehose` with the first subscriber, stopped with the last.
    """

    def __init__(
        self, log: EventLog, stream: str, limits: Limits, on_stop: Callable[[FirehoseHub], None]
    ) -> None:
        self.log = log
        self.stream = stream
        self.limits = limits
        self._on_stop = on_stop
        self.core: HubCore | None = None
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._members: dict[int, Subscriber] = {}
        self.slow_disconnects = 0

    def start(self) -> None:
        """Start the pump task (once)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"firehose:{self.stream}")

    async def ready(self) -> HubCore:
        """Wait until the hub knows its starting head."""
        await self._ready.wait()
        if self.core is None:
            raise LogClosed("the firehose hub could not start: the log is closed")
        return self.core

    def join(self, sub: Subscriber) -> None:
        """Count a subscriber as a member (it joins the live set itself when caught up)."""
        self._members[id(sub)] = sub

    def release(self, sub: Subscriber) -> None:
        """Forget a subscriber; stop the hub if it was the last."""
        self._members.pop(id(sub), None)
        if self.core is not None:
            self.core.leave(sub)
        if not self._members:
            self.stop()

    @property
    def members(self) -> int:
        """Subscribers attached to this hub (catching up or live)."""
        return len(self._members)

    def stop(self) -> None:
        """Cancel the pump and end every subscriber."""
        if self._task is not None:
            self._task.cancel()
        self._end("firehose hub stopped")

    @property
    def stopped(self) -> bool:
        """True once the pump has ended (no more live events from this hub)."""
        return self._task is not None and self._task.done()

    def _end(self, reason: str, *, deleted: bool = False) -> None:
        self._on_stop(self)  # a later subscriber gets a fresh hub
        self._ready.set()
        for sub in list(self._members.values()):
            sub.close(reason, restarted=deleted)
        if self.core is not None:
            self.core.close_all(reason, restarted=deleted)

    async def catch_up(self, sub: Subscriber) -> None:
        """One catch-up step for a subscriber: join live, or feed it one page."""
        core = await self.ready()
        if core.try_join(sub):
            return
        page = core.catch_up_page(sub)
        if page is None:
            start = sub.next_offset
            events = await self.log.read(self.stream, start, sub.limits.page)
            if not events:
                # Storage has nothing there yet the hub is ahead: the stream was
                # deleted and recreated. Wait instead of spinning.
                await self.log.wait(self.stream, start, timeout=1.0)
                return
            page = [encode_frame(e) for e in events]
        sub.feed(page)
        core.try_join(sub)

    async def _run(self) -> None:
        log, stream, page = self.log, self.stream, self.limits.page
        reason = "server shutting down"
        deleted = False
        try:
            core = self.core = HubCore((await log.bounds(stream))[1], self.limits)
            self._ready.set()
            while True:
                known = log.known_head(stream)
                # Only wait when the log has not already told us about newer
                # events: under load the pump goes read, publish, read.
                if (known is None or known <= core.next_offset) and not await log.wait(
                    stream, core.next_offset
                ):
                    break  # the log is closing
                try:
                    events = await log.read(stream, core.next_offset, page)
                except OffsetOutOfRange as exc:
                    core.skip_to(exc.first)
                    continue
                if not events:
                    try:
                        await log.stream_info(stream)
                    except StreamNotFound:
                        reason = f"stream {stream!r} was deleted"
                        deleted = True
                        break
                    await asyncio.sleep(0.05)  # head moved but nothing readable yet
                    continue
                overflowed = core.publish([encode_frame(e) for e in events])
                self.slow_disconnects += len(overflowed)
        except LogClosed:
            pass
        except asyncio.CancelledError:
            raise
        except Exception:  # a storage failure: end the clients, never hang them
            logger.exception("firehose hub for %r failed", stream)
            reason = "firehose hub failed"
        self._end(reason, deleted=deleted)


class Firehose:
    """The hubs of one log, created on demand, and the server-wide client limit.

    Args:
        log: The log to fan out.
        limits: Per-client and backlog bounds.
        max_clients: Most concurrent subscriptions (WebSocket and SSE together).
    """

    def __init__(self, log: EventLog, limits: Limits | None = None, max_clients: int = 1000):
        self.log = log
        self.limits = limits or Limits()
        self.max_clients = max_clients
        self.hubs: dict[str, FirehoseHub] = {}
        self.clients = 0

    def admit(self) -> None:
        """Count one more client.

        Raises:
            FirehoseFull: The limit is reached.
        """
        if self.clients >= self.max_clients:
            raise FirehoseFull(self.max_clients)
        self.clients += 1

    def leave(self) -> None:
        """Count one client less (pairs with :meth:`admit`)."""
        self.clients = max(0, self.clients - 1)

    def hub(self, stream: str) -> FirehoseHub:
        """The stream's hub, started if it was not running."""
        hub = self.hubs.get(stream)
        if hub is None or hub.stopped:
            hub = self.hubs[stream] = FirehoseHub(self.log, stream, self.limits, self._forget)
            hub.start()
        return hub

    def _forget(self, hub: FirehoseHub) -> None:
        if self.hubs.get(hub.stream) is hub:
            del self.hubs[hub.stream]

    async def subscribe(
        self, stream: str, start: int, event_filter: EventFilter | None = None
    ) -> Subscription:
        """A subscription to ``stream`` from offset ``start`` (resolve ``from=`` first).

        An offset beyond the head waits for it. Close the subscription (or use
        it with ``async with``) when the client leaves.
        """
        hub = self.hub(stream)
        sub = Subscriber(start, event_filter or EventFilter(), self.limits)
        hub.join(sub)
        subscription = Subscription(hub, sub)
        try:
            await hub.ready()
        except BaseException:
            subscription.close()
            raise
        return subscription

    def close(self) -> None:
        """Stop every hub (their clients end with "firehose hub stopped")."""
        for hub in list(self.hubs.values()):
            hub.stop()
        self.hubs.clear()
