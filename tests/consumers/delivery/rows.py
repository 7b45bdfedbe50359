"""Ledger rows for the pure tests of the delivery machine and of shared consumers."""

from __future__ import annotations

from typing import Any

from consumers.delivery.model import Delivery

__all__ = ["delivery_row"]


def delivery_row(seq: int, **fields: Any) -> Delivery:
    """The row of the ``seq``-th event (offset ``seq``, id ``msg_<seq>``, event id
    ``e<seq>``, type ``t``, no key), pending for endpoint ``ep`` on stream
    ``events``; ``fields`` change any of it."""
    row: dict[str, Any] = {
        "id": f"msg_{seq}",
        "seq": seq,
        "endpoint_id": "ep",
        "stream": "events",
        "offset": seq,
        "event_id": f"e{seq}",
        "event_type": "t",
        "key": None,
        "status": "pending",
    }
    return Delivery(**(row | fields))
