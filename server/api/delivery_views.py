"""How the delivery API shows deliveries and attempts (JSON-ready dicts, ISO-8601 times).

Shared by ``/api/webhooks`` and ``/api/notifications``; endpoints are shown by
their family's own view (:attr:`server.api.endpoint_family.Family.view`).
"""

from __future__ import annotations

from typing import Any

from consumers.delivery.model import Attempt, Delivery
from consumers.webhook.views import iso as _iso

__all__ = ["attempt_view", "delivery_view"]


def delivery_view(d: Delivery, head: Delivery | None = None) -> dict[str, Any]:
    """A delivery as the API shows it.

    ``head`` is the first unfinished delivery of an ``ordered`` endpoint. A pending
    delivery after it waits behind it: ``blocked_by`` names it, and
    ``next_attempt_at`` is never before the head's next attempt (the delivery's own
    time passed long ago while it waited).
    """
    next_at = d.next_attempt_at if d.status == "pending" else None
    blocked = head is not None and d.status == "pending" and head.seq < d.seq
    if blocked and head is not None and head.status == "pending" and next_at is not None:
        next_at = max(next_at, head.next_attempt_at or next_at)
    return {
        "id": d.id,
        "seq": d.seq,
        "status": d.status,
        "stream": d.stream,
        "offset": d.offset,
        "event_id": d.event_id,
        "event_type": d.event_type,
        "key": d.key,
        "attempts": d.attempts,
        "rate_limited": d.rate_limited,
        "next_attempt_at": _iso(next_at) if next_at is not None else None,
        "blocked_by": head.id if blocked and head is not None else None,
        "last_status": d.last_status,
        "last_error": d.last_error,
        "replay": d.replay,
        "created": _iso(d.created),
        "updated": _iso(d.updated),
    }


def attempt_view(a: Attempt) -> dict[str, Any]:
    """An attempt as the API shows it (the response snippet is already redacted)."""
    return {
        "number": a.number,
        "time": _iso(a.started),
        "duration_ms": round(a.duration * 1000, 3),
        "status": a.status,
        "verdict": a.verdict,
        "error": a.error,
        "response": a.response,
    }
