"""``SharedConsumers``: declare, find and delete the shared consumers of one log.

::

    async with EventLog.open("events.db") as log:
        shared = SharedConsumers(log)
        await shared.open()
        mailer = await shared.declare("mailer", SharedSpec(stream="orders", ack_wait=30))
        async for claim in mailer.claims("worker-1"):
            await send_mail(claim.event)
            await claim.ack()

Specs are read from the store on every :meth:`SharedConsumers.get`, so a
consumer declared, changed or deleted by another server process on the same
PostgreSQL database is seen at once; the in-process part of a consumer (its
wake-ups, its event cache) is kept per name.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from consumers.delivery.history import KEEP_HISTORY, Pruner
from consumers.delivery.ledger import LedgerStore
from consumers.delivery.stores import ledger_for
from consumers.shared.consumer import SharedConsumer, Tuning
from consumers.shared.errors import ConsumerConflict, ConsumerNotShared
from consumers.shared.spec import SharedSpec, spec_store_for
from eventlog import EventLog
from eventlog.errors import ConsumerNotFound, InvalidField

__all__ = ["SharedConsumers"]


class SharedConsumers:
    """The shared consumers of one log.

    Args:
        log: The open log.
        ledger: The delivery ledger to keep claims in (default: the one that
            goes with the log, :func:`consumers.delivery.ledger_for`; pass the
            webhook engine's to share it).
        clock: Seconds since the epoch (tests pass their own).
        window: With per-key order, the unfinished events a claim looks at
            (and the most such a consumer keeps enqueued before it stops reading
            ahead). Without it a claim reads only rows it can hand out.
        page: Events read from the stream at a time.
        poll: Longest wait between looks at the ledger during a long-poll
            (acks in other processes are not announced).
        closing: Set to end every long-poll (a server's shutdown); :meth:`close` sets it.
        keep_history: Seconds an acked (or parked) claim's row is kept. Pruned
            here only on a ledger of its own; the webhook engine prunes the
            ledger it shares (:mod:`consumers.delivery.history`).
    """

    def __init__(
        self,
        log: EventLog,
        ledger: LedgerStore | None = None,
        *,
        clock: Callable[[], float] = time.time,
        window: int = 1000,
        page: int = 500,
        poll: float = 0.5,
        closing: asyncio.Event | None = None,
        keep_history: float = KEEP_HISTORY,
    ) -> None:
        self.log = log
        self.ledger = ledger if ledger is not None else ledger_for(log)
        pruner = Pruner(self.ledger, keep_history, clock)
        self._pruner = pruner if ledger is None else None
        self.specs = spec_store_for(log)
        self.closing = closing if closing is not None else asyncio.Event()
        self.tuning = Tuning(clock, self.closing, window, page, poll)
        self._consumers: dict[str, SharedConsumer] = {}
        self._opened = False

    async def open(self) -> None:
        """Create the tables if needed (the ledger's and the specs')."""
        if not self._opened:
            await self.ledger.open()
            await self.specs.open()
            self._opened = True
            if self._pruner is not None:
                self._pruner.start()

    def close(self) -> None:
        """End every long-poll now, and the pruning of a ledger of its own (shutdown)."""
        self.closing.set()
        if self._pruner is not None:
            self._pruner.cancel()

    async def declare(self, name: str, spec: SharedSpec) -> SharedConsumer:
        """Create a shared consumer, or change one (idempotent for the same spec).

        A new consumer starts at ``spec.start``; an existing one keeps its
        position, and may change everything but its stream.

        Raises:
            ConsumerConflict: It exists on another stream, or a consumer that is
                not shared has the name (its position is not taken over).
            InvalidInput: A bad name or spec (``invalid_position`` for a ``start``
                offset beyond the stream's head).
        """
        spec.check(name)
        old = await self.specs.get(name)
        if old is not None and old.stream != spec.stream:
            raise ConsumerConflict(
                f"shared consumer {name!r} consumes {old.stream!r}; delete it to change its stream"
            )
        if old is None:
            if await self._taken_by_unshared(name):
                raise ConsumerConflict(
                    f"consumer {name!r} exists and is not shared; "
                    "give the shared consumer a name of its own"
                )
            first, head = await self.log.bounds(spec.stream)
            if spec.start == "beginning":
                start = first
            elif spec.start == "end":
                start = head
            elif spec.start > head:  # as seeking a consumer past the head (its 422)
                raise InvalidField(
                    f"offset {spec.start} is beyond the head of {spec.stream!r} ({head})",
                    path="$.start",
                    code="invalid_position",
                )
            else:
                start = max(spec.start, first)
            await self.ledger.delete_endpoint(f"shared:{name}")  # rows of an earlier one
            await self.log.commit_offset(f"{name}.feed", spec.stream, start)
            await self.log.commit_offset(name, spec.stream, start)
        if old != spec:
            await self.specs.put(name, spec)
        return self._bind(name, spec)

    async def get(self, name: str) -> SharedConsumer:
        """The shared consumer ``name``.

        Raises:
            ConsumerNotFound: No consumer of that name.
            ConsumerNotShared: A consumer of that name exists but is not shared.
        """
        spec = await self.specs.get(name)
        if spec is None:
            self._drop(name)
            if await self._taken_by_unshared(name):
                raise ConsumerNotShared(f"consumer {name!r} is not a shared consumer")
            raise ConsumerNotFound(name)
        return self._bind(name, spec)

    async def is_shared(self, name: str) -> bool:
        """Whether ``name`` is a shared consumer (or the feed position of one)."""
        if await self.specs.get(name) is not None:
            return True
        return name.endswith(".feed") and await self.specs.get(name[: -len(".feed")]) is not None

    async def _taken_by_unshared(self, name: str) -> bool:
        # A shared consumer (even a deleted one) also commits ``<name>.feed``.
        names = {c.name for c in await self.log.consumers()}
        return name in names and f"{name}.feed" not in names

    async def delete(self, name: str) -> bool:
        """Delete a shared consumer and its unacked claims; False if there was none."""
        existed = await self.specs.delete(name)
        await self.ledger.delete_endpoint(f"shared:{name}")
        self._drop(name)
        return existed

    async def names(self) -> list[str]:
        """Every shared consumer's name."""
        return list(await self.specs.all())

    def _bind(self, name: str, spec: SharedSpec) -> SharedConsumer:
        consumer = self._consumers.get(name)
        if consumer is not None and consumer.spec.stream == spec.stream:
            consumer.respec(spec)
            return consumer
        consumer = SharedConsumer(self.log, self.ledger, name, spec, self.tuning)
        self._consumers[name] = consumer
        return consumer

    def _drop(self, name: str) -> None:
        consumer = self._consumers.pop(name, None)
        if consumer is not None:
            consumer.deleted = True
