"""Endpoint health: ``failing_since`` after failed attempts, and auto-disable.

An endpoint that fails continuously for ``disable_after`` seconds, or gets a
verdict that disables it (a 410, a Slack ``invalid_token``), is disabled: the
reason is stored on the endpoint, a ``delivery.endpoint.disabled`` event is
appended to the system stream and its worker is stopped. The engine
(:mod:`consumers.delivery.engine`) shares its lock and its workers with this
module; the dispatcher hands it every verdict.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from consumers.delivery.feeder import Worker
from consumers.delivery.kinds import origin
from consumers.delivery.ledger import LedgerStore
from consumers.delivery.model import Endpoint
from consumers.delivery.retry import Classification, update_health
from eventlog import EventLog
from eventlog.errors import EventLogError

__all__ = ["EndpointHealth"]

logger = logging.getLogger("eventlog.delivery")


class EndpointHealth:
    """Updates endpoints' health from attempt verdicts and disables failing ones.

    Args:
        log: The open log.
        store: The ledger (where endpoints are stored).
        lock: The engine's lock over endpoint changes.
        workers: The engine's running workers by endpoint id.
        system_stream: Where ``delivery.endpoint.disabled`` events go.
        clock: Seconds since the epoch.
        stop_worker: Stops an endpoint's worker (called under ``lock``).
    """

    def __init__(
        self,
        *,
        log: EventLog,
        store: LedgerStore,
        lock: asyncio.Lock,
        workers: dict[str, Worker],
        system_stream: str,
        clock: Callable[[], float],
        stop_worker: Callable[[str], Awaitable[None]],
    ) -> None:
        self.log = log
        self.store = store
        self.system_stream = system_stream
        self.clock = clock
        self._lock = lock
        self._workers = workers
        self._stop_worker = stop_worker
        self._background: set[asyncio.Task[None]] = set()

    async def drain(self) -> None:
        """Wait for the workers being stopped after a disable."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def update_endpoint(self, endpoint_id: str, **changes: Any) -> Endpoint | None:
        """Change some fields of a stored endpoint (and of its running worker)."""
        async with self._lock:
            current = await self.store.get_endpoint(endpoint_id)
            if current is None:
                return None
            updated = msgspec.structs.replace(current, **changes)
            await self.store.put_endpoint(updated)
            worker = self._workers.get(endpoint_id)
            if worker is not None:
                worker.endpoint = updated
            return updated

    async def disable(self, endpoint: Endpoint, reason: str) -> None:
        """Disable an endpoint with ``reason``, tell the system stream, stop its worker."""
        now = self.clock()
        async with self._lock:
            current = await self.store.get_endpoint(endpoint.id)
            if current is None or not current.enabled:
                return  # deleted, or another attempt disabled it first
            updated = msgspec.structs.replace(
                current, enabled=False, disabled_reason=reason, updated=now
            )
            await self.store.put_endpoint(updated)
            worker = self._workers.get(endpoint.id)
            if worker is not None:
                worker.endpoint = updated
        logger.warning("endpoint %s (%s) disabled: %s", endpoint.id, origin(endpoint.url), reason)
        with contextlib.suppress(EventLogError):
            await self.log.append(
                self.system_stream,
                {
                    "endpoint": endpoint.id,
                    "kind": endpoint.kind,
                    "target": origin(endpoint.url),
                    "reason": reason,
                },
                type="delivery.endpoint.disabled",
            )
        # Stop the worker from outside its own tasks (keep a reference: a task
        # nobody holds may be garbage-collected before it ran).
        task = asyncio.get_running_loop().create_task(self._stop_disabled(endpoint.id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _stop_disabled(self, endpoint_id: str) -> None:
        async with self._lock:
            current = await self.store.get_endpoint(endpoint_id)
            if current is None or not current.enabled:
                await self._stop_worker(endpoint_id)

    async def record(
        self, ep: Endpoint, classification: Classification, disable: str | None, now: float
    ) -> None:
        """Take one attempt's verdict: note or clear ``failing_since``, or disable the endpoint.

        ``disable`` is the retry schedule's own reason to disable (a 410, or
        the kind's verdict).
        """
        if classification.verdict == "rate_limited":
            return  # the receiver is alive and asked us to slow down
        if disable is not None:
            await self.disable(ep, disable)
            return
        success = classification.verdict == "delivered"
        worker = self._workers.get(ep.id)
        current = worker.endpoint if worker is not None else ep
        if success and current.failing_since is None:
            return  # the common case: healthy and still healthy
        health = update_health(
            current.failing_since,
            success=success,
            now=now,
            disable_after=current.disable_after,
            last_error=classification.reason,
        )
        if health.disable_reason is not None and current.enabled:
            await self.disable(current, health.disable_reason)
        elif health.failing_since != current.failing_since:
            await self.update_endpoint(ep.id, failing_since=health.failing_since)
