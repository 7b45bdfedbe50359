"""Leases: "this named consumer runs in exactly one process at a time".

A backend that several processes share (PostgreSQL) declares its
:class:`Leases` in its capabilities; :func:`leases_for` returns them, or, for a
single-process backend (memory, SQLite), one :class:`LocalLeases` per storage
that is exclusive within the process. :attr:`EventLog.leases
<eventlog.log.EventLog.leases>` is that for the log's storage.

:func:`run_exclusively` is the loop a consumer runtime needs::

    await run_exclusively(log.leases, "consumer:billing", run_billing)

It runs ``run_billing()`` only while this process holds the lease, cancels it
at once when the lease is lost, and keeps trying to take the lease otherwise.

A holder that dies (or loses its database connection) loses the lease; the
next ``acquire_lease`` in another process gets it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from eventlog.errors import StorageError

if TYPE_CHECKING:
    from eventlog.storage.base import Storage

__all__ = ["EventLease", "Lease", "Leases", "LocalLeases", "leases_for", "run_exclusively"]

log = logging.getLogger("eventlog.leases")


@runtime_checkable
class Lease(Protocol):
    """A held lease. ``held`` turns False when it is released or lost."""

    name: str

    @property
    def held(self) -> bool:
        """True while this process holds the lease."""
        ...

    async def wait_lost(self) -> None:
        """Return when the lease is no longer held (released or lost)."""

    async def release(self) -> None:
        """Give the lease up. Idempotent."""


@runtime_checkable
class Leases(Protocol):
    """Something that grants leases by name."""

    async def acquire_lease(self, name: str) -> Lease | None:
        """Take the lease if nobody holds it; None if someone else does."""
        ...


class EventLease:
    """The part of a :class:`Lease` every implementation shares: held until an event is set."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._done = asyncio.Event()

    @property
    def held(self) -> bool:
        return not self._done.is_set()

    async def wait_lost(self) -> None:
        await self._done.wait()


class LocalLease(EventLease):
    """A lease granted by :class:`LocalLeases`."""

    def __init__(self, owner: LocalLeases, name: str) -> None:
        super().__init__(name)
        self._owner = owner

    async def release(self) -> None:
        if not self._done.is_set():
            self._done.set()
            self._owner._held.pop(self.name, None)


class LocalLeases:
    """Leases exclusive within one process (enough for a single-process backend)."""

    def __init__(self) -> None:
        self._held: dict[str, LocalLease] = {}

    async def acquire_lease(self, name: str) -> Lease | None:
        if name in self._held:
            return None
        lease = self._held[name] = LocalLease(self, name)
        return lease


_local: weakref.WeakKeyDictionary[Storage, LocalLeases] = weakref.WeakKeyDictionary()


def leases_for(storage: Storage) -> Leases:
    """The leases the storage declares, else its process-local :class:`LocalLeases`."""
    if storage.capabilities.leases is not None:
        return storage.capabilities.leases
    leases = _local.get(storage)
    if leases is None:
        leases = _local[storage] = LocalLeases()
    return leases


async def run_exclusively(
    leases: Leases,
    name: str,
    work: Callable[[], Awaitable[None]],
    *,
    retry: float = 1.0,
) -> None:
    """Run ``work()`` while holding lease ``name``; never in two processes at once.

    Tries to take the lease every ``retry`` seconds. While it is held,
    ``work()`` runs; if the lease is lost, ``work()`` is cancelled at once and
    the loop goes back to trying. Returns when ``work()`` returns; an
    exception from ``work()`` propagates (after the lease is released).
    Cancel the call to stop: the lease is released on the way out.

    The takeover time after a holder dies is at most ``retry`` plus the time
    the backend needs to see the holder gone (immediate for a process that
    exits or is killed; see :mod:`eventlog.storage.postgres_leases` for a
    host that vanishes).
    """
    while True:
        try:
            lease = await leases.acquire_lease(name)
        except StorageError as exc:
            log.warning("lease %r: cannot reach the backend (%s); retrying", name, exc)
            lease = None
        if lease is None:
            await asyncio.sleep(retry)
            continue
        task = asyncio.ensure_future(work())
        lost = asyncio.ensure_future(lease.wait_lost())
        try:
            await asyncio.wait({task, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            with contextlib.suppress(StorageError):
                await lease.release()
        if not task.cancelled():
            task.result()  # re-raise the work's exception
            return
        log.warning("lease %r lost: stopped its work; trying to take it again", name)
