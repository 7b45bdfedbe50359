"""``ConsumerManager``: runs handler consumers as tasks over an :class:`EventLog`.

Each registered consumer loops: poll a batch from its committed offset, keep
the events that match its filters, await the handler, commit. When the
handler raises, nothing is committed: the consumer waits with exponential
backoff and jitter, then retries the same batch. Shutdown lets a batch in
hand finish and commit, and interrupts consumers that are only waiting.

::

    manager = ConsumerManager(log)

    @manager.consumer("emails", "orders", types=["order.*"])
    async def send_emails(events: list[Event]) -> None:
        ...

    async with manager:  # start(); shutdown() on exit
        await manager.wait_for_shutdown()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from types import TracebackType
from typing import Literal

from eventlog import (
    BEGINNING,
    Event,
    EventLog,
    EventLogError,
    Offset,
    Position,
    validate_stream_name,
)
from eventlog.storage.leases import run_exclusively

__all__ = ["Backoff", "ConsumerManager", "ConsumerStatus", "Handler", "matches"]

logger = logging.getLogger("eventlog.consumers")

Handler = Callable[[list[Event]], Awaitable[None]]
"""A consumer's handler: takes a batch of matching events; raising retries it."""

State = Literal["idle", "waiting", "running", "backoff", "stopped"]


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: delay n is uniform in [0, min(cap, base * 2**n)].

    Attributes:
        base: First delay ceiling, seconds.
        cap: Largest delay ceiling, seconds.
    """

    base: float = 0.5
    cap: float = 60.0

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        ceiling: float = min(self.cap, self.base * 2.0 ** max(attempt - 1, 0))
        return ceiling * rand()


def matches(event: Event, types: Sequence[str], key: str | None) -> bool:
    """True if the event's type matches one of the glob patterns (or none are
    given) and its key equals ``key`` (if given)."""
    if key is not None and event.key != key:
        return False
    return not types or any(fnmatchcase(event.type, pattern) for pattern in types)


@dataclass
class ConsumerStatus:
    """What one consumer is doing, for status pages and tests."""

    name: str
    stream: str
    state: State = "idle"
    position: int | None = None
    committed: int | None = None
    handled: int = 0
    failures: int = 0
    last_error: str | None = None


@dataclass
class _Spec:
    name: str
    stream: str
    handler: Handler
    types: tuple[str, ...]
    key: str | None
    batch_size: int
    start: Position
    status: ConsumerStatus = field(init=False)

    def __post_init__(self) -> None:
        self.status = ConsumerStatus(self.name, self.stream)


class ConsumerManager:
    """Runs named handler consumers over one log.

    A consumer runs in one process at a time: each holds the lease
    ``consumer:<name>`` from the storage backend while it works (PostgreSQL
    grants it across processes; other backends within the process). A
    consumer whose lease is held elsewhere waits in state ``"waiting"`` and
    takes over when the holder dies.

    Args:
        log: An open log.
        backoff: Delay policy after a handler failure.
        poll_timeout: Seconds a poll waits for appends before looping.
        lease_retry: Seconds between attempts to take a consumer's lease.
    """

    def __init__(
        self,
        log: EventLog,
        *,
        backoff: Backoff | None = None,
        poll_timeout: float = 5.0,
        lease_retry: float = 1.0,
    ) -> None:
        self._log = log
        self._backoff = backoff or Backoff()
        self._poll_timeout = poll_timeout
        self._lease_retry = lease_retry
        self._specs: dict[str, _Spec] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()
        self._stopped = asyncio.Event()
        self._running = False

    def add(
        self,
        name: str,
        stream: str,
        handler: Handler,
        *,
        types: Sequence[str] = (),
        key: str | None = None,
        batch_size: int = 100,
        start: Position = BEGINNING,
    ) -> None:
        """Register a consumer. If the manager is running, it starts at once.

        Args:
            name: Unique consumer name; its committed offset is stored under it.
            stream: The stream it reads.
            handler: Awaited with each batch of matching events.
            types: Glob patterns of event types to pass (all if empty).
            key: Only events with this key (all if None).
            batch_size: Most events per handler call.
            start: Where a consumer that never committed begins.
        """
        validate_stream_name(name)
        validate_stream_name(stream)
        if name in self._specs:
            raise ValueError(f"a consumer named {name!r} is already registered")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        spec = _Spec(name, stream, handler, tuple(types), key, batch_size, start)
        self._specs[name] = spec
        if self._running:
            self._launch(spec)

    def consumer(
        self,
        name: str,
        stream: str,
        *,
        types: Sequence[str] = (),
        key: str | None = None,
        batch_size: int = 100,
        start: Position = BEGINNING,
    ) -> Callable[[Handler], Handler]:
        """Decorator form of :meth:`add`."""

        def register(handler: Handler) -> Handler:
            self.add(
                name, stream, handler, types=types, key=key, batch_size=batch_size, start=start
            )
            return handler

        return register

    def status(self) -> list[ConsumerStatus]:
        """The status of every registered consumer, by name."""
        return [self._specs[name].status for name in sorted(self._specs)]

    async def start(self) -> None:
        """Start a task per registered consumer."""
        self._stopping.clear()
        self._stopped.clear()
        self._running = True
        for spec in self._specs.values():
            if spec.name not in self._tasks:
                self._launch(spec)

    def _launch(self, spec: _Spec) -> None:
        self._tasks[spec.name] = asyncio.create_task(
            self._exclusive(spec), name=f"consumer:{spec.name}"
        )

    async def _exclusive(self, spec: _Spec) -> None:
        spec.status.state = "waiting"
        try:
            await run_exclusively(
                self._log.leases,
                f"consumer:{spec.name}",
                lambda: self._run(spec),
                retry=self._lease_retry,
            )
        finally:
            spec.status.state = "stopped"

    async def shutdown(self) -> None:
        """Stop every consumer: a batch in hand is finished and committed first."""
        self._stopping.set()
        self._running = False
        for name, task in self._tasks.items():
            if self._specs[name].status.state == "waiting":
                task.cancel()  # not holding the lease: nothing in hand to finish
        tasks = list(self._tasks.values())
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._stopped.set()

    async def wait_for_shutdown(self) -> None:
        """Return once :meth:`shutdown` has completed (e.g. from a signal handler)."""
        await self._stopped.wait()

    async def __aenter__(self) -> ConsumerManager:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown()

    async def _until_stopped(self, awaitable: Awaitable[list[Event]]) -> list[Event] | None:
        """Await ``awaitable`` unless shutdown comes first (then cancel it, return None)."""
        work = asyncio.ensure_future(awaitable)
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if work.done():
            return work.result()
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work
        return None

    async def _sleep_unless_stopped(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _run(self, spec: _Spec) -> None:
        status = spec.status
        consumer = self._log.consumer(spec.name, spec.stream, start=spec.start)
        attempt = 0
        try:
            while not self._stopping.is_set():
                status.state = "running"
                events = await self._until_stopped(
                    consumer.poll(spec.batch_size, timeout=self._poll_timeout)
                )
                if events is None:
                    break
                status.position = consumer.position
                if not events:
                    continue
                batch = [e for e in events if matches(e, spec.types, spec.key)]
                try:
                    if batch:
                        await spec.handler(batch)
                except Exception as exc:  # the handler's failure: retry the batch
                    attempt += 1
                    status.failures += 1
                    status.last_error = f"{type(exc).__name__}: {exc}"
                    status.state = "backoff"
                    delay = self._backoff.delay(attempt)
                    logger.warning(
                        "consumer %s failed on offsets %d-%d (attempt %d), retrying in %.2fs: %s",
                        spec.name,
                        events[0].offset,
                        events[-1].offset,
                        attempt,
                        delay,
                        status.last_error,
                    )
                    await consumer.seek(Offset(events[0].offset))
                    await self._sleep_unless_stopped(delay)
                    continue
                attempt = 0
                status.handled += len(batch)
                await consumer.commit()
                status.committed = consumer.committed
        except EventLogError as exc:
            if not self._log.closed:
                status.last_error = f"{type(exc).__name__}: {exc}"
                logger.error("consumer %s stopped: %s", spec.name, exc)
        finally:
            status.state = "stopped"
