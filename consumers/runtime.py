"""``ConsumerManager``: runs handler consumers as tasks over an :class:`EventLog`.

Each registered consumer loops: poll a batch from its committed offset, keep
the events that match its filters, await the handler, commit. When the
handler raises, nothing is committed: the consumer waits with exponential
backoff and jitter, then retries the same batch, up to ``max_attempts``
calls; then its ``on_failure`` policy parks the failing event(s) and moves
on, stops the consumer, or keeps retrying (:mod:`consumers.failure`).
Parked events can be replayed through the handler with
:meth:`ConsumerManager.replay_parked`. A *transactional* handler
(``add(..., transactional=True)``) gets the open database transaction and
its writes commit with the offset (exactly-once, see :mod:`consumers.spec`).
Shutdown lets a batch in hand finish and commit, and interrupts consumers
that are only waiting.

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
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar, cast

from consumers.failure import BatchIO, FailurePolicy, run_batch
from consumers.parking import OnFailure, ReplayResult, park, parked_stream, replay
from consumers.spec import (
    ConsumerBusy,
    ConsumerStatus,
    Handler,
    Spec,
    TransactionalHandler,
    matches,
)
from eventlog import (
    BEGINNING,
    Consumer,
    ConsumerNotFound,
    Event,
    EventLog,
    EventLogError,
    HoldPolicy,
    Position,
    ResetPolicy,
    Unsupported,
    validate_stream_name,
)
from eventlog.backoff import Backoff
from eventlog.closing import AsyncClosing
from eventlog.storage.leases import run_exclusively

__all__ = [
    "Backoff",
    "ConsumerBusy",
    "ConsumerManager",
    "ConsumerStatus",
    "Handler",
    "TransactionalHandler",
    "matches",
]

logger = logging.getLogger("eventlog.consumers")

H = TypeVar("H", Handler, TransactionalHandler)


class ConsumerManager(AsyncClosing):
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
        self._specs: dict[str, Spec] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()
        self._stopped = asyncio.Event()
        self._running = False

    def add(
        self,
        name: str,
        stream: str,
        handler: Handler | TransactionalHandler,
        *,
        types: Sequence[str] = (),
        key: str | None = None,
        batch_size: int = 100,
        start: Position = BEGINNING,
        max_attempts: int = 5,
        on_failure: OnFailure = "park",
        protect: bool | None = None,
        max_hold: float | None = None,
        transactional: bool = False,
        reset: ResetPolicy = "earliest",
    ) -> None:
        """Register a consumer. If the manager is running, it starts at once.

        Args:
            name: Unique consumer name; its committed offset is stored under it.
            stream: The stream it reads.
            handler: Awaited with each batch of matching events (and, if
                ``transactional``, the open transaction as second argument).
            types: Patterns of event types to pass (all if empty), in the
                dialect of :mod:`consumers.filter`.
            key: Only events whose key matches this pattern (all if None).
            batch_size: Most events per handler call.
            start: Where a consumer that never committed begins.
            max_attempts: Failed handler calls before ``on_failure`` applies.
            on_failure: ``"park"`` the failing event(s) in ``<name>.parked``
                and go on, ``"stop"`` the consumer, or ``"retry"`` forever.
            protect: Whether retention keeps the events it has not committed
                (None: the log's ``protect_consumers``).
            max_hold: Seconds without a commit after which it stops holding
                retention (None: the log's ``max_hold``).
            reset: Where it goes when retention removed events it had not read:
                ``"earliest"`` (the first retained), ``"latest"`` (the head), or
                ``"error"`` (it stops, the reason in its status). Either way the
                loss is recorded (``consumer.truncated`` on the system stream).
            transactional: The handler is ``handler(events, tx)`` and runs in
                the database transaction that commits the consumer's offset
                (exactly-once for writes through ``tx``; see
                :meth:`eventlog.Consumer.transact`).

        Raises:
            Unsupported: ``transactional`` on a backend that cannot (memory).
        """
        validate_stream_name(name)
        if transactional and not self._log.can_transact:
            raise Unsupported(
                f"consumer {name!r}: transactional handlers need the log in a database "
                "(SQLite or PostgreSQL), not in memory"
            )
        validate_stream_name(stream)
        parked_stream(name)
        if name in self._specs:
            raise ValueError(f"a consumer named {name!r} is already registered")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        policy = FailurePolicy(max_attempts, on_failure)
        plain = None if transactional else cast(Handler, handler)
        in_tx = cast(TransactionalHandler, handler) if transactional else None
        spec = Spec(name, stream, plain, in_tx, tuple(types), key, batch_size, start, policy)
        spec.reset = reset
        if protect is not None or max_hold is not None:
            default = self._log.hold_policy(name)
            self._log.set_hold_policy(
                name,
                HoldPolicy(
                    protect=default.protect if protect is None else protect,
                    max_hold=default.max_hold if max_hold is None else max_hold,
                ),
            )
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
        max_attempts: int = 5,
        on_failure: OnFailure = "park",
        protect: bool | None = None,
        max_hold: float | None = None,
        transactional: bool = False,
        reset: ResetPolicy = "earliest",
    ) -> Callable[[H], H]:
        """Decorator form of :meth:`add` (the same options)."""

        def register(handler: H) -> H:
            self.add(
                name,
                stream,
                handler,
                types=types,
                key=key,
                batch_size=batch_size,
                start=start,
                max_attempts=max_attempts,
                on_failure=on_failure,
                protect=protect,
                max_hold=max_hold,
                transactional=transactional,
                reset=reset,
            )
            return handler

        return register

    def status(self) -> list[ConsumerStatus]:
        """The status of every registered consumer, by name."""
        return [self._specs[name].status for name in sorted(self._specs)]

    def get_status(self, name: str) -> ConsumerStatus | None:
        """The status of the consumer ``name``, or None if it is not registered here."""
        spec = self._specs.get(name)
        return None if spec is None else spec.status

    async def start(self) -> None:
        """Start a task per registered consumer."""
        self._stopping.clear()
        self._stopped.clear()
        self._running = True
        for spec in self._specs.values():
            if spec.name not in self._tasks:
                self._launch(spec)

    def _launch(self, spec: Spec) -> None:
        self._tasks[spec.name] = asyncio.create_task(
            self._exclusive(spec), name=f"consumer:{spec.name}"
        )

    async def _exclusive(self, spec: Spec) -> None:
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

    async def _enter(self) -> None:
        await self.start()

    async def _exit(self) -> None:
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

    async def _sleep_unless_stopped(self, seconds: float) -> bool:
        """Sleep ``seconds``; False if shutdown came first."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return not self._stopping.is_set()

    async def _call(self, spec: Spec, events: list[Event], cursor: Consumer) -> None:
        spec.status.state = "running"
        await spec.call(events, cursor, events[-1].offset + 1)
        spec.status.handled += len(events)

    def _failed(self, spec: Spec, events: Sequence[Event], exc: Exception, attempt: int) -> float:
        status = spec.status
        status.failures += 1
        status.last_error = f"{type(exc).__name__}: {exc}"
        status.state = "backoff"
        delay = self._backoff.delay(attempt)
        logger.warning(
            "consumer %s failed on %d event(s) at offsets %d-%d (attempt %d of %d): %s",
            spec.name,
            len(events),
            events[0].offset,
            events[-1].offset,
            attempt,
            spec.policy.max_attempts,
            status.last_error,
        )
        return delay

    async def _park(self, spec: Spec, event: Event, exc: Exception, attempts: int) -> None:
        await park(self._log, spec.name, event, exc, attempts)
        spec.status.parked += 1

    async def _run(self, spec: Spec) -> None:
        status = spec.status
        consumer = self._log.consumer(spec.name, spec.stream, start=spec.start, reset=spec.reset)

        async def commit(offset: int) -> None:
            await consumer.commit(offset)
            status.committed = offset

        io = BatchIO(
            call=lambda events: self._call(spec, events, consumer),
            failed=lambda events, exc, attempt: self._failed(spec, events, exc, attempt),
            wait=self._sleep_unless_stopped,
            commit=commit,
            park=lambda event, exc, attempts: self._park(spec, event, exc, attempts),
        )
        try:
            while not self._stopping.is_set():
                status.state = "running"
                events = await self._until_stopped(
                    consumer.poll(spec.batch_size, timeout=self._poll_timeout)
                )
                if events is None:
                    break
                status.position = consumer.position
                if consumer.truncation is not None:
                    status.truncation = consumer.truncation.describe()
                if not events:
                    continue
                batch = list(spec.filter.select(events))
                outcome = await run_batch(spec.policy, io, batch) if batch else "done"
                if outcome == "interrupted":
                    break
                if outcome == "stop":
                    status.reason = (
                        f"stopped after {spec.policy.max_attempts} failed attempts at offset "
                        f"{batch[0].offset}: {status.last_error}"
                    )
                    logger.error("consumer %s %s", spec.name, status.reason)
                    break
                await commit(events[-1].offset + 1)
        except EventLogError as exc:
            if not self._log.closed:
                status.last_error = f"{type(exc).__name__}: {exc}"
                status.reason = status.last_error
                logger.error("consumer %s stopped: %s", spec.name, exc)
        finally:
            status.state = "stopped"

    async def replay_parked(self, name: str) -> ReplayResult:
        """Hand the consumer's parked events back to its handler, oldest first.

        Each event the handler takes is committed past (the consumer's offset
        on its parked stream); the first one it refuses again stays parked
        and ends the replay, its error in the result.

        Raises:
            ConsumerNotFound: No consumer of that name is registered here.
            ConsumerBusy: The consumer runs in another process.
        """
        spec = self._specs.get(name)
        if spec is None:
            raise ConsumerNotFound(name)
        if spec.status.state == "waiting":
            raise ConsumerBusy(f"consumer {name!r} runs in another process; replay it there")

        async def handle(event: Event, cursor: Consumer, commit_to: int) -> None:
            await spec.call([event], cursor, commit_to)
            if spec.tx_handler is None:
                await cursor.commit(commit_to)

        return await replay(self._log, name, handle)
