"""The recorder: group commit of the engine's ledger writes, one transaction a batch.

The pumps' outcomes and claims and the feeders' enqueues go into one queue;
all that arrive while a transaction is written go into the next
:meth:`~consumers.delivery.ledger.LedgerStore.write`. So a claim never waits
behind its endpoint's outcomes, and a busy endpoint costs about one
transaction per batch, not three.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from consumers.delivery.ledger import Claimed, ClaimRequest, Enqueue, LedgerStore
from consumers.delivery.model import Finished
from eventlog.backoff import Backoff
from eventlog.errors import EventLogError, LogClosed

__all__ = ["LINGER", "LINGER_BATCH", "Recorder"]

logger = logging.getLogger("eventlog.delivery")

T = TypeVar("T")
R = TypeVar("R")

#: A small batch of outcomes alone waits this long for more before it is written.
LINGER = 0.002
#: A batch of this many outcomes is written at once.
LINGER_BATCH = 64
#: A failed write of outcomes is tried again every 0.5 s until it succeeds.
RETRY = Backoff(steps=(0.5,), jitter=0)


class Owner(Protocol):
    """Who is told that its outcomes are stored."""

    def recorded(self, finished: list[Finished]) -> None:
        """These outcomes are in the ledger."""


class Recorder:
    """Group commit of the engine's ledger writes (see the module docstring)."""

    def __init__(self, store: LedgerStore, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock
        self._queue: list[tuple[Finished, Owner]] = []
        self._enqueues: list[tuple[Enqueue, asyncio.Future[int]]] = []
        self._claims: list[tuple[ClaimRequest, asyncio.Future[Claimed]]] = []
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        """Start writing batches."""
        self._task = asyncio.create_task(self._run(), name="delivery-recorder")

    def put_nowait(self, item: Finished, owner: Owner) -> None:
        """Queue ``item``; ``owner.recorded`` is called once it is stored."""
        self._queue.append((item, owner))
        self._ready.set()

    def enqueue(self, enqueue: Enqueue) -> asyncio.Future[int]:
        """Queue an enqueue; the future gets the rows inserted."""
        return self._add(self._enqueues, enqueue)

    def claim(self, claim: ClaimRequest) -> asyncio.Future[Claimed]:
        """Queue a claim; it runs after the enqueues and outcomes of its transaction."""
        return self._add(self._claims, claim)

    def _add(self, into: list[tuple[T, asyncio.Future[R]]], item: T) -> asyncio.Future[R]:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        into.append((item, future))
        self._ready.set()
        return future

    async def _run(self) -> None:
        while not self._stopping:
            await self._ready.wait()
            if not (self._enqueues or self._claims) and len(self._queue) < LINGER_BATCH:
                # Fewer, larger transactions: fewer GIL hand-offs to the database thread.
                await asyncio.sleep(LINGER)
            await self._flush()

    async def _flush(self) -> None:
        self._ready.clear()
        batch, self._queue = self._queue, []
        enqueues = [(e, f) for e, f in self._enqueues if not f.done()]  # done: cancelled
        claims = [(c, f) for c, f in self._claims if not f.done()]
        self._enqueues, self._claims = [], []
        if not (batch or enqueues or claims):
            return
        failures = 0
        while True:
            try:
                inserted, claimed = await self._store.write(
                    [e for e, _ in enqueues],
                    [f for f, _ in batch],
                    [c for c, _ in claims],
                    self._clock(),
                )
                break
            except EventLogError as exc:
                # Enqueues and claims fail (their callers try again); outcomes are
                # of requests already sent: kept and written again.
                waiters: list[asyncio.Future[Any]] = [f for _, f in enqueues]
                for waiter in waiters + [f for _, f in claims]:
                    if not waiter.done():
                        waiter.set_exception(exc)
                enqueues, claims = [], []
                if isinstance(exc, LogClosed):
                    return
                if self._stopping:  # the rows stay in flight: recovery hands them out again
                    logger.warning("recording %d attempts failed at close: %s", len(batch), exc)
                    return
                logger.warning("recording %d attempts failed, retrying: %s", len(batch), exc)
                failures += 1
                await asyncio.sleep(RETRY.delay(failures))
        for (_, waiter), n in zip(enqueues, inserted, strict=True):
            if not waiter.done():
                waiter.set_result(n)
        for (_, claiming), rows in zip(claims, claimed, strict=True):
            claiming.set_result(rows)  # never cancelled by its caller (see the pump)
        owners: defaultdict[Owner, list[Finished]] = defaultdict(list)  # pumps, by identity
        for item, owner in batch:
            owners[owner].append(item)
        for owner, items in owners.items():
            owner.recorded(items)

    async def close(self) -> None:
        """Stop, writing what is queued (a batch being written is let finish: its
        outcomes are of requests already sent)."""
        self._stopping = True
        self._ready.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for _ in range(3):  # what the last batch's owners hand back (released claims)
            with contextlib.suppress(EventLogError):
                await self._flush()
