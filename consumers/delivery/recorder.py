"""The recorder: group commit of finished attempts into the ledger.

Every endpoint's outcomes (and released claims) go into one queue; all that
arrive while a batch is written go into the next batch, one ledger
transaction each. Once a batch is stored, each item's owner (the endpoint's
pump) is told which of its outcomes are in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from consumers.delivery.ledger import LedgerStore
from consumers.delivery.model import Finished
from eventlog.backoff import Backoff
from eventlog.errors import EventLogError, LogClosed

__all__ = ["LINGER", "LINGER_BATCH", "Recorder"]

logger = logging.getLogger("eventlog.delivery")

#: A small batch waits this long for more results before it is written.
LINGER = 0.002
#: A batch this large is written at once.
LINGER_BATCH = 64
#: A failed write of the ledger is tried again every 0.5 s until it succeeds.
RETRY = Backoff(steps=(0.5,), jitter=0)


class Owner(Protocol):
    """Who is told that its outcomes are stored."""

    def recorded(self, finished: list[Finished]) -> None:
        """These outcomes are in the ledger."""


class Recorder:
    """Group commit of finished attempts (see the module docstring)."""

    def __init__(self, store: LedgerStore) -> None:
        self._store = store
        self._queue: list[tuple[Finished, Owner]] = []
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

    async def _run(self) -> None:
        while not self._stopping:
            await self._ready.wait()
            if len(self._queue) < LINGER_BATCH and not self._stopping:
                # Let a few more results arrive: fewer, larger transactions mean
                # fewer hand-offs of the GIL to the database thread.
                await asyncio.sleep(LINGER)
            await self._flush()

    async def _flush(self) -> None:
        self._ready.clear()
        batch, self._queue = self._queue, []
        if not batch:
            return
        failures = 0
        while True:
            try:
                await self._store.finish([item for item, _ in batch])
                break
            except LogClosed:
                return
            except EventLogError as exc:
                if self._stopping:  # the rows stay in flight: recovery hands them out again
                    logger.warning("recording %d attempts failed at close: %s", len(batch), exc)
                    return
                logger.warning("recording %d attempts failed, retrying: %s", len(batch), exc)
                failures += 1
                await asyncio.sleep(RETRY.delay(failures))
        owners: dict[int, tuple[Owner, list[Finished]]] = {}
        for item, owner in batch:
            owners.setdefault(id(owner), (owner, []))[1].append(item)
        for owner, items in owners.values():
            owner.recorded(items)

    async def close(self) -> None:
        """Stop, writing what is queued.

        A batch being written is let finish rather than cancelled: cancelling it
        would lose outcomes of requests already sent (their rows would stay in
        flight and be sent again after a restart).
        """
        self._stopping = True
        self._ready.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(EventLogError):
            await self._flush()
