"""Several processes on one ledger (PostgreSQL): what they tell each other, and how
the engine hears it.

The ledger notifies, inside the transaction that made the change, on
``<schema>_delivery``: ``pending:<endpoint id>`` (:class:`Pending`: rows another
process may claim) or ``endpoint:<endpoint id>`` (:class:`EndpointChanged`:
reload it). A listener that lost its connection hands over :class:`Resync`
(reload everything, claim again).

:class:`ClusterWatch` hands every process's changes to the engine (``pending``
news wakes the endpoint's pump; an endpoint change reloads it, one reload at a
time), and every ``period`` seconds sweeps: the rows claimed by processes that
are gone go back to ``pending`` and their endpoints are woken.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import msgspec

from consumers.delivery.model import Endpoint
from eventlog.errors import EventLogError, LogClosed

__all__ = [
    "TOPIC",
    "Change",
    "ClusterWatch",
    "EndpointChanged",
    "Pending",
    "Resync",
    "SharedLedger",
    "encode_change",
    "parse_change",
    "same_work",
]

logger = logging.getLogger("eventlog.delivery")

#: The channel suffix: PostgreSQL notifications go to ``<schema>_delivery``.
TOPIC = "delivery"


@dataclass(frozen=True, slots=True)
class Pending:
    """Endpoint ``endpoint_id`` has deliveries that may be claimable now (or later)."""

    endpoint_id: str


@dataclass(frozen=True, slots=True)
class EndpointChanged:
    """Endpoint ``endpoint_id`` was stored or deleted: reload it."""

    endpoint_id: str


@dataclass(frozen=True, slots=True)
class Resync:
    """News may have been lost (the listening connection was down): reload everything."""


Change = Pending | EndpointChanged | Resync

_PREFIXES: dict[str, type[Pending] | type[EndpointChanged]] = {
    "pending": Pending,
    "endpoint": EndpointChanged,
}


def encode_change(change: Pending | EndpointChanged) -> str:
    """The notification payload of a change: ``"pending:orders"``, ``"endpoint:orders"``."""
    prefix = "pending" if isinstance(change, Pending) else "endpoint"
    return f"{prefix}:{change.endpoint_id}"


def parse_change(payload: str | None) -> Change | None:
    """The change a payload names; :class:`Resync` for None (the listener
    reconnected); None for anything malformed (ignored)."""
    if payload is None:
        return Resync()
    prefix, sep, endpoint_id = payload.partition(":")
    kind = _PREFIXES.get(prefix)
    if not sep or not endpoint_id or kind is None:
        return None
    return kind(endpoint_id)


class SharedLedger(Protocol):
    """What a ledger that several processes share offers besides ``LedgerStore``
    (it declares it as :attr:`~consumers.delivery.ledger.LedgerStore.shared`)."""

    async def sweep(self, now: float) -> dict[str, int]:
        """Return the in-flight rows of processes that are gone to ``pending``;
        the rows returned per endpoint id."""

    async def watch(self, listener: Callable[[Change], None]) -> Callable[[], None]:
        """Call ``listener`` with every process's changes; returns the call that stops it."""


class ClusterWatch:
    """Runs while the engine runs; see the module docstring.

    Args:
        shared: The ledger's :attr:`~consumers.delivery.ledger.LedgerStore.shared` side
            (None: a ledger only this process uses; the watch does nothing).
        wake: The engine's: an endpoint may have claimable deliveries.
        reload: The engine's: bring an endpoint's pump (None: every pump) in line
            with the ledger.
        period: Seconds between sweeps (the engine's lease period).
        clock: Seconds since the epoch.
    """

    def __init__(
        self,
        shared: SharedLedger | None,
        *,
        wake: Callable[[str], None],
        reload: Callable[[str | None], Awaitable[None]],
        period: float,
        clock: Callable[[], float],
    ) -> None:
        self._shared = shared
        self._wake = wake
        self._reload_endpoint = reload
        self._period = period
        self._clock = clock
        self._unwatch: Callable[[], None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._reloads: set[str | None] = set()
        self._reload_wanted = asyncio.Event()

    async def start(self) -> None:
        """Listen for changes and start sweeping."""
        shared = self._shared
        if shared is None or self._tasks:
            return
        self._unwatch = await shared.watch(self._heard)
        self._tasks = [
            asyncio.create_task(self._sweep(shared), name="delivery-sweep"),
            asyncio.create_task(self._reload(), name="delivery-reload"),
        ]

    async def close(self) -> None:
        """Stop listening and sweeping. Idempotent."""
        unwatch, self._unwatch = self._unwatch, None
        if unwatch is not None:
            unwatch()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _heard(self, change: Change) -> None:
        if isinstance(change, Pending):
            self._wake(change.endpoint_id)
            return
        self._reloads.add(change.endpoint_id if isinstance(change, EndpointChanged) else None)
        self._reload_wanted.set()

    async def _reload(self) -> None:
        while True:
            await self._reload_wanted.wait()
            self._reload_wanted.clear()
            wanted, self._reloads = self._reloads, set()
            targets = [None] if None in wanted else sorted(e for e in wanted if e is not None)
            for endpoint_id in targets:
                try:
                    await self._reload_endpoint(endpoint_id)
                except LogClosed:
                    return
                except EventLogError as exc:
                    # Try again with the next sweep: the change must not be lost.
                    logger.warning("could not reload endpoint %s: %s", endpoint_id, exc)
                    self._reloads.add(endpoint_id)
                    asyncio.get_running_loop().call_later(self._period, self._reload_wanted.set)

    async def _sweep(self, shared: SharedLedger) -> None:
        while True:
            await asyncio.sleep(self._period)
            try:
                returned = await shared.sweep(self._clock())
            except LogClosed:
                return
            except (EventLogError, OSError) as exc:
                logger.warning("orphan sweep failed: %s", exc)
                continue
            for endpoint_id, count in sorted(returned.items()):
                logger.warning(
                    "endpoint %s: took back %d claims of a gone process", endpoint_id, count
                )
                self._wake(endpoint_id)


def same_work(running: Endpoint, stored: Endpoint) -> bool:
    """Whether ``stored`` differs from the ``running`` endpoint in its health note
    (``failing_since``) and its ``updated`` time at most (a process that starts
    stores its config-declared endpoints again): then the work goes on as it is."""
    quiet = {"failing_since": None, "updated": 0.0}
    return msgspec.structs.replace(running, **quiet) == msgspec.structs.replace(stored, **quiet)
