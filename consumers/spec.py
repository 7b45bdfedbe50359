"""What the consumer runtime knows of one consumer: its handler, options and status.

A handler is either plain (``async def handle(events)``: committed after it
returns, at-least-once) or *transactional* (``async def handle(events, tx)``:
its writes through ``tx`` and the offset commit are one database
transaction, so it sees each event exactly once; see
:meth:`eventlog.Consumer.transact`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from consumers.failure import FailurePolicy
from consumers.filter import EventFilter
from consumers.parking import OnFailure
from eventlog import Consumer, Event, Position, ResetPolicy
from eventlog.errors import Conflict
from eventlog.storage.transactions import OffsetTransaction

__all__ = [
    "ConsumerBusy",
    "ConsumerStatus",
    "Handler",
    "Spec",
    "State",
    "TransactionalHandler",
    "matches",
]

Handler = Callable[[list[Event]], Awaitable[None]]
"""A consumer's handler: takes a batch of matching events; raising retries it."""

TransactionalHandler = Callable[[list[Event], OffsetTransaction], Awaitable[None]]
"""A handler whose writes through ``tx`` commit atomically with the consumer's offset."""

State = Literal["idle", "waiting", "running", "backoff", "stopped"]


def matches(event: Event, types: Sequence[str], key: str | None) -> bool:
    """True if the event passes ``EventFilter(types, key)`` (see :mod:`consumers.filter`)."""
    return EventFilter(types, key).matches(event)


class ConsumerBusy(Conflict):
    """The consumer runs in another process (it holds the consumer's lease)."""

    code = "consumer_busy"


@dataclass
class ConsumerStatus:
    """What one consumer is doing, for status pages and tests.

    Attributes:
        name: The consumer.
        stream: The stream it reads.
        state: ``idle`` (not started), ``waiting`` (its lease is held
            elsewhere), ``running``, ``backoff`` (waiting to retry after a
            failure) or ``stopped``.
        position: The next offset it will poll.
        committed: The offset it last committed.
        handled: Events its handler took.
        failures: Failed handler calls.
        last_error: The last failure, ``"Type: message"``.
        parked: Events this process parked.
        truncation: The last time retention removed events before it read
            them (see :class:`eventlog.Truncation`), described.
        reason: Why a stopped consumer stopped, if not by shutdown.
        max_attempts: Its failure policy's attempts.
        on_failure: Its failure policy.
        parked_stream: Where it parks events.
        transactional: Its handler commits in the offset's transaction.
    """

    name: str
    stream: str
    state: State = "idle"
    position: int | None = None
    committed: int | None = None
    handled: int = 0
    failures: int = 0
    last_error: str | None = None
    parked: int = 0
    truncation: str | None = None
    reason: str | None = None
    max_attempts: int = 5
    on_failure: OnFailure = "park"
    parked_stream: str = ""
    transactional: bool = False


@dataclass
class Spec:
    """One registered consumer (the manager's record of it)."""

    name: str
    stream: str
    handler: Handler | None
    tx_handler: TransactionalHandler | None
    types: tuple[str, ...]
    key: str | None
    batch_size: int
    start: Position
    policy: FailurePolicy
    status: ConsumerStatus = field(init=False)
    reset: ResetPolicy = field(init=False, default="earliest")
    lock: asyncio.Lock = field(init=False, default_factory=asyncio.Lock)
    filter: EventFilter = field(init=False)

    def __post_init__(self) -> None:
        self.status = ConsumerStatus(
            self.name,
            self.stream,
            max_attempts=self.policy.max_attempts,
            on_failure=self.policy.on_failure,
            parked_stream=self.name + ".parked",
            transactional=self.tx_handler is not None,
        )
        self.filter = EventFilter(self.types, self.key)

    async def call(self, events: list[Event], cursor: Consumer, commit_to: int) -> None:
        """Hand ``events`` to the handler (never two calls at once: replay takes turns).

        A transactional handler runs in the transaction that commits
        ``commit_to`` on ``cursor``; a plain one leaves committing to the caller.
        """
        async with self.lock:
            if self.tx_handler is not None:
                handler = self.tx_handler

                async def body(tx: OffsetTransaction) -> None:
                    await handler(events, tx)

                await cursor.transact(body, commit_to)
            elif self.handler is not None:
                await self.handler(events)
