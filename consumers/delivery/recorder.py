"""The recorder: group commit of finished attempts into the ledger."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

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


class Recorder:
    """Group commit of finished attempts: all results that arrive while one
    batch is written go into the next batch (one transaction each)."""

    def __init__(
        self, store: LedgerStore, on_flushed: Callable[[list[Finished]], None] | None = None
    ) -> None:
        self._store = store
        self._on_flushed = on_flushed
        self._queue: list[tuple[Finished, asyncio.Future[None] | None]] = []
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="delivery-recorder")

    def put(self, item: Finished) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        self._ready.set()
        return future

    def put_nowait(self, item: Finished) -> None:
        self._queue.append((item, None))
        self._ready.set()

    async def _run(self) -> None:
        while True:
            await self._ready.wait()
            if len(self._queue) < LINGER_BATCH:
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
                for _, fut in batch:
                    if fut is not None and not fut.done():
                        fut.set_exception(LogClosed("log closed"))
                return
            except EventLogError as exc:
                logger.warning("recording %d attempts failed, retrying: %s", len(batch), exc)
                failures += 1
                await asyncio.sleep(RETRY.delay(failures))
        for _, fut in batch:
            if fut is not None and not fut.done():
                fut.set_result(None)
        if self._on_flushed is not None:
            self._on_flushed([item for item, _ in batch])

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(EventLogError):
            await self._flush()
