"""Delivery history retention: finished rows go ``keep_history`` seconds after they finished.

:class:`Pruner` deletes finished deliveries (a shared consumer's acked claims
among them) and their attempts, at start and then every minute,
:data:`PRUNE_CHUNK` rows a transaction. Whoever owns a ledger runs one (the
delivery engine, or shared consumers on a ledger of their own); on PostgreSQL
every process prunes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from consumers.delivery.ledger import LedgerStore
from eventlog.errors import EventLogError

__all__ = ["KEEP_HISTORY", "PRUNE_CHUNK", "Pruner"]

logger = logging.getLogger("eventlog.delivery")

#: Seconds a finished delivery is kept (30 days) unless told otherwise.
KEEP_HISTORY = 30 * 86400.0
#: Finished rows deleted per transaction, and seconds between prunes (at most).
PRUNE_CHUNK = 5000
PRUNE_EVERY = 60.0


class Pruner:
    """Deletes a ledger's deliveries that finished over ``keep_history`` seconds ago.

    Raises:
        ValueError: ``keep_history`` is not a positive number of seconds.
    """

    def __init__(self, store: LedgerStore, keep_history: float, clock: Callable[[], float]) -> None:
        if not keep_history > 0:
            raise ValueError("keep_history must be a positive number of seconds")
        self.store = store
        self.keep_history = keep_history
        self.clock = clock
        self._task: asyncio.Task[None] | None = None

    async def prune(self) -> int:
        """Delete what is due now, :data:`PRUNE_CHUNK` rows a transaction; how many."""
        before, total = self.clock() - self.keep_history, 0
        while (n := await self.store.prune(before, PRUNE_CHUNK)) == PRUNE_CHUNK:
            total += n
        return total + n

    def start(self) -> None:
        """Prune now and then every minute (or every ``keep_history`` if shorter)."""
        if self._task is None:
            self._task = asyncio.create_task(self._every(min(PRUNE_EVERY, self.keep_history)))

    def cancel(self) -> asyncio.Task[None] | None:
        """Stop pruning; the cancelled task (to await), if one ran."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
        return task

    async def stop(self) -> None:
        """Stop pruning, and wait until the task has ended."""
        if (task := self.cancel()) is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _every(self, period: float) -> None:
        while True:
            try:
                if pruned := await self.prune():
                    logger.info("pruned %d finished deliveries", pruned)
            except EventLogError as exc:  # the next round tries again
                logger.warning("could not prune finished deliveries: %s", exc)
            await asyncio.sleep(period)
