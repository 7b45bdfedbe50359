"""Cross-process wake-ups for the PostgreSQL backend: LISTEN/NOTIFY.

Every append transaction runs ``pg_notify('<schema>_heads', '<stream>:<next_offset>')``
for each stream it advanced (and ``delete_stream`` sends ``'<stream>:deleted'``);
PostgreSQL delivers the notification to every listening session when, and
only if, the transaction commits. One dedicated
connection per process LISTENs and calls the registered head listeners, so a
consumer, long-poll or firehose hub in process B wakes within milliseconds of
a commit in process A, without polling.

If the listening connection drops, a supervisor reconnects with backoff and
then re-reads every stream head (notifications sent while disconnected are
lost), so waiters never miss an append for longer than the outage.

Components that keep their own tables in the log's schema (the webhook ledger)
LISTEN on channels of their own on the same connection (:meth:`subscribe`);
after a reconnect their listeners are called with None ("news may have been
lost, look again").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg

from eventlog.backoff import Backoff
from eventlog.storage.base import HeadListener
from eventlog.storage.capabilities import TopicListener
from eventlog.storage.postgres_schema import DRIVER_ERRORS

__all__ = ["DELETED", "NotificationListener", "parse_payload"]

log = logging.getLogger("eventlog.postgres")


#: Waits between failed reconnects: 0.1 s doubling up to 5 s (reset once connected).
RECONNECT_BACKOFF = Backoff(base=0.1, cap=5.0, jitter=0)

#: The payload's head for "this stream was deleted" (``"orders:deleted"``).
DELETED = "deleted"


def parse_payload(payload: str) -> tuple[str, int] | None:
    """``"orders:42"`` -> ``("orders", 42)``; ``"orders:deleted"`` -> ``("orders", -1)``;
    None for anything malformed."""
    stream, sep, head = payload.rpartition(":")
    if not sep or not stream:
        return None
    if head == DELETED:
        return stream, -1
    if not head.isdigit():
        return None
    return stream, int(head)


class NotificationListener:
    """One LISTENing connection, kept alive.

    Args:
        connect: Opens a new connection.
        channel: The channel name (an identifier).
        heads: Reads ``(stream, next_offset)`` of every stream, for the
            re-sync after a reconnect.
        ping_interval: Seconds between liveness checks of an idle connection.
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        channel: str,
        heads: Callable[[], Awaitable[list[tuple[str, int]]]],
        *,
        ping_interval: float = 10.0,
    ) -> None:
        self._connect = connect
        self._channel = channel
        self._heads = heads
        self._ping_interval = ping_interval
        self._listeners: list[HeadListener] = []
        self._topics: dict[str, list[TopicListener]] = {}
        self._known: set[str] = set()  # streams heard of, to spot deletions on re-sync
        self._conn: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: Reconnections so far (for tests and metrics).
        self.reconnects = 0

    def add(self, listener: HeadListener) -> None:
        """Call ``listener(stream, next_offset)`` on every notification."""
        self._listeners.append(listener)

    async def subscribe(self, channel: str, listener: TopicListener) -> Callable[[], None]:
        """Call ``listener(payload)`` for every notification on ``channel``, and
        ``listener(None)`` after a reconnect; returns the call that stops it."""
        listeners = self._topics.get(channel)
        if listeners is None:
            listeners = self._topics[channel] = []
            conn = self._conn
            if conn is not None:
                await conn.add_listener(channel, self._on_topic)
        listeners.append(listener)

        def unsubscribe() -> None:
            if listener in listeners:
                listeners.remove(listener)

        return unsubscribe

    async def start(self) -> None:
        """Connect and LISTEN (errors propagate), then keep the connection alive."""
        await self._attach()
        self._task = asyncio.create_task(self._supervise(), name="eventlog-pg-listener")

    async def _attach(self) -> None:
        conn = await self._connect()
        try:
            await conn.add_listener(self._channel, self._on_notify)
            for channel in self._topics:
                await conn.add_listener(channel, self._on_topic)
        except BaseException:
            await conn.close()
            raise
        conn.add_termination_listener(self._on_terminated)
        self._lost.clear()
        self._conn = conn

    def _on_notify(
        self,
        conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy,
        pid: int,
        channel: str,
        payload: object,
    ) -> None:
        parsed = parse_payload(str(payload))
        if parsed is not None:
            self._deliver(*parsed)

    def _on_topic(
        self,
        conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy,
        pid: int,
        channel: str,
        payload: object,
    ) -> None:
        self._tell(channel, str(payload))

    def _tell(self, channel: str, payload: str | None) -> None:
        for listener in list(self._topics.get(channel, ())):
            try:
                listener(payload)
            except Exception:
                log.exception("listener of channel %s failed", channel)

    def _deliver(self, stream: str, head: int) -> None:
        if head < 0:
            self._known.discard(stream)
        else:
            self._known.add(stream)
        for listener in list(self._listeners):
            try:
                listener(stream, head)
            except Exception:
                log.exception("head listener failed")

    def _on_terminated(self, conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy) -> None:
        self._lost.set()

    def _resync(self, heads: list[tuple[str, int]]) -> None:
        """After a reconnect: every current head, and "deleted" for streams
        heard of before that no longer exist (notifications may have been lost)."""
        current = dict(heads)
        for stream in sorted(self._known - current.keys()):
            self._deliver(stream, -1)
        for stream, head in heads:
            self._deliver(stream, head)
        for channel in list(self._topics):
            self._tell(channel, None)

    async def _supervise(self) -> None:
        failures = 0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), self._ping_interval)
            conn = self._conn
            if not self._lost.is_set() and conn is not None:
                try:
                    await conn.fetchval("SELECT 1", timeout=self._ping_interval)
                    continue
                except DRIVER_ERRORS:
                    log.warning("listener connection failed its liveness check")
            await self._drop()
            while True:
                try:
                    await self._attach()
                    self._resync(await self._heads())
                except DRIVER_ERRORS as exc:
                    await self._drop()
                    failures += 1
                    delay = RECONNECT_BACKOFF.delay(failures)
                    log.warning("listener reconnect failed (%s); retrying in %.1f s", exc, delay)
                    await asyncio.sleep(delay)
                    continue
                except Exception:
                    log.exception("listener re-sync failed")
                self.reconnects += 1
                failures = 0
                log.info("listener reconnected")
                break

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.remove_termination_listener(self._on_terminated)
            with contextlib.suppress(*DRIVER_ERRORS):
                await asyncio.wait_for(conn.close(), 2.0)
            if not conn.is_closed():
                conn.terminate()

    async def close(self) -> None:
        """Stop listening and close the connection. Idempotent."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._drop()

    @property
    def connection_pid(self) -> int | None:
        """The listening session's backend pid (lets tests kill it)."""
        return None if self._conn is None else self._conn.get_server_pid()
