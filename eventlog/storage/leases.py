"""Leases: "this named consumer runs in exactly one process at a time".

A backend that several processes share (PostgreSQL) implements
:class:`Leases`; :func:`leases_for` returns it, or, for a single-process
backend (memory, SQLite), one :class:`LocalLeases` per storage that is
exclusive within the process.

The consumer runtime's loop::

    leases = leases_for(log.storage)
    while running:
        lease = await leases.acquire_lease("consumer:billing")
        if lease is None:            # held elsewhere: try again later
            await asyncio.sleep(1)
            continue
        try:
            run_until(lease.wait_lost())   # stop at once when the lease is lost
        finally:
            await lease.release()

A holder that dies (or loses its database connection) loses the lease; the
next ``acquire_lease`` in another process gets it.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Protocol, runtime_checkable

__all__ = ["Lease", "Leases", "LocalLeases", "leases_for"]


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


class LocalLease:
    """A lease granted by :class:`LocalLeases`."""

    def __init__(self, owner: LocalLeases, name: str) -> None:
        self.name = name
        self._owner = owner
        self._done = asyncio.Event()

    @property
    def held(self) -> bool:
        return not self._done.is_set()

    async def wait_lost(self) -> None:
        await self._done.wait()

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


_local: weakref.WeakKeyDictionary[object, LocalLeases] = weakref.WeakKeyDictionary()


def leases_for(storage: object) -> Leases:
    """The storage itself if it grants leases, else its process-local :class:`LocalLeases`."""
    if isinstance(storage, Leases):
        return storage
    leases = _local.get(storage)
    if leases is None:
        leases = _local[storage] = LocalLeases()
    return leases
