"""How an endpoint leaves the server: the only shape the API and the CLI show.

Secrets are reduced to ``whsec_abcd…`` hints and header values to
``[hidden]``; times are ISO-8601 UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from consumers.delivery.model import Endpoint
from consumers.delivery.signing import mask_secret

__all__ = ["iso", "public_view"]


def iso(ts: float | None) -> str | None:
    """A Unix time as ISO-8601 UTC (``...Z``), None as None."""
    return (
        None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
    )


def public_view(ep: Endpoint, now: float) -> dict[str, Any]:
    """An endpoint as the API shows it: secrets as ``whsec_abcd…`` hints, header values hidden."""
    retry = ep.retry
    return {
        "id": ep.id,
        "kind": ep.kind,
        "url": ep.url,
        "stream": ep.stream,
        "types": ep.types,
        "key": ep.key,
        "secrets": [
            {
                "hint": mask_secret(s.secret),
                "created": iso(s.created),
                "expires_at": iso(s.expires_at),
                "active": s.expires_at is None or s.expires_at > now,
            }
            for s in ep.secrets
        ],
        "headers": dict.fromkeys(ep.headers, "[hidden]"),
        "timeout": ep.timeout,
        "retry": {
            "schedule": list(retry.schedule),
            "max_attempts": retry.attempts,
            "jitter": retry.jitter,
        },
        "ordering": ep.ordering,
        "max_in_flight": ep.max_in_flight,
        "rate_limit": ep.rate_limit,
        "enabled": ep.enabled,
        "disabled_reason": ep.disabled_reason,
        "failing_since": iso(ep.failing_since),
        "allow_replay": ep.allow_replay,
        "disable_after": ep.disable_after,
        "start_offset": ep.start_offset,
        "description": ep.description,
        "created": iso(ep.created),
        "updated": iso(ep.updated),
    }
