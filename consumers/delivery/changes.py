"""What one process tells the others about delivery: new work, changed endpoints.

Several ``eventlog serve`` processes share one PostgreSQL ledger. It notifies,
inside the transaction that made the change, on ``<schema>_delivery``:
``pending:<endpoint id>`` (:class:`Pending`: rows another process may claim)
or ``endpoint:<endpoint id>`` (:class:`EndpointChanged`: reload it). A
listener that lost its connection hands over :class:`Resync` (reload
everything, claim again).
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
