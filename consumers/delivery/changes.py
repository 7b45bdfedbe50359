"""What one process tells the others about delivery: new work, changed endpoints.

Several ``eventlog serve`` processes share one ledger on PostgreSQL. Two kinds
of news must reach every one of them without a restart:

* :class:`Pending` — an endpoint has deliveries another process can claim
  (enqueued by the feeder, released, sent back to ``pending`` after a failed
  attempt or by the orphan sweep, retried by an operator). Every process's
  pump for that endpoint claims again.
* :class:`EndpointChanged` — an endpoint (a webhook or a notification target)
  was created, changed, disabled or deleted. Every process restarts its
  worker from the stored copy (or stops it).

The PostgreSQL ledger sends them with ``pg_notify`` *inside* the transaction
that made the change, so they arrive exactly when the change is visible
(:mod:`consumers.delivery.postgres_ledger`), on the channel
``<schema>_delivery``; the payload is ``pending:<endpoint id>`` or
``endpoint:<endpoint id>``. When the listening connection was lost and comes
back, notifications may have been missed: the listener hands over
:class:`Resync` and the engine reloads every endpoint and claims again.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "TOPIC",
    "Change",
    "EndpointChanged",
    "Pending",
    "Resync",
    "encode_change",
    "parse_change",
]

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
